//! `matmul`: multiplies two matrices of `f64`.
//!
//! - Input set 0 (`matrices`): exactly two items, named `a` and `b`, in any order; or one item
//!   with an empty name (what a raw invoke makes of its body) holding `a` followed by `b`.
//! - Output set 0 (`product`): one item `c` = `a · b`.
//!
//! Every matrix is encoded the same way, all little-endian:
//!
//! | bytes | what |
//! |---|---|
//! | 0..4 | `rows`, u32 |
//! | 4..8 | `cols`, u32 |
//! | 8.. | `rows × cols` IEEE-754 f64 values, row-major (row 0 first) |
//!
//! An item must be exactly `8 + 8 × rows × cols` bytes long. Zero rows or columns are allowed:
//! `r×0 · 0×c` is the `r×c` zero matrix. Each element of `c` is summed over `k` ascending with
//! plain multiply and add (no fused multiply-add), so a result is the same on every machine;
//! NaN and infinities propagate as IEEE-754 says.
//!
//! Errors (the run fails with the message): a missing, duplicate or unexpected item, a header
//! shorter than 8 bytes, data shorter or longer than the header says, `a.cols ≠ b.rows`, and a
//! product larger than a run may output (64 MiB).
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use pappus_sdk::{Context, Error, InputSet};

pappus_sdk::entry!(main);

/// `rows` and `cols`, two u32s.
const HEADER_LEN: usize = 8;

/// The most data one run may output (docs/function-abi.md, "Limits"). A product over it is
/// refused before the work rather than failing the run with `bad_output` after it.
const MAX_OUTPUT_BYTES: u128 = pappus_sdk::abi::MAX_OUTPUT_BYTES as u128;

fn main(ctx: &mut Context) -> Result<(), Error> {
    let set = ctx.input(0).ok_or("matmul needs an input set (matrices) with items `a` and `b`")?;
    let out = ctx.output(0).ok_or("matmul needs an output set (product)")?;
    let [a, b] = operands(&set)?;
    let a = Matrix::decode("a", &a)?;
    let b = Matrix::decode("b", &b)?;
    out.push("c", &multiply(&a, &b)?);
    Ok(())
}

/// `a · b` of two encoded matrices, encoded: the function's work without the SDK, so the same
/// code can be compiled natively (examples/native.rs measures it for `cargo xtask bench wasm`).
pub fn multiply_encoded(a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error> {
    multiply(&Matrix::decode("a", a)?, &Matrix::decode("b", b)?)
}

/// The data of items `a` and `b`, refusing anything else in the set.
fn operands(set: &InputSet) -> Result<[Vec<u8>; 2], Error> {
    if set.len() == 1
        && let Some(only) = set.item(0)
        && only.name().is_empty()
    {
        return split_pair(only.data());
    }
    let mut found: [Option<Vec<u8>>; 2] = [None, None];
    for item in set.items() {
        // Compared as bytes read into a small buffer: no String per item.
        let slot = match item.name_into(&mut [0; 1]) {
            Some(b"a") => &mut found[0],
            Some(b"b") => &mut found[1],
            _ => {
                let (name, set) = (item.name(), set.name());
                return Err(
                    format!("unexpected item `{name}` in input `{set}`: it must hold exactly `a` and `b`").into()
                );
            }
        };
        if slot.is_some() {
            return Err(format!("input `{}` has two items named `{}`", set.name(), item.name()).into());
        }
        *slot = Some(item.data());
    }
    match found {
        [Some(a), Some(b)] => Ok([a, b]),
        [a, _] => {
            let missing = if a.is_none() { "a" } else { "b" };
            Err(format!("input `{}` has no item `{missing}`: it must hold exactly `a` and `b`", set.name()).into())
        }
    }
}

/// One unnamed item (a raw invoke's body) holding `a` then `b`: split where `a`'s header says
/// it ends; `b` is checked like any item.
fn split_pair(mut data: Vec<u8>) -> Result<[Vec<u8>; 2], Error> {
    let Some(header) = data.first_chunk::<HEADER_LEN>() else {
        return Err(format!(
            "the unnamed item is {} bytes, shorter than matrix `a`'s {HEADER_LEN}-byte header (it holds `a` then `b`)",
            data.len()
        )
        .into());
    };
    let rows = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let cols = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let Some(a_len) = matrix_len(rows, cols).filter(|&len| len <= data.len() as u64) else {
        let a_len = HEADER_LEN as u128 + u128::from(rows) * u128::from(cols) * 8;
        return Err(format!(
            "the unnamed item is {} bytes, shorter than the {rows}×{cols} matrix `a` it starts with ({a_len} bytes; it holds `a` then `b`)",
            data.len()
        )
        .into());
    };
    // It fits in the item, so in usize.
    let b = data.split_off(a_len as usize);
    Ok([data, b])
}

/// The encoded length of a `rows × cols` matrix, header included, if it fits a `u64`.
/// (`u64` arithmetic: wasm32 has it natively, while `u128` is a library call per multiply;
/// `rows × cols` always fits, `× 8` may not.)
fn matrix_len(rows: u32, cols: u32) -> Option<u64> {
    (u64::from(rows) * u64::from(cols)).checked_mul(8)?.checked_add(HEADER_LEN as u64)
}

/// A decoded matrix, borrowing its elements from the item's bytes.
struct Matrix<'d> {
    rows: usize,
    cols: usize,
    /// `rows × cols` little-endian f64s, row-major.
    elems: &'d [[u8; 8]],
}

