//! The fleet's blob server (`cargo xtask fleet blob-server --dir D --listen A:P`, started by
//! `fleet up` inside the fleet's namespace): a static directory over HTTP/1.1, one file per
//! image named by its SHA-256 digest (lowercase hex).
//!
//! - `GET /blobs/<digest>`: the file (200), or 404.
//! - `PUT /blobs/<digest>` with the image as the body: 201 once written, after its SHA-256 was
//!   checked against the name (400 otherwise); written to a temporary file and renamed, so a
//!   reader never sees half an image.
//!
//! Any static HTTP server could serve the GETs (nginx, `python3 -m http.server`); this one
//! also takes the uploads `fn deploy --fleet` makes, so the deploying side needs no access to
//! the directory. One thread per connection, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use pappus_fleet::layout::{is_digest, sha256_hex};

use crate::args::{Args, Spec};
use crate::util::{Failure, Result};

pub const SPEC: Spec = Spec { values: &["dir", "listen"], switches: &[], max_positionals: 1 };

/// The largest image accepted (the nodes' default `limit image_bytes` is lower).
const MAX_BLOB: u64 = 256 << 20;

pub fn main(args: &Args) -> Result {
    let dir = PathBuf::from(args.value("dir").ok_or_else(|| Failure("--dir DIR".into()))?);
    let listen = args.value("listen").ok_or_else(|| Failure("--listen ADDR:PORT".into()))?;
    std::fs::create_dir_all(&dir)?;
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("blob server: {} on http://{listen}/blobs/", dir.display());
    for stream in listener.incoming().flatten() {
        let dir = dir.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &dir) {
                eprintln!("blob server: {e}");
            }
        });
    }
    Ok(())
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    stream.write_all(body)
}

fn serve(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let mut length: Option<u64> = None;
    let mut expect_continue = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok();
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("expect")
        {
            expect_continue = value.trim().eq_ignore_ascii_case("100-continue");
        }
    }
    let Some(digest) = path.strip_prefix("/blobs/").filter(|d| is_digest(d)) else {
        return respond(&mut stream, "404 Not Found", b"blobs are /blobs/<sha256 hex>\n");
    };
    let file = dir.join(digest);
    match method {
        "GET" => match std::fs::read(&file) {
            Ok(bytes) => respond(&mut stream, "200 OK", &bytes),
            Err(_) => respond(&mut stream, "404 Not Found", b"no such blob\n"),
        },
        "PUT" => {
            let Some(length) = length.filter(|&l| l <= MAX_BLOB) else {
                return respond(&mut stream, "411 Length Required", b"a Content-Length up to 256 MiB\n");
            };
            if expect_continue {
                stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            let mut body = Vec::new();
            reader.take(length).read_to_end(&mut body)?;
            if body.len() as u64 != length {
                return respond(&mut stream, "400 Bad Request", b"the body ended early\n");
            }
            let actual = sha256_hex(&body);
            if actual != digest {
                let message = format!("the body's SHA-256 is {actual}, not {digest}\n");
                return respond(&mut stream, "400 Bad Request", message.as_bytes());
            }
            let temporary = dir.join(format!(".{digest}.{}", std::process::id()));
            std::fs::write(&temporary, &body)?;
            std::fs::rename(&temporary, &file)?;
            respond(&mut stream, "201 Created", b"")
        }
        _ => respond(&mut stream, "405 Method Not Allowed", b"GET or PUT\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pappus::http::{self, Endpoint, Request};

    use super::*;

    #[test]
    fn put_checks_the_digest_and_get_serves_it() {
        let dir = pappus_tests::target_dir().join("tmp").join(format!("blobserver-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = dir.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &served);
            }
        });
        let endpoint = Endpoint { host: "127.0.0.1".into(), port, prefix: "/blobs".into() };
        let send = |method: &str, path: String, body: &[u8]| {
            let request = Request::new(method, path).body(body);
            http::send(&endpoint, &request, Duration::from_secs(10)).unwrap()
        };
        let image = vec![7u8; 300_000]; // large enough for the client's 100-continue
        let digest = sha256_hex(&image);
        assert_eq!(send("GET", format!("/{digest}"), b"").status, 404);
        let wrong = send("PUT", format!("/{digest}"), b"something else");
        assert_eq!(wrong.status, 400, "{}", String::from_utf8_lossy(&wrong.body));
        assert!(!dir.join(&digest).exists());
        assert_eq!(send("PUT", format!("/{digest}"), &image).status, 201);
        let got = send("GET", format!("/{digest}"), b"");
        assert_eq!((got.status, got.body.len()), (200, image.len()));
        assert_eq!(got.body, image);
        assert_eq!(send("GET", "/../etc/passwd".into(), b"").status, 404);
        assert_eq!(send("DELETE", format!("/{digest}"), b"").status, 405);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
