//! The `http` communication function's response parser (what a remote server sends): any
//! bytes, fed in any split, give a response or an error, never a panic. Input: byte 0 picks
//! the chunk size and whether the request was HEAD; the rest is the stream.
#![no_main]

use fetch::ResponseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else { return };
    let chunk = usize::from(control & 0x7f) + 1;
    let mut parser = ResponseParser::new(16 * 1024, 1 << 20, control & 0x80 != 0);
    for piece in stream.chunks(chunk) {
        match parser.feed(piece) {
            Ok(true) => {
                assert!(parser.is_done());
                let _ = parser.take_response();
                break;
            }
            Ok(false) => {}
            Err(_) => break,
        }
    }
});
