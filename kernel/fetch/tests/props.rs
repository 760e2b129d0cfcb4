//! Properties of the response parser and the request-item parser: any split of a response
//! gives the same result as the whole, and no input makes either panic.

use pappus_fetch::{ParseError, Request, Response, ResponseParser};
use proptest::prelude::*;

/// Feeds `input` in pieces cut at `cuts` (offsets, any order), then ends the stream.
fn parse_in_pieces(input: &[u8], cuts: &[usize], max_body: usize) -> Result<Response, ParseError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut parser = ResponseParser::new(1024, max_body, false);
    let mut start = 0;
    for cut in cuts {
        if parser.feed(&input[start..cut])? {
            break;
        }
        start = cut;
    }
    if !parser.is_done() {
        parser.end_of_stream()?;
    }
    Ok(parser.take_response().expect("done"))
}

/// A response with a body of `body`, framed one of three ways.
fn framed(body: &[u8], framing: u8, chunk: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nServer: test\r\n".to_vec();
    match framing % 3 {
        0 => {
            out.extend(format!("Content-Length: {}\r\n\r\n", body.len()).bytes());
            out.extend(body);
        }
        1 => {
            out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(chunk.max(1)) {
                out.extend(format!("{:x}\r\n", piece.len()).bytes());
                out.extend(piece);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
        }
        _ => {
            out.extend(b"\r\n");
            out.extend(body);
        }
    }
    out
}

proptest! {
    #[test]
    fn any_split_gives_the_same_response(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        framing in 0u8..3,
        chunk in 1usize..300,
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let input = framed(&body, framing, chunk);
        let whole = parse_in_pieces(&input, &[], 4096).unwrap();
        prop_assert_eq!(&whole.body, &body);
        prop_assert_eq!(whole.status, 200);
        let pieces = parse_in_pieces(&input, &cuts, 4096).unwrap();
        prop_assert_eq!(pieces, whole);
        // One byte at a time, too.
        let bytewise: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(parse_in_pieces(&input, &bytewise, 4096).unwrap().body, body);
    }

    #[test]
    fn any_split_over_the_limit_is_too_large(
        body in prop::collection::vec(any::<u8>(), 101..600),
        framing in 0u8..3,
        chunk in 1usize..300,
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let input = framed(&body, framing, chunk);
        let result = parse_in_pieces(&input, &cuts, 100);
        prop_assert!(matches!(result, Err(ParseError::TooLarge(_))), "{:?}", result);
    }

    #[test]
    fn random_bytes_never_panic_the_response_parser(
        input in prop::collection::vec(any::<u8>(), 0..1024),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        no_body: bool,
    ) {
        let mut parser = ResponseParser::new(256, 512, no_body);
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts {
            let _ = parser.feed(&input[start..cut]);
            start = cut;
        }
        let _ = parser.end_of_stream();
        if let Some(response) = parser.take_response() {
            prop_assert!(response.body.len() <= 512);
        }
    }

    #[test]
    fn random_heads_with_a_real_status_line_never_panic(
        tail in prop::collection::vec(prop::sample::select(b"HTTP/1. 0123456789:\r\n chunkedContent-LengthTransfer-Encoding,;abcxyz".to_vec()), 0..400),
    ) {
        let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
        input.extend(tail);
        let mut parser = ResponseParser::new(256, 512, false);
        let _ = parser.feed(&input);
        let _ = parser.end_of_stream();
    }

    #[test]
    fn random_request_items_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..512),
        text in "(GET |POST |)(http|https|ftp)://[a-z0-9.:@\\[\\]]{0,20}(/[ -~]{0,20})?(\r?\n[ -~]{0,30}){0,4}(\r?\n\r?\n[ -~]{0,20})?",
    ) {
        for input in [data.as_slice(), text.as_bytes()] {
            if let Ok(request) = Request::parse(&input.into()) {
                let bytes = request.to_bytes();
                prop_assert!(bytes.ends_with(&request.body));
                prop_assert!(bytes.windows(19).any(|w| w == b"Connection: close\r\n"));
            }
        }
    }
}
