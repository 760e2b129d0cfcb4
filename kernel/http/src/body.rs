//! Incremental request-body decoding: `Content-Length` and `Transfer-Encoding: chunked`.
//!
//! A [`Decoder`] is fed whatever bytes have arrived, consumes what belongs to the body and appends
//! the payload to the request's body. It never looks at a byte twice, so a body that arrives in
//! many small reads costs time linear in its size.
//!
//! The `http` communication function's client (crate `pappus-fetch`) decodes response bodies
//! with it too, which is why it is public; errors then carry the status this server would
//! answer (400 malformed framing, 413 over the limit, 431 trailers too long, 503 out of memory).

use alloc::vec::Vec;

use crate::limits::MemoryGate;
use crate::response::HttpError;

/// Longest chunk extension (everything between the chunk size and its CRLF) we skip.
const MAX_CHUNK_EXT: usize = 4096;

/// Where a body decoder stands.
#[derive(Clone, Debug)]
pub enum Decoder {
    /// `Content-Length` framing: `remaining` bytes still to come, out of `total`.
    Length { remaining: usize, total: usize },
    /// Chunked framing.
    Chunked(Chunked),
}

#[derive(Clone, Debug)]
pub struct Chunked {
    state: ChunkState,
    /// Bytes of trailer section seen so far (bounded by the head limit).
    trailer_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex chunk size; `digits` read so far.
    Size {
        size: usize,
        digits: usize,
    },
    /// After the size: optional whitespace, then `;ext` or CR.
    AfterSize {
        size: usize,
    },
    /// Skipping a chunk extension until CR; `len` bytes of it so far.
    Ext {
        size: usize,
        len: usize,
    },
    /// Saw the CR that ends the size line; expect LF.
    SizeLf {
        size: usize,
    },
    /// Inside chunk data.
    Data {
        remaining: usize,
    },
    /// After chunk data: expect CR, then LF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line, skipped up to its LF.
    TrailerLine,
    /// Saw the CR of the final empty line; expect LF.
    FinalLf,
    Done,
}

/// What one call to [`Decoder::decode`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belonged to the body (framing included).
    pub consumed: usize,
    /// Whether the body is now complete.
    pub done: bool,
}

impl Decoder {
    /// A body of exactly `total` bytes.
    pub fn length(total: usize) -> Self {
        Decoder::Length { remaining: total, total }
    }

    /// A chunked body (RFC 9112 section 7.1).
    pub fn chunked() -> Self {
        Decoder::Chunked(Chunked { state: ChunkState::Size { size: 0, digits: 0 }, trailer_bytes: 0 })
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        match self {
            Decoder::Length { remaining, .. } => *remaining == 0,
            Decoder::Chunked(c) => c.state == ChunkState::Done,
        }
    }

    /// Consumes body bytes from `input`, appending the payload to `body` (never past
    /// `max_body` bytes in all; `max_trailer` bounds a chunked body's trailer section; `gate`
    /// is asked before the buffer grows, and a no is 503).
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max_body: usize,
        max_trailer: usize,
        gate: MemoryGate,
    ) -> Result<Progress, HttpError> {
        match self {
            Decoder::Length { remaining, total } => {
                let n = input.len().min(*remaining);
                append(body, &input[..n], *total, gate)?;
                *remaining -= n;
                Ok(Progress { consumed: n, done: *remaining == 0 })
            }
            Decoder::Chunked(c) => c.decode(input, body, max_body, max_trailer, gate),
        }
    }

    /// A description of how far the body got, for error messages.
    pub(crate) fn describe_progress(&self, body_len: usize) -> alloc::string::String {
        match self {
            Decoder::Length { total, .. } => alloc::format!("{body_len} of {total} body bytes"),
            Decoder::Chunked(_) => alloc::format!("{body_len} bytes of a chunked body"),
        }
    }
}

