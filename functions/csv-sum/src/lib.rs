//! `csv_sum`: the sum of one column of each CSV table.
//!
//! - Input set 0 (`column`): exactly one item, data = the column's name (UTF-8; ASCII white
//!   space around it, such as a trailing newline, is dropped).
//! - Input set 1 (`tables`): any number of items, each a CSV table whose first record is the
//!   header row.
//! - Output set 0 (`sums`): one item per table, in input order; name = the table item's name,
//!   key = its key, data = the sum of the column's cells as a decimal number: Rust's `Display`
//!   for `f64`, the shortest digits that read back as the same `f64`, never an exponent
//!   (`6`, `-2.5`, `0.30000000000000004`, `1000000000000000000000`). A table with a header and
//!   no rows sums to `0`.
//!
//! **CSV** (RFC 4180, read leniently): records end at `\n` or `\r\n`; fields are separated by
//! `,`; a field that starts with `"` is quoted: it may hold `,`, line breaks and `""` (a quote)
//! and ends at the next lone `"`, after which only `,` or the record's end may follow. Other
//! fields are taken as they are (a `"` inside one is an ordinary character). Empty lines are
//! skipped, a UTF-8 byte order mark before the header is dropped, and rows may have any number
//! of fields as long as they reach the column. Header names and cells are compared and parsed
//! with ASCII white space around them trimmed.
//!
//! **Numbers**: what Rust's `f64::from_str` reads (`12`, `-3.5`, `+.5`, `1e-3`), finite only.
//! They are added with Neumaier's compensated summation, so long columns keep their accuracy
//! and the result does not depend on how the machine rounds intermediate sums.
//!
//! Errors name the table, the line (counted from 1, the header's first line being line 1) and
//! the column: no header, the column missing or named twice in the header, a row too short to
//! reach it, an empty or non-numeric cell, a sum beyond f64, or malformed quoting.
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use pappus_sdk::{Context, Error};

pappus_sdk::entry!(main);

/// The most header names an error message lists.
const MAX_LISTED_COLUMNS: usize = 10;

fn main(ctx: &mut Context) -> Result<(), Error> {
    let column_set = ctx.input(0).ok_or("csv_sum needs two input sets (column, tables)")?;
    let tables = ctx.input(1).ok_or("csv_sum needs a second input set (tables)")?;
    let out = ctx.output(0).ok_or("csv_sum needs an output set (sums)")?;

    let column = match (column_set.len(), column_set.item(0)) {
        (1, Some(item)) => item.data(),
        (n, _) => {
            let set = column_set.name();
            return Err(format!("input `{set}` must hold exactly one item (the column's name), it has {n}").into());
        }
    };
    let column = core::str::from_utf8(&column).map_err(|e| format!("the column name is not UTF-8: {e}"))?.trim_ascii();
    if column.is_empty() {
        return Err("the column name is empty".into());
    }

    // One buffer for every table, sized for the largest: the SDK's bump allocator never frees.
    let largest = tables.items().map(|item| item.len()).max().unwrap_or(0);
    let mut buf = Vec::with_capacity(usize::try_from(largest).unwrap_or(0));
    let mut text = String::new();
    for item in tables.items() {
        item.read_into(&mut buf)?;
        let name = item.name();
        let sum = sum_column(&buf, column).map_err(|why| format!("table `{name}`: {why}"))?;
        text.clear();
        // Writing to a String cannot fail.
        let _ = write!(text, "{sum}");
        out.push_item(&name, item.key(), text.as_bytes());
    }
    Ok(())
}

