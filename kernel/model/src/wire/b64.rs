//! Standard base64 (RFC 4648 section 4, `=` padding) for the JSON sets format's hot path: item
//! data in requests (the fast path of `json::decode`) and in answers (`Encoder`). The base64
//! crate stays for everything that needs its precise errors; these agree with it (tests below).
//! Why: on the soft-float kernel target `cargo xtask profile matmul3-native` put the crate's
//! `decode_vec` at ~18 guest instructions a symbol and `encode_string` at ~11 a byte; a table a
//! quad (a triple) over fixed-size chunks costs a fraction of that.

use alloc::string::String;
use alloc::vec::Vec;

/// Appends the bytes of canonical standard base64 (`=` padding, no trailing bits) to `out`;
/// `None` for anything else (the JSON fast path then leaves the document to the full decoder,
/// which refuses it with the base64 crate's precise error). Four symbols at a time through one table: `cargo xtask profile matmul3-native` put the
/// crate's `decode_vec` at ~18 guest instructions per symbol (soft-float kernel target, no SIMD),
/// this loop at about a third of that.
pub fn decode(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let pad = text.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let (body, tail) = text.split_at(text.len() - if pad > 0 { 4 } else { 0 });
    let start = out.len();
    // Written in place (the caller reserved room): pushing three bytes at a time cost more
    // than the decoding.
    out.resize(start + body.len() / 4 * 3, 0);
    let value = |b: u8| u32::from(SYMBOLS[usize::from(b)]);
    // Fixed-size chunks: no bounds checks in the loop (it was ~40 instructions a quad with them).
    let (quads, _) = body.as_chunks::<4>();
    let (threes, _) = out[start..].as_chunks_mut::<3>();
    for (&[a, b, c, d], three) in quads.iter().zip(threes) {
        let (a, b, c, d) = (value(a), value(b), value(c), value(d));
        if (a | b | c | d) & INVALID != 0 {
            return None;
        }
        let n = a << 18 | b << 12 | c << 6 | d;
        *three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    }
    if let [a, b, c, _] = *tail {
        let (a, b, c) = (value(a), value(b), if pad == 1 { value(c) } else { 0 });
        let n = a << 18 | b << 12 | c << 6;
        // The symbols must be valid and the bits past the data zero (canonical encoding).
        let data_bits = if pad == 1 { 0x00ff_ff00 } else { 0x00ff_0000 };
        if (a | b | c) & INVALID != 0 || n & !data_bits != 0 {
            return None;
        }
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(())
}

/// Appends the standard base64 of `data`, `=`-padded, to `out`.
pub fn encode(data: &[u8], out: &mut String) {
    // A stack buffer a piece, pushed as text: base64 is ASCII, so the check always passes.
    let mut buf = [0u8; 256];
    for piece in data.chunks(buf.len() / 4 * 3) {
        let (triples, tail) = piece.as_chunks::<3>();
        let (quads, _) = buf.as_chunks_mut::<4>();
        let mut len = 0;
        for (&[a, b, c], quad) in triples.iter().zip(quads.iter_mut()) {
            let n = u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c);
            // Two symbols a lookup: 12 bits to a pair.
            let (high, low) = (PAIRS[(n >> 12) as usize], PAIRS[n as usize & 0xfff]);
            *quad = [high[0], high[1], low[0], low[1]];
            len += 4;
        }
        if let [a, ref rest @ ..] = *tail {
            let b = rest.first().copied().unwrap_or(0);
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            let third = if rest.is_empty() { b'=' } else { ALPHABET[(n >> 6) as usize & 63] };
            buf[len..len + 4].copy_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                third,
                b'=',
            ]);
            len += 4;
        }
        out.push_str(core::str::from_utf8(&buf[..len]).unwrap_or_default());
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two symbols of every 12-bit value (8 KiB): the encoder looks up a pair at a time, half
/// the lookups and shifts of one symbol at a time.
static PAIRS: [[u8; 2]; 4096] = {
    let mut table = [[0u8; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        table[i] = [ALPHABET[i >> 6], ALPHABET[i & 63]];
        i += 1;
    }
    table
};

/// [`SYMBOLS`]' mark of a byte outside the alphabet.
const INVALID: u32 = 0x80;

/// The standard alphabet's values; 0x80 for every other byte (`=` included).
static SYMBOLS: [u8; 256] = {
    let mut table = [0x80u8; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn ours(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        super::decode(text.as_bytes(), &mut out).map(|()| out)
    }
    #[test]
    fn canonical_base64_only() {
        assert_eq!(ours("").as_deref(), Some(&b""[..]));
        assert_eq!(ours("Bw==").as_deref(), Some(&[7u8][..]));
        assert_eq!(ours("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(ours("aGkh").as_deref(), Some(&b"hi!"[..]));
        // Bits past the data, missing or extra padding, `=` inside, other alphabets.
        for bad in ["Bx==", "aGl=", "aGk", "Bw=", "Bw===", "B===", "====", "aG=k", "aG-_", "aG\\k", "aGk=aGk="] {
            assert_eq!(ours(bad), None, "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// The same answer as the base64 crate's standard engine (which the full decoder uses).
        #[test]
        fn agrees_with_the_base64_crate(text in "[A-Za-z0-9+/=_-]{0,13}", data in prop::collection::vec(any::<u8>(), 0..20)) {
            prop_assert_eq!(ours(&text), STANDARD.decode(&text).ok());
            prop_assert_eq!(ours(&STANDARD.encode(&data)), Some(data));
        }

        #[test]
        fn encodes_as_the_base64_crate_does(data in prop::collection::vec(any::<u8>(), 0..700)) {
            let mut out = String::from("x");
            super::encode(&data, &mut out);
            prop_assert_eq!(&out[1..], STANDARD.encode(&data));
        }
    }
}
