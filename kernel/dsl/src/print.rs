//! Canonical source text for a syntax tree, through `Display`.
//!
//! One declaration per line, a blank line around each composition, four spaces before each
//! application, single spaces around `=`, `=>` and after commas, no comments. Items come out in
//! source order (by position; functions first where positions tie, as in a program built in
//! code). Parsing the output gives back the same program, positions aside, as long as every name
//! is an identifier; the tests check this on generated programs.

use core::fmt::{self, Display, Formatter, Write};

use crate::ast::{
    Application, Argument, Composition, Distribution, FunctionDecl, Ident, JoinClause, JoinKind, OutputBinding, Program,
};

/// Writes `items` separated by ", ".
fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

/// `(a, b) => (c)`
fn signature(f: &mut Formatter<'_>, inputs: &[Ident], outputs: &[Ident]) -> fmt::Result {
    f.write_char('(')?;
    comma_list(f, inputs)?;
    f.write_str(") => (")?;
    comma_list(f, outputs)?;
    f.write_char(')')
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Display for Distribution {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Display for JoinKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Display for FunctionDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "function {} ", self.name)?;
        signature(f, &self.inputs, &self.outputs)?;
        f.write_char(';')
    }
}

impl Display for Argument {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let optional = if self.optional { "optional " } else { "" };
        write!(f, "{} = {optional}{} {}", self.param, self.distribution, self.set)
    }
}

impl Display for OutputBinding {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.set, self.param)
    }
}

impl Display for JoinClause {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "by {}", self.first)?;
        for (kind, name) in &self.rest {
            write!(f, " {kind} {name}")?;
        }
        Ok(())
    }
}

impl Display for Application {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.function)?;
        comma_list(f, &self.args)?;
        f.write_str(") => (")?;
        comma_list(f, &self.outputs)?;
        f.write_char(')')?;
        if let Some(join) = &self.join {
            write!(f, " {join}")?;
        }
        f.write_char(';')
    }
}

impl Display for Composition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "composition {} ", self.name)?;
        signature(f, &self.inputs, &self.outputs)?;
        f.write_str(" {\n")?;
        for app in &self.body {
            writeln!(f, "    {app}")?;
        }
        f.write_char('}')
    }
}

impl Display for Program {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (mut functions, mut compositions) = (self.functions.iter().peekable(), self.compositions.iter().peekable());
        let mut previous_was_composition = None;
        loop {
            // Merge the two lists by source position.
            let take_function = match (functions.peek(), compositions.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(func), Some(comp)) => func.name.pos.offset <= comp.name.pos.offset,
            };
            let is_composition = !take_function;
            match previous_was_composition {
                Some(previous) if previous || is_composition => f.write_char('\n')?,
                _ => {}
            }
            previous_was_composition = Some(is_composition);
            if take_function {
                if let Some(func) = functions.next() {
                    writeln!(f, "{func}")?;
                }
            } else if let Some(comp) = compositions.next() {
                writeln!(f, "{comp}")?;
            }
        }
    }
}
