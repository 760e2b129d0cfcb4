//! ASCII case-insensitive comparison, eight bytes at a time; decimal digits without `fmt`.
//!
//! HTTP field names, media types and auth schemes are compared without regard to case on every
//! request. The kernel is built without SSE, so `<[u8]>::eq_ignore_ascii_case` takes its byte
//! loop (about 16 instructions a byte under icount); this one lowers eight bytes with a few
//! word operations (SWAR) and compares whole words.

/// Whether `a` and `b` are equal but for ASCII case: `<[u8]>::eq_ignore_ascii_case`, faster.
/// Bytes outside `A`-`Z` / `a`-`z` (non-ASCII ones included) must be equal as they are.
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < 8 {
        return lower(padded(a)) == lower(padded(b));
    }
    let (a_words, _) = a.as_chunks::<8>();
    let (b_words, _) = b.as_chunks::<8>();
    let same = |x: &[u8; 8], y: &[u8; 8]| lower(u64::from_le_bytes(*x)) == lower(u64::from_le_bytes(*y));
    // The last word overlaps the one before it when the length is not a multiple of 8.
    let last = a.len() - 8;
    a_words.iter().zip(b_words).all(|(x, y)| same(x, y)) && same(word_at(a, last), word_at(b, last))
}

/// The eight bytes of `bytes` from `at` (`at + 8 <= bytes.len()`).
fn word_at(bytes: &[u8], at: usize) -> &[u8; 8] {
    bytes[at..].first_chunk::<8>().unwrap_or(&[0; 8])
}

/// Up to seven bytes as a word, zero above them.
fn padded(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// Every byte of `x` in `A`-`Z` lowered (0x20 added), the others as they are.
fn lower(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Each byte's low seven bits plus a constant stays below 0x100: no carry between bytes.
    let low = x & !HIGH;
    let at_least_a = low + ONES * (0x80 - u64::from(b'A'));
    let past_z = low + ONES * (0x80 - u64::from(b'Z') - 1);
    // Bit 7 of a byte: it is in A..=Z (and was ASCII to begin with).
    let upper = at_least_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

/// `n` in decimal, written at the end of `buf` (no `core::fmt` machinery: HTTP lengths and
/// JSON keys are written on every answer).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals() {
        let mut buf = [0; 20];
        for n in [0, 7, 10, 4096, u64::MAX] {
            assert_eq!(super::decimal(n, &mut buf), std::format!("{n}").as_bytes());
        }
    }

    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn every_byte_pair_agrees_with_std() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(eq_ignore_case(&[a], &[b]), a.eq_ignore_ascii_case(&b), "{a:#x} {b:#x}");
                let (x, y) =
                    ([b'x', a, b'-', 0, 0xff, b'Z', b'q', a, b'a'], [b'X', b, b'-', 0, 0xff, b'z', b'Q', b, b'A']);
                assert_eq!(eq_ignore_case(&x, &y), a.eq_ignore_ascii_case(&b), "{a:#x} {b:#x} in a longer run");
            }
        }
    }

    #[test]
    fn known_names() {
        assert!(eq_ignore_case(b"Content-Type", b"content-type"));
        assert!(eq_ignore_case(b"APPLICATION/X-PAPPUS-SETS", b"application/x-pappus-sets"));
        assert!(!eq_ignore_case(b"content-typf", b"content-type"));
        assert!(!eq_ignore_case(b"content-type", b"content-type "));
        assert!(eq_ignore_case(b"", b""));
        // '@' and '`', '[' and '{' differ by 0x20 but are not letters.
        assert!(!eq_ignore_case(b"@[", b"`{"));
    }

    proptest! {
        #[test]
        fn agrees_with_std(a in proptest::collection::vec(any::<u8>(), 0..40), flips in proptest::collection::vec(any::<bool>(), 40)) {
            // `b`: `a` with some letters' case swapped, and sometimes one byte changed.
            let b: Vec<u8> = a.iter().zip(&flips).map(|(&c, &f)| if f && c.is_ascii_alphabetic() { c ^ 0x20 } else { c }).collect();
            prop_assert_eq!(eq_ignore_case(&a, &b), a.eq_ignore_ascii_case(&b));
            let mut c = b.clone();
            if let Some(first) = c.first_mut() { *first = first.wrapping_add(flips[0] as u8 + 1); }
            prop_assert_eq!(eq_ignore_case(&a, &c), a.eq_ignore_ascii_case(&c));
        }

        #[test]
        fn any_two_runs_agree_with_std(a in proptest::collection::vec(any::<u8>(), 0..24), b in proptest::collection::vec(any::<u8>(), 0..24)) {
            prop_assert_eq!(eq_ignore_case(&a, &b), a.eq_ignore_ascii_case(&b));
        }
    }
}