/// The sum of `column` in the CSV table `data`, or why there is none.
fn sum_column(data: &[u8], column: &str) -> Result<f64, String> {
    let data = data.strip_prefix("\u{feff}".as_bytes()).unwrap_or(data);
    let mut csv = Reader { data, pos: 0, line: 1 };

    // The header: find the column, keeping the names for the error message.
    let mut names: Vec<String> = Vec::new();
    let mut found: Option<usize> = None;
    let mut twice: Option<usize> = None;
    let header = csv.record(|index, field| {
        let name = field.text();
        if name.trim_ascii() == column.as_bytes() {
            match found {
                None => found = Some(index),
                Some(_) => twice = twice.or(Some(index)),
            }
        }
        if names.len() <= MAX_LISTED_COLUMNS {
            names.push(String::from_utf8_lossy(name.trim_ascii()).into_owned());
        }
    })?;
    if header.is_none() {
        return Err("the table is empty: it has no header row".into());
    }
    let col = match (found, twice) {
        (Some(first), Some(second)) => {
            return Err(format!(
                "column `{column}` appears twice in the header (fields {} and {})",
                first + 1,
                second + 1
            ));
        }
        (Some(col), None) => col,
        (None, _) => {
            let more = if names.len() > MAX_LISTED_COLUMNS { ", …" } else { "" };
            names.truncate(MAX_LISTED_COLUMNS);
            let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            return Err(format!("the header has no column `{column}` (its columns: {list}{more})"));
        }
    };

    let mut sum = Sum::default();
    loop {
        let mut cell: Option<&[u8]> = None;
        let Some(row) = csv.record(|index, field| {
            if index == col {
                // Quoting changes nothing for a number: a quoted number has no `""` in it, and
                // a cell with one is not a number either way, so the raw text will do.
                cell = Some(field.raw());
            }
        })?
        else {
            break;
        };
        let at = |what: &str| format!("line {}, column `{column}`: {what}", row.line);
        let Some(cell) = cell else {
            return Err(format!(
                "line {}: the row has {} field(s), too few to reach column `{column}` (field {})",
                row.line,
                row.fields,
                col + 1
            ));
        };
        let cell = cell.trim_ascii();
        if cell.is_empty() {
            return Err(at("the cell is empty"));
        }
        let value = core::str::from_utf8(cell).ok().and_then(|s| s.parse::<f64>().ok());
        match value {
            Some(v) if v.is_finite() => sum.add(v),
            // `inf`, `infinity`, and numbers beyond f64 such as `1e999`.
            Some(v) if v.is_infinite() => {
                return Err(at(&format!("`{}` is not a finite number", String::from_utf8_lossy(cell))));
            }
            // Unreadable, or `NaN`.
            _ => return Err(at(&format!("`{}` is not a number", String::from_utf8_lossy(cell)))),
        }
    }
    let total = sum.total();
    if !total.is_finite() {
        return Err(format!("the sum of column `{column}` is beyond the range of f64"));
    }
    // `-0` only from a column of negative zeros; a sum of nothing reads better as `0`.
    Ok(if total == 0.0 { 0.0 } else { total })
}

/// Neumaier's variant of Kahan summation: the running sum plus the rounding error lost so far.
#[derive(Default)]
struct Sum {
    sum: f64,
    lost: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        // Whichever operand is smaller lost low bits in `t`; recover them.
        self.lost += if self.sum.abs() >= x.abs() { (self.sum - t) + x } else { (x - t) + self.sum };
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.lost
    }
}

/// One field as it appears in the table.
#[derive(Clone, Copy)]
enum Field<'d> {
    Plain(&'d [u8]),
    /// Between the quotes, `""` still doubled.
    Quoted(&'d [u8]),
}

impl<'d> Field<'d> {
    fn raw(self) -> &'d [u8] {
        match self {
            Self::Plain(raw) | Self::Quoted(raw) => raw,
        }
    }

    /// Its text, `""` undoubled (which allocates only when there is one).
    fn text(self) -> alloc::borrow::Cow<'d, [u8]> {
        match self {
            Self::Quoted(raw) if raw.contains(&b'"') => {
                let mut text = Vec::with_capacity(raw.len());
                let mut quote = false;
                for &b in raw {
                    // Every `"` in the raw text is one of a `""` pair: keep the first.
                    if b != b'"' || !quote {
                        text.push(b);
                    }
                    quote = b == b'"' && !quote;
                }
                alloc::borrow::Cow::Owned(text)
            }
            field => alloc::borrow::Cow::Borrowed(field.raw()),
        }
    }
}

