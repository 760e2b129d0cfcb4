//! Standard base64 (RFC 4648 section 4, `=` padding) for the JSON sets format's hot path: item
//! data in requests (the fast path of `json::decode`) and in answers (`Encoder`). The base64
//! crate stays for everything that needs its precise errors; these agree with it (tests below).
//! Why: on the soft-float kernel target `cargo xtask profile matmul3-native` put the crate's
//! `decode_vec` at ~18 guest instructions a symbol and `encode_string` at ~11 a byte; a table a
//! quad (a triple) over fixed-size chunks costs a fraction of that.

use alloc::vec::Vec;

/// Decodes the canonical standard base64 (`=` padding, no trailing bits) that starts `json`
/// and ends at a `"`, appending its bytes to `out`; the text's length (the quote's index), or
/// `None` for anything else (the JSON fast path then leaves the document to the full decoder,
/// which refuses it with the base64 crate's precise error). It never grows `out` past the
/// capacity it has (the caller reserved what the whole body can decode to): text that would
/// is `None`.
///
/// One pass that finds the quote as it decodes (a symbol table marks `"` invalid), four symbols
/// at a time through four pre-shifted tables, one OR a symbol: `cargo xtask profile
/// matmul3-native` put a quote scan then a decode of one table at ~13 guest instructions a
/// symbol (soft-float kernel target, no SIMD), and the base64 crate's `decode_vec` at ~18.
pub fn decode_quoted(json: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    // Written in place a block at a time (pushing three bytes at a time cost more than the
    // decoding), then cut back to what was decoded.
    const BLOCK_QUADS: usize = 128;
    let mut at = 0;
    loop {
        let room = (out.capacity() - out.len()) / 3;
        let block = ((json.len() - at) / 4).min(BLOCK_QUADS).min(room);
        if block == 0 {
            break;
        }
        let start = out.len();
        out.resize(start + block * 3, 0);
        // Fixed-size chunks: no bounds checks in the loop.
        let (quads, _) = json[at..at + block * 4].as_chunks::<4>();
        let (threes, _) = out[start..].as_chunks_mut::<3>();
        let mut done = 0;
        for (&[a, b, c, d], three) in quads.iter().zip(threes) {
            let n = SHIFTED[0][usize::from(a)]
                | SHIFTED[1][usize::from(b)]
                | SHIFTED[2][usize::from(c)]
                | SHIFTED[3][usize::from(d)];
            if n & INVALID_BIT != 0 {
                break;
            }
            *three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            done += 1;
        }
        out.truncate(start + done * 3);
        at += done * 4;
        if done < block {
            break;
        }
    }
    // What is left starts with the quote, a last padded quad and the quote, or is not for us.
    let value = |b: u8| u32::from(SYMBOLS[usize::from(b)]);
    let (a, b, c, pad) = match json[at..] {
        [b'"', ..] => return Some(at),
        [a, b, b'=', b'=', b'"', ..] => (value(a), value(b), 0, 2),
        [a, b, c, b'=', b'"', ..] => (value(a), value(b), value(c), 1),
        _ => return None,
    };
    let n = a << 18 | b << 12 | c << 6;
    // The symbols valid, the bits past the data zero (canonical encoding), room for the bytes.
    let data_bits = if pad == 1 { 0x00ff_ff00 } else { 0x00ff_0000 };
    if (a | b | c) & INVALID != 0 || n & !data_bits != 0 || out.capacity() - out.len() < 3 - pad {
        return None;
    }
    out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    Some(at + 4)
}