impl<'d> Matrix<'d> {
    fn decode(name: &str, bytes: &'d [u8]) -> Result<Self, Error> {
        let Some((header, data)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(format!(
                "matrix `{name}` is {} bytes, shorter than its {HEADER_LEN}-byte header (u32 rows, u32 cols, little-endian)",
                bytes.len()
            )
            .into());
        };
        let rows = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let cols = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if matrix_len(rows, cols) != Some(bytes.len() as u64) {
            // u128: rows × cols × 8 can exceed u64 for a (lying) header.
            let want = u128::from(rows) * u128::from(cols) * 8;
            let have = data.len() as u128;
            let what = if have < want { "truncated" } else { "too long" };
            return Err(format!(
                "matrix `{name}` is {what}: a {rows}×{cols} matrix is {} bytes ({HEADER_LEN}-byte header + {want} of f64s), the item has {}",
                want + HEADER_LEN as u128,
                bytes.len()
            )
            .into());
        }
        let (elems, _) = data.as_chunks::<8>();
        // Both fit: rows × cols × 8 equals the length of a slice in memory.
        Ok(Self { rows: rows as usize, cols: cols as usize, elems })
    }
}

/// `a · b`, encoded.
fn multiply(a: &Matrix, b: &Matrix) -> Result<Vec<u8>, Error> {
    if a.cols != b.rows {
        return Err(format!(
            "cannot multiply a ({}×{}) by b ({}×{}): a has {} columns but b has {} rows",
            a.rows, a.cols, b.rows, b.cols, a.cols, b.rows
        )
        .into());
    }
    // Zero inner dimension: tiny inputs can still ask for a huge (all-zero) product. Both
    // dimensions came from u32s.
    let fits = matrix_len(a.rows as u32, b.cols as u32).filter(|&len| u128::from(len) <= MAX_OUTPUT_BYTES);
    let Some(len) = fits else {
        let len = HEADER_LEN as u128 + a.rows as u128 * b.cols as u128 * 8;
        return Err(format!(
            "the product is {}×{}, {len} bytes: more than the {} MiB a run may output",
            a.rows,
            b.cols,
            MAX_OUTPUT_BYTES >> 20
        )
        .into());
    };
    // The product is accumulated in place in the answer: zeroed (+0.0 in every element), then
    // in i-k-j order, so the inner loop walks a row of `b` and of `c` sequentially; each element
    // is still summed over `k` ascending from +0.0. No row buffer and no append per element: an
    // interpreted function pays for every allocation (two calls into the allocator and one to
    // free), every `memory.fill` and every capacity check (a 3×3 product ran ~45% fewer wasm
    // instructions than with a row buffer copied out per row, `cargo xtask bench e2e`). Plain
    // slices of rows rather than iterator adaptors per element, for the same reason.
    let mut out = vec![0u8; len as usize];
    let (header, product) = out.split_at_mut(HEADER_LEN);
    // Both dimensions came from u32s.
    header[..4].copy_from_slice(&(a.rows as u32).to_le_bytes());
    header[4..].copy_from_slice(&(b.cols as u32).to_le_bytes());
    // An empty product: nothing to compute, however many rows or columns it has (up to 2³²−1
    // with no data behind them).
    if a.rows == 0 || b.cols == 0 {
        return Ok(out);
    }
    let (c, _) = product.as_chunks_mut::<8>();
    for (i, c_row) in c.chunks_exact_mut(b.cols).enumerate() {
        // rows × cols elements exist (decode checked), so these products do not overflow.
        let a_row = a.elems.get(i * a.cols..(i + 1) * a.cols).unwrap_or_default();
        for (k, a_ik) in a_row.iter().enumerate() {
            let a_ik = f64::from_le_bytes(*a_ik);
            let b_row = b.elems.get(k * b.cols..(k + 1) * b.cols).unwrap_or_default();
            for (c_ij, b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij = (f64::from_le_bytes(*c_ij) + a_ik * f64::from_le_bytes(*b_kj)).to_le_bytes();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn encode(rows: u32, cols: u32, elems: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&rows.to_le_bytes());
        out.extend_from_slice(&cols.to_le_bytes());
        for e in elems {
            out.extend_from_slice(&e.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<f64>) {
        let m = Matrix::decode("c", bytes).unwrap();
        // Straight from the bytes: walking rows would take long for 2³²−1 rows of nothing.
        (m.rows as u32, m.cols as u32, m.elems.iter().map(|e| f64::from_le_bytes(*e)).collect())
    }

    fn run(items: Vec<MockItem>) -> Result<Vec<MockItem>, MockError> {
        Mock::new().input("matrices", items).output("product").run(main).map(|mut out| out.remove(0).items)
    }

    fn product(a: Vec<u8>, b: Vec<u8>) -> (u32, u32, Vec<f64>) {
        let out = run(vec![MockItem::new("a", a), MockItem::new("b", b)]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "c");
        assert_eq!(out[0].key, None);
        decode(&out[0].data)
    }

    fn error(items: Vec<MockItem>) -> String {
        match run(items) {
            Err(MockError::Failed(e)) => e.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn multiplies_a_2x3_by_a_3x2() {
        let a = encode(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = encode(3, 2, &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        assert_eq!(product(a, b), (2, 2, vec![58.0, 64.0, 139.0, 154.0]));
    }

    #[test]
    fn item_order_does_not_matter() {
        let a = encode(1, 2, &[1.0, 2.0]);
        let b = encode(2, 1, &[3.0, 4.0]);
        let out = run(vec![MockItem::new("b", b), MockItem::new("a", a)]).unwrap();
        assert_eq!(decode(&out[0].data), (1, 1, vec![11.0]));
    }

    #[test]
    fn the_identity_keeps_a_matrix() {
        let m = [0.5, -1.25, 1e300, f64::MIN_POSITIVE, 3.0, -0.0, 7.0, 8.0, 9.0];
        let id = encode(3, 3, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        // `==` on f64: the -0.0 comes back as 0.0 (0.0 + -0.0 is 0.0), which compares equal.
        assert_eq!(product(encode(3, 3, &m), id.clone()), (3, 3, m.to_vec()));
        assert_eq!(product(id, encode(3, 3, &m)), (3, 3, m.to_vec()));
    }

    #[test]
    fn a_row_times_a_column_and_a_column_times_a_row() {
        assert_eq!(product(encode(1, 3, &[1.0, 2.0, 3.0]), encode(3, 1, &[4.0, 5.0, 6.0])), (1, 1, vec![32.0]));
        assert_eq!(
            product(encode(2, 1, &[1.0, 2.0]), encode(1, 3, &[3.0, 4.0, 5.0])),
            (2, 3, vec![3.0, 4.0, 5.0, 6.0, 8.0, 10.0])
        );
    }

    #[test]
    fn empty_dimensions() {
        // No rows: an empty product.
        assert_eq!(product(encode(0, 3, &[]), encode(3, 2, &[0.0; 6])), (0, 2, vec![]));
        // No columns in b.
        assert_eq!(product(encode(2, 3, &[0.0; 6]), encode(3, 0, &[])), (2, 0, vec![]));
        // No inner dimension: the empty sum is zero.
        assert_eq!(product(encode(2, 0, &[]), encode(0, 3, &[])), (2, 3, vec![0.0; 6]));
        assert_eq!(product(encode(0, 0, &[]), encode(0, 0, &[])), (0, 0, vec![]));
    }

    #[test]
    fn empty_products_of_the_largest_dimensions_are_instant() {
        // No data behind either header; the product has no elements, so nothing is allocated
        // or looped over.
        let max = u32::MAX;
        assert_eq!(product(encode(0, 0, &[]), encode(0, max, &[])), (0, max, vec![]));
        assert_eq!(product(encode(max, 0, &[]), encode(0, 0, &[])), (max, 0, vec![]));
    }

    #[test]
    fn nan_and_infinity_propagate() {
        let (_, _, c) = product(encode(1, 2, &[f64::NAN, 1.0]), encode(2, 2, &[1.0, 0.0, f64::INFINITY, 1.0]));
        assert!(c[0].is_nan() && c[1].is_nan());
    }

    #[test]
    fn mismatched_dimensions_are_refused() {
        let items = vec![MockItem::new("a", encode(2, 3, &[0.0; 6])), MockItem::new("b", encode(2, 2, &[0.0; 4]))];
        assert_eq!(error(items), "cannot multiply a (2×3) by b (2×2): a has 3 columns but b has 2 rows");
    }

    #[test]
    fn truncated_and_overlong_items_are_refused() {
        let b = || MockItem::new("b", encode(1, 1, &[1.0]));
        assert_eq!(
            error(vec![MockItem::new("a", [1, 0, 0]), b()]),
            "matrix `a` is 3 bytes, shorter than its 8-byte header (u32 rows, u32 cols, little-endian)"
        );
        assert_eq!(
            error(vec![MockItem::new("a", b""), b()]),
            "matrix `a` is 0 bytes, shorter than its 8-byte header (u32 rows, u32 cols, little-endian)"
        );
        let mut short = encode(1, 2, &[1.0, 2.0]);
        short.pop();
        assert_eq!(
            error(vec![b(), MockItem::new("a", short)]),
            "matrix `a` is truncated: a 1×2 matrix is 24 bytes (8-byte header + 16 of f64s), the item has 23"
        );
        let mut long = encode(1, 1, &[1.0]);
        long.push(0);
        assert_eq!(
            error(vec![MockItem::new("a", encode(1, 1, &[1.0])), MockItem::new("b", long)]),
            "matrix `b` is too long: a 1×1 matrix is 16 bytes (8-byte header + 8 of f64s), the item has 17"
        );
        // A header claiming the largest size, with no data behind it.
        assert_eq!(
            error(vec![MockItem::new("a", [0xff; 8]), b()]),
            "matrix `a` is truncated: a 4294967295×4294967295 matrix is 147573952520956936208 bytes \
             (8-byte header + 147573952520956936200 of f64s), the item has 8"
        );
    }

    #[test]
    fn a_product_over_the_output_limit_is_refused_before_the_work() {
        let items = vec![MockItem::new("a", encode(65536, 0, &[])), MockItem::new("b", encode(0, 65536, &[]))];
        assert_eq!(
            error(items),
            "the product is 65536×65536, 34359738376 bytes: more than the 64 MiB a run may output"
        );
    }

    #[test]
    fn missing_duplicate_and_unexpected_items_are_refused() {
        let m = || encode(1, 1, &[1.0]);
        assert_eq!(error(vec![]), "input `matrices` has no item `a`: it must hold exactly `a` and `b`");
        assert_eq!(
            error(vec![MockItem::new("a", m())]),
            "input `matrices` has no item `b`: it must hold exactly `a` and `b`"
        );
        assert_eq!(
            error(vec![MockItem::new("b", m())]),
            "input `matrices` has no item `a`: it must hold exactly `a` and `b`"
        );
        assert_eq!(
            error(vec![MockItem::new("a", m()), MockItem::new("a", m())]),
            "input `matrices` has two items named `a`"
        );
        assert_eq!(
            error(vec![MockItem::new("a", m()), MockItem::new("b", m()), MockItem::new("x", m())]),
            "unexpected item `x` in input `matrices`: it must hold exactly `a` and `b`"
        );
    }

    #[test]
    fn one_unnamed_item_holds_a_then_b() {
        let a = encode(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = encode(3, 2, &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        let out = run(vec![MockItem::new("", [a.clone(), b.clone()].concat())]).unwrap();
        assert_eq!(decode(&out[0].data), (2, 2, vec![58.0, 64.0, 139.0, 154.0]));
        // `b` is checked as an item is.
        let mut long = [a.clone(), b].concat();
        long.push(0);
        assert_eq!(
            error(vec![MockItem::new("", long)]),
            "matrix `b` is too long: a 3×2 matrix is 56 bytes (8-byte header + 48 of f64s), the item has 57"
        );
        assert_eq!(
            error(vec![MockItem::new("", [1, 2])]),
            "the unnamed item is 2 bytes, shorter than matrix `a`'s 8-byte header (it holds `a` then `b`)"
        );
        assert_eq!(
            error(vec![MockItem::new("", &a[..20])]),
            "the unnamed item is 20 bytes, shorter than the 2×3 matrix `a` it starts with (56 bytes; it holds `a` then `b`)"
        );
        // Only `a` then nothing: `b` is an empty item, shorter than a header.
        assert_eq!(
            error(vec![MockItem::new("", a)]),
            "matrix `b` is 0 bytes, shorter than its 8-byte header (u32 rows, u32 cols, little-endian)"
        );
        // A named single item is still the two-item form.
        assert_eq!(
            error(vec![MockItem::new("a", encode(1, 1, &[1.0]))]),
            "input `matrices` has no item `b`: it must hold exactly `a` and `b`"
        );
    }

    #[test]
    fn without_its_sets_it_fails_with_a_message() {
        let err = Mock::new().output("product").run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: matmul needs an input set (matrices) with items `a` and `b`");
        let err = Mock::new().input("matrices", []).run(main).unwrap_err();
        assert_eq!(err.to_string(), "function failed: matmul needs an output set (product)");
    }
}