impl Chunked {
    fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max_body: usize,
        max_trailer: usize,
        gate: MemoryGate,
    ) -> Result<Progress, HttpError> {
        use ChunkState::*;
        let mut i = 0;
        while i < input.len() && self.state != Done {
            if let Data { remaining } = self.state {
                let n = remaining.min(input.len() - i);
                append(body, &input[i..i + n], max_body, gate)?;
                i += n;
                self.state = if n == remaining { DataCr } else { Data { remaining: remaining - n } };
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                Size { size, digits } => match (hex(b), b) {
                    (Some(d), _) => {
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(d))
                            .filter(|&s| body.len().saturating_add(s) <= max_body)
                            .ok_or_else(|| {
                                HttpError::new(
                                    413,
                                    alloc::format!("chunked request body exceeds the {max_body}-byte limit"),
                                )
                            })?;
                        Size { size, digits: digits + 1 }
                    }
                    _ if digits == 0 => return Err(HttpError::bad_request("chunk size is not a hex number")),
                    (_, b' ' | b'\t') => AfterSize { size },
                    (_, b';') => Ext { size, len: 0 },
                    (_, b'\r') => SizeLf { size },
                    _ => return Err(HttpError::bad_request("invalid byte after a chunk size")),
                },
                AfterSize { size } => match b {
                    b' ' | b'\t' => AfterSize { size },
                    b';' => Ext { size, len: 0 },
                    b'\r' => SizeLf { size },
                    _ => return Err(HttpError::bad_request("invalid byte after a chunk size")),
                },
                Ext { size, len } => match b {
                    b'\r' => SizeLf { size },
                    b'\n' | 0 => return Err(HttpError::bad_request("invalid byte in a chunk extension")),
                    _ if len >= MAX_CHUNK_EXT => {
                        return Err(HttpError::bad_request(alloc::format!(
                            "chunk extension longer than {MAX_CHUNK_EXT} bytes"
                        )));
                    }
                    _ => Ext { size, len: len + 1 },
                },
                SizeLf { size } => match (b, size) {
                    (b'\n', 0) => TrailerStart,
                    (b'\n', _) => {
                        reserve_for(body, size, max_body, gate)?;
                        Data { remaining: size }
                    }
                    _ => return Err(HttpError::bad_request("chunk size line does not end in CRLF")),
                },
                DataCr if b == b'\r' => DataLf,
                DataLf if b == b'\n' => Size { size: 0, digits: 0 },
                DataCr | DataLf => return Err(HttpError::bad_request("chunk data is not followed by CRLF")),
                TrailerStart | TrailerLine => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > max_trailer {
                        return Err(HttpError::new(
                            431,
                            alloc::format!("chunked trailer section exceeds the {max_trailer}-byte limit"),
                        ));
                    }
                    match (self.state, b) {
                        (TrailerStart, b'\r') => FinalLf,
                        (_, b'\n') => TrailerStart,
                        _ => TrailerLine,
                    }
                }
                FinalLf if b == b'\n' => Done,
                FinalLf => return Err(HttpError::bad_request("chunked body does not end in CRLF")),
                Data { .. } | Done => unreachable!("handled above"),
            };
        }
        Ok(Progress { consumed: i, done: self.state == Done })
    }
}

fn hex(b: u8) -> Option<usize> {
    (b as char).to_digit(16).map(|d| d as usize)
}

/// Makes room for `additional` more bytes, growing geometrically but never past `bound` bytes in
/// all, so memory follows the bytes that actually arrived (a client that announces 64 MiB and
/// sends nothing holds nothing) while a large body still costs only O(log n) reallocations.
///
/// Memory can run out (a kernel heap is finite and fragments): then the request is refused with
/// 503 instead of the allocation failure ending the process — first retrying with exactly what
/// is needed, since the geometric step may be what did not fit.
fn reserve_for(body: &mut Vec<u8>, additional: usize, bound: usize, gate: MemoryGate) -> Result<(), HttpError> {
    let need = body.len() + additional;
    if need <= body.capacity() {
        return Ok(());
    }
    let target = need.max(body.capacity().saturating_mul(2)).max(4096).min(bound).max(need);
    let fits = |body: &mut Vec<u8>, bytes: usize| gate.allows(bytes) && body.try_reserve_exact(bytes).is_ok();
    let step = target - body.len();
    if fits(body, step) || fits(body, additional) {
        return Ok(());
    }
    Err(HttpError::new(503, alloc::format!("not enough memory for a request body of {need} bytes; try again later")))
}