/// Appends the standard base64 of `data`, `=`-padded, to `out`, written in place (the room
/// made once, then filled four symbols at a time: no buffer between, no UTF-8 check).
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + data.len().div_ceil(3) * 4, 0);
    let (triples, tail) = data.as_chunks::<3>();
    let (quads, last) = out[start..].as_chunks_mut::<4>();
    debug_assert!(last.is_empty());
    for (&[a, b, c], quad) in triples.iter().zip(quads.iter_mut()) {
        let n = u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c);
        // Two symbols a lookup: 12 bits to a pair; the four symbols stored as one word.
        let (high, low) = (PAIRS[(n >> 12) as usize], PAIRS[n as usize & 0xfff]);
        *quad = (u32::from(high) | u32::from(low) << 16).to_le_bytes();
    }
    if let ([a, rest @ ..], Some(quad)) = (tail, quads.last_mut()) {
        let b = rest.first().copied().unwrap_or(0);
        let n = u32::from(*a) << 16 | u32::from(b) << 8;
        let third = if rest.is_empty() { b'=' } else { ALPHABET[(n >> 6) as usize & 63] };
        *quad = [ALPHABET[(n >> 18) as usize & 63], ALPHABET[(n >> 12) as usize & 63], third, b'='];
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two symbols of every 12-bit value (8 KiB), as the little-endian `u16` of the pair: the
/// encoder looks up a pair at a time, half the lookups and shifts of one symbol at a time.
static PAIRS: [u16; 4096] = {
    let mut table = [0u16; 4096];
    let mut i = 0;
    while i < 4096 {
        table[i] = u16::from_le_bytes([ALPHABET[i >> 6], ALPHABET[i & 63]]);
        i += 1;
    }
    table
};

/// [`SYMBOLS`]' mark of a byte outside the alphabet.
const INVALID: u32 = 0x80;

/// [`SHIFTED`]'s mark of a byte outside the alphabet: above the 24 data bits.
const INVALID_BIT: u32 = 1 << 31;

/// The standard alphabet's values shifted to their place in a quad's 24 bits (a quad's first
/// symbol is its top six), [`INVALID_BIT`] for every other byte (`=` and `"` included): a quad
/// is four lookups ORed together, one test for a bad symbol.
static SHIFTED: [[u32; 256]; 4] = {
    let mut tables = [[INVALID_BIT; 256]; 4];
    let mut i = 0;
    while i < ALPHABET.len() {
        let mut place = 0;
        while place < 4 {
            tables[place][ALPHABET[i] as usize] = (i as u32) << (18 - 6 * place);
            place += 1;
        }
        i += 1;
    }
    tables
};

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
    use alloc::vec::Vec;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    /// Decodes `text` as the JSON fast path does: quoted, followed by more of the document,
    /// with room for what it decodes to.
    fn ours(text: &str) -> Option<Vec<u8>> {
        let json = alloc::format!("{text}\"]}}");
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let len = super::decode_quoted(json.as_bytes(), &mut out)?;
        assert_eq!(len, text.len(), "the quote's index");
        Some(out)
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
        // A quote inside a quad, and text that ends without one.
        let mut out = Vec::with_capacity(16);
        assert_eq!(super::decode_quoted(b"aGkhaG\"k", &mut out), None);
        assert_eq!(super::decode_quoted(b"aGkhaGkh", &mut out), None);
        // Never past the room it was given: two quads fit in 6 bytes, not three.
        let mut out = Vec::with_capacity(6);
        assert_eq!(super::decode_quoted(b"aGkhaGkhaGkh\"", &mut out), None);
        assert!(out.capacity() == 6 && out.len() <= 6);
        let mut out = Vec::with_capacity(4);
        assert_eq!(super::decode_quoted(b"aGkhaGk=\"", &mut out), None, "no room for the last two bytes");
        assert!(out.capacity() == 4);
        let mut out = Vec::with_capacity(5);
        assert_eq!(super::decode_quoted(b"aGkhaGk=\"", &mut out), Some(8));
        assert_eq!(out, b"hi!hi");
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
            let mut out = b"x".to_vec();
            super::encode(&data, &mut out);
            let want = STANDARD.encode(&data);
            prop_assert_eq!(&out[1..], want.as_bytes());
        }
    }
}