/// Where a record was.
struct Record {
    /// The line it starts on.
    line: usize,
    /// How many fields it had.
    fields: usize,
}

/// A CSV reader that hands out fields in place: no allocation per row.
struct Reader<'d> {
    data: &'d [u8],
    pos: usize,
    line: usize,
}

impl<'d> Reader<'d> {
    /// Reads the next record, calling `visit(index, field)` for each of its fields; `None` at
    /// the end of the data. Empty lines before it are skipped.
    fn record(&mut self, mut visit: impl FnMut(usize, Field<'d>)) -> Result<Option<Record>, String> {
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Ok(None);
            }
            let Some(blank) = line_break(rest) else { break };
            self.pos += blank;
            self.line += 1;
        }
        let line = self.line;
        let mut fields = 0;
        loop {
            let (field, more) = self.field()?;
            visit(fields, field);
            fields += 1;
            if !more {
                return Ok(Some(Record { line, fields }));
            }
        }
    }

    fn rest(&self) -> &'d [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Reads one field and what ends it: `true` for a `,` (more fields follow), `false` for
    /// the end of the record (a line break, consumed, or the end of the data).
    fn field(&mut self) -> Result<(Field<'d>, bool), String> {
        let rest = self.rest();
        if let Some(quoted) = rest.strip_prefix(b"\"") {
            let start_line = self.line;
            let mut i = 0;
            loop {
                match quoted.get(i) {
                    None => return Err(format!("line {start_line}: a quoted field is never closed")),
                    Some(b'"') if quoted.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => break,
                    Some(b'\n') => {
                        self.line += 1;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
            let field = Field::Quoted(quoted.get(..i).unwrap_or_default());
            // Past the opening quote, the content and the closing quote.
            self.pos += i + 2;
            let after = self.rest();
            if let Some(b',') = after.first() {
                self.pos += 1;
                return Ok((field, true));
            }
            if after.is_empty() {
                return Ok((field, false));
            }
            match line_break(after) {
                Some(n) => {
                    self.pos += n;
                    self.line += 1;
                    Ok((field, false))
                }
                None => Err(format!("line {}: unexpected text after a quoted field's closing quote", self.line)),
            }
        } else {
            let end = rest.iter().position(|&b| b == b',' || b == b'\n').unwrap_or(rest.len());
            let text = rest.get(..end).unwrap_or_default();
            self.pos += end;
            match rest.get(end) {
                Some(b',') => {
                    self.pos += 1;
                    Ok((Field::Plain(text), true))
                }
                Some(_) => {
                    // `\n`; a `\r` before it belongs to the line break.
                    self.pos += 1;
                    self.line += 1;
                    Ok((Field::Plain(text.strip_suffix(b"\r").unwrap_or(text)), false))
                }
                None => Ok((Field::Plain(text), false)),
            }
        }
    }
}

/// The length of the line break `bytes` starts with (`\n` or `\r\n`), if it starts with one.
fn line_break(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [b'\n', ..] => Some(1),
        [b'\r', b'\n', ..] => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn run(column: Vec<MockItem>, tables: Vec<MockItem>) -> Result<Vec<MockItem>, MockError> {
        let out = Mock::new().input("column", column).input("tables", tables).output("sums").run(main)?;
        Ok(out.into_iter().next().unwrap().items)
    }

    fn sums(column: &str, tables: &[(&str, &str)]) -> Vec<(String, String)> {
        let tables = tables.iter().map(|(n, t)| MockItem::new(*n, *t)).collect();
        run(vec![MockItem::new("c", column)], tables)
            .unwrap()
            .into_iter()
            .map(|item| (item.name, String::from_utf8(item.data).unwrap()))
            .collect()
    }

    fn sum(column: &str, table: &str) -> String {
        let mut out = sums(column, &[("t", table)]);
        assert_eq!(out.len(), 1);
        out.remove(0).1
    }

    fn error(column: &str, table: &str) -> String {
        match run(vec![MockItem::new("c", column)], vec![MockItem::new("t", table)]) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn sums_a_column_of_each_table_in_order() {
        let a = "name,price,qty\napple,1.5,3\npear,2.25,1\n";
        let b = "qty,price\n1,10\n2,-4\n";
        assert_eq!(
            sums("price", &[("a", a), ("b", b)]),
            [("a".to_string(), "3.75".to_string()), ("b".into(), "6".into())]
        );
        assert_eq!(sums("qty", &[("b", b), ("a", a)]), [("b".to_string(), "3".to_string()), ("a".into(), "4".into())]);
    }

    #[test]
    fn keys_follow_their_table() {
        let out = run(vec![MockItem::new("c", "x")], vec![MockItem::keyed("t", 5, "x\n1")]).unwrap();
        assert_eq!(out, [MockItem::keyed("t", 5, "1")]);
    }

    #[test]
    fn number_formats() {
        assert_eq!(sum("x", "x\n0.1\n0.2\n"), "0.30000000000000004");
        assert_eq!(sum("x", "x\n1e21\n"), "1000000000000000000000");
        assert_eq!(sum("x", "x\n+.5\n-1e-3\n 2 \n"), "2.499");
        assert_eq!(sum("x", "x\n-0\n-0.0\n"), "0");
        assert_eq!(sum("x", "x\n1.7976931348623157e308\n"), format!("17976931348623157{}", "0".repeat(292)));
    }

    #[test]
    fn compensated_summation_keeps_small_terms() {
        // Naive summation gives 0 here: 1 is lost next to 1e100.
        assert_eq!(sum("x", "x\n1e100\n1\n-1e100\n"), "1");
        let many = "x\n".to_string() + &"0.1\n".repeat(10);
        assert_eq!(sum("x", &many), "1");
    }

    #[test]
    fn a_header_only_table_sums_to_zero_and_no_tables_give_no_items() {
        assert_eq!(sum("x", "x,y\n"), "0");
        assert_eq!(sum("x", "x"), "0");
        assert_eq!(sums("x", &[]), []);
    }

    #[test]
    fn quoting_crlf_blank_lines_bom_and_white_space() {
        let table =
            "\u{feff}\"na,me\",\" v \",other\r\n\r\n\"a \"\"b\"\"\",\"1\",x\r\n\"multi\nline\",2,\"y\"\n\nc,  3  ,z";
        assert_eq!(sum(" v ", table), "6");
        assert_eq!(sum("v", table), "6");
        // A quoted header name with `""` in it.
        assert_eq!(sum("a \"b\"", "\"a \"\"b\"\"\"\n4\n"), "4");
        // Short rows are fine when they reach the column; longer ones too.
        assert_eq!(sum("a", "a,b,c\n1\n2,3,4,5\n"), "3");
        // A trailing comma makes an empty last field.
        assert_eq!(sum("b", "a,b\n1,2,\n"), "2");
    }

    #[test]
    fn the_column_name_may_come_with_a_newline() {
        assert_eq!(sum("x\n", "x\n1\n"), "1");
    }

    #[test]
    fn line_numbers_count_physical_lines() {
        let table = "a,b\n\n\"x\ny\",1\n2,oops\n";
        assert_eq!(error("b", table), "table `t`: line 5, column `b`: `oops` is not a number");
    }

    #[test]
    fn missing_and_duplicate_columns_are_refused() {
        assert_eq!(error("z", "a,b,c\n1,2,3"), "table `t`: the header has no column `z` (its columns: `a`, `b`, `c`)");
        let wide = (0..12).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(
            error("z", &wide),
            "table `t`: the header has no column `z` (its columns: `c0`, `c1`, `c2`, `c3`, `c4`, `c5`, `c6`, `c7`, `c8`, `c9`, …)"
        );
        assert_eq!(error("a", "a,b, a\n1,2,3"), "table `t`: column `a` appears twice in the header (fields 1 and 3)");
    }

    #[test]
    fn empty_tables_are_refused() {
        assert_eq!(error("a", ""), "table `t`: the table is empty: it has no header row");
        assert_eq!(error("a", "\n\r\n"), "table `t`: the table is empty: it has no header row");
    }

    #[test]
    fn bad_cells_are_refused_naming_line_and_column() {
        assert_eq!(error("b", "a,b\n1,2\n3,x\n"), "table `t`: line 3, column `b`: `x` is not a number");
        assert_eq!(error("b", "a,b\n1, \n"), "table `t`: line 2, column `b`: the cell is empty");
        assert_eq!(error("b", "a,b\n1,\"\"\n"), "table `t`: line 2, column `b`: the cell is empty");
        assert_eq!(error("b", "a,b\n1,NaN\n"), "table `t`: line 2, column `b`: `NaN` is not a number");
        assert_eq!(error("b", "a,b\n1,inf\n"), "table `t`: line 2, column `b`: `inf` is not a finite number");
        assert_eq!(error("b", "a,b\n1,1e999\n"), "table `t`: line 2, column `b`: `1e999` is not a finite number");
        assert_eq!(error("b", "a,b\n1,\"1,5\"\n"), "table `t`: line 2, column `b`: `1,5` is not a number");
        let not_utf8 = run(vec![MockItem::new("c", "b")], vec![MockItem::new("t", b"a,b\n1,\xff\n")]);
        assert_eq!(
            not_utf8.unwrap_err().to_string(),
            "function failed: table `t`: line 2, column `b`: `\u{fffd}` is not a number"
        );
        assert_eq!(
            error("c", "a,b,c\n1,2,3\n4,5\n"),
            "table `t`: line 3: the row has 2 field(s), too few to reach column `c` (field 3)"
        );
    }

    #[test]
    fn an_overflowing_sum_is_refused() {
        assert_eq!(
            error("x", "x\n1.7976931348623157e308\n1.7976931348623157e308\n"),
            "table `t`: the sum of column `x` is beyond the range of f64"
        );
    }

    #[test]
    fn malformed_quoting_is_refused() {
        assert_eq!(error("a", "a\n\"1\n2\n"), "table `t`: line 2: a quoted field is never closed");
        assert_eq!(
            error("a", "a\n\"1\"x\n"),
            "table `t`: line 2: unexpected text after a quoted field's closing quote"
        );
        assert_eq!(error("a", "\"a"), "table `t`: line 1: a quoted field is never closed");
    }

    #[test]
    fn the_column_set_must_hold_one_nonempty_name() {
        let msg = |n| format!("input `column` must hold exactly one item (the column's name), it has {n}");
        let err = |column: Vec<MockItem>| match run(column, vec![]) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        };
        assert_eq!(err(vec![]), msg(0));
        assert_eq!(err(vec![MockItem::new("a", "x"), MockItem::new("b", "y")]), msg(2));
        assert_eq!(err(vec![MockItem::new("a", " \n")]), "the column name is empty");
        assert_eq!(
            err(vec![MockItem::new("a", b"\xff")]),
            "the column name is not UTF-8: invalid utf-8 sequence of 1 bytes from index 0"
        );
    }

    #[test]
    fn without_its_sets_it_fails_with_a_message() {
        let err = Mock::new().output("sums").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: csv_sum needs two input sets (column, tables)");
        let err = Mock::new().input("column", []).output("sums").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: csv_sum needs a second input set (tables)");
        let err = Mock::new().input("column", []).input("tables", []).run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: csv_sum needs an output set (sums)");
    }
}