pub(crate) fn append(body: &mut Vec<u8>, data: &[u8], bound: usize, gate: MemoryGate) -> Result<(), HttpError> {
    reserve_for(body, data.len(), bound, gate)?;
    body.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn decode_all(mut d: Decoder, input: &[u8], step: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut body = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let given = step.min(input.len() - pos);
            let p = d.decode(&input[pos..pos + given], &mut body, 1 << 20, 1024, MemoryGate::ALWAYS)?;
            pos += p.consumed;
            if p.done {
                return Ok((body, pos));
            }
            assert_eq!(p.consumed, given, "decoder must consume all it is given until done");
        }
        Err(HttpError::bad_request("incomplete"))
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let input = b"4;name=value;q=\"a b\"\r\nWiki\r\n5 ;x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, used) = decode_all(Decoder::chunked(), input, step).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(&input[used..], b"NEXT");
        }
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"4\nWiki\r\n0\r\n\r\n",
            b"4\r\nWikiX\r\n",
            b"4\r\nWiki\r\n0\r\n\rX",
            b"4 x\r\n",
            b"4;a\nb\r\n",
        ] {
            let e = decode_all(Decoder::chunked(), bad, 64).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn chunk_size_overflow_and_limit_are_413() {
        let e = decode_all(Decoder::chunked(), b"ffffffffffffffffffffffff\r\n", 64).unwrap_err();
        assert_eq!(e.status, 413);
        let e = decode_all(Decoder::chunked(), b"100001\r\n", 64).unwrap_err();
        assert_eq!(e.status, 413);
        // The total counts, not just one chunk.
        let mut input = b"80000\r\n".to_vec();
        input.extend(vec![b'a'; 0x80000]);
        input.extend(b"\r\n80001\r\n");
        assert_eq!(decode_all(Decoder::chunked(), &input, 1000).unwrap_err().status, 413);
    }

    #[test]
    fn trailer_limit_is_431() {
        let mut input = b"0\r\n".to_vec();
        input.extend(vec![b'x'; 2000]);
        assert_eq!(decode_all(Decoder::chunked(), &input, 100).unwrap_err().status, 431);
    }

    #[test]
    fn a_gate_that_says_no_is_503_and_takes_nothing() {
        // The gate lets at most 64 KiB be taken at once: small pieces pass, a 100 KiB one not.
        let gate = MemoryGate(|bytes| bytes <= 64 << 10);
        let mut d = Decoder::length(1 << 20);
        let mut body = Vec::new();
        d.decode(&[1u8; 1000], &mut body, 1 << 20, 0, gate).unwrap();
        let before = body.capacity();
        let e = d.decode(&vec![1u8; 100 << 10], &mut body, 1 << 20, 0, gate).unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!((body.len(), body.capacity()), (1000, before), "nothing taken past the gate");
        let mut chunked = Decoder::chunked();
        let e = chunked.decode(b"100000\r\n", &mut Vec::new(), 1 << 30, 0, MemoryGate(|_| false)).unwrap_err();
        assert_eq!(e.status, 503);
    }

    #[test]
    fn length_body_grows_in_few_steps_and_never_past_its_length() {
        const TOTAL: usize = 16 << 20;
        let data = vec![7u8; 1460];
        let mut d = Decoder::length(TOTAL);
        let mut body = Vec::new();
        let (mut reallocs, mut cap, mut fed) = (0, 0, 0);
        while !d.is_done() {
            let p = d.decode(&data, &mut body, TOTAL, 0, MemoryGate::ALWAYS).unwrap();
            fed += p.consumed;
            if body.capacity() != cap {
                reallocs += 1;
                cap = body.capacity();
            }
        }
        assert_eq!(fed, TOTAL);
        assert_eq!(body.len(), TOTAL);
        assert_eq!(body.capacity(), TOTAL, "capacity never exceeds the declared length");
        assert!(reallocs <= 14, "{reallocs} reallocations for 16 MiB");
    }

    #[test]
    fn chunked_body_grows_in_few_steps() {
        let mut d = Decoder::chunked();
        let mut body = Vec::new();
        let chunk = [b"5b4\r\n".as_slice(), &[1u8; 0x5b4], b"\r\n"].concat();
        let (mut reallocs, mut cap) = (0, 0);
        for _ in 0..10_000 {
            let p = d.decode(&chunk, &mut body, 64 << 20, 0, MemoryGate::ALWAYS).unwrap();
            assert_eq!(p.consumed, chunk.len());
            if body.capacity() != cap {
                reallocs += 1;
                cap = body.capacity();
            }
        }
        assert_eq!(body.len(), 10_000 * 0x5b4);
        assert!(reallocs <= 16, "{reallocs} reallocations");
    }
}
