//! The front door over a real NIC: QEMU q35 with virtio-net and user networking, a host port
//! forwarded to the guest's 8080. Plain `std::net` clients, raw bytes where the test is about
//! the wire.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use pappus_tests::Arch;
use pappus_tests::node::{Node, Tenant, boot as boot_node, boot_cmdline, boot_with, pattern, read_response, status_of};

fn boot(test: &str) -> Option<Node> {
    boot_node(test, &[])
}

#[test]
fn endpoints_bodies_keepalive_pipelining() {
    let Some(node) = boot("endpoints_bodies_keepalive_pipelining") else { return };

    let health = node.call("GET", "/healthz", b"");
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    let text = health.text();
    for key in ["\"status\":\"ok\"", "\"version\"", "\"uptime_ms\"", "\"cores\""] {
        assert!(text.contains(key), "healthz lacks {key}: {text}");
    }

    // `/metrics` names tenants and functions: only the operator's token opens it.
    for (headers, challenge) in [
        (vec![], "Bearer realm=\"pappus-operator\""),
        (
            vec![("Authorization", "Bearer not-the-operator-0123456789")],
            "Bearer realm=\"pappus-operator\", error=\"invalid_token\"",
        ),
        (vec![("Authorization", "Basic b3BzOm9wcw==")], "Bearer realm=\"pappus-operator\""),
    ] {
        let r = node.request("GET", "/metrics", &headers, b"");
        assert_eq!(r.status, 401, "/metrics with {headers:?}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{headers:?}");
        assert!(r.text().contains("\"code\":\"unauthorized\""), "{}", r.text());
        assert!(!r.text().contains("pappus_"), "a refusal shows no metric: {}", r.text());
    }
    // Prometheus text: HELP/TYPE comments and `name{labels} value` samples, nothing else.
    let metrics = node.metrics();
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    let text = metrics.text();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let bare = name.split('{').next().unwrap();
        assert!(bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name in {line:?}");
    }
    for name in [
        "pappus_http_responses_total",
        "pappus_nic_rx_packets_total",
        "pappus_frames_free",
        "pappus_heap_bytes_used",
        "pappus_heap_allocations_total",
        "pappus_net_sockets",
        "pappus_mpk_keys_live",
    ] {
        assert!(text.contains(name), "metrics lack {name}");
    }

    for len in [0, 1, 64 * 1024, 16 * 1024 * 1024] {
        let body = pattern(len);
        let r = node.call("POST", "/v1/echo", &body);
        assert_eq!(r.status, 200, "echo of {len} bytes");
        assert!(r.body == body, "echo of {len} bytes came back different ({} bytes)", r.body.len());
    }

    // Expect: 100-continue, as curl sends for large uploads: the body goes only after the 100.
    let body = pattern(2 * 1024 * 1024);
    let mut s = node.connect();
    let head =
        format!("POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let interim = read_response(&mut reader).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(&body).unwrap();
    let r = read_response(&mut reader).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "100-continue echo differs");

    // The same with curl itself, which sends `Expect: 100-continue` for a 16 MiB file.
    let dir = std::env::temp_dir().join(format!("pappus-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (upload, download) = (dir.join("16MiB.bin"), dir.join("echo.bin"));
    let body = pattern(16 * 1024 * 1024);
    std::fs::write(&upload, &body).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "-v", "--max-time", "120", "--data-binary"])
        .arg(format!("@{}", upload.display()))
        .arg("-o")
        .arg(&download)
        .arg(format!("http://127.0.0.1:{}/v1/echo", node.port))
        .output()
        .expect("curl must be installed for the network suite (apt-get install curl)");
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl --data-binary @16MiB: {trace}");
    assert!(trace.contains("Expect: 100-continue"), "curl did not send Expect: 100-continue:\n{trace}");
    assert!(std::fs::read(&download).unwrap() == body, "curl's 16 MiB echo came back different");
    let _ = std::fs::remove_dir_all(&dir);

    // Chunked upload.
    let mut s = node.connect();
    s.write_all(b"POST /v1/echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    s.write_all(b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world!"[..]));

    // Keep-alive: three requests, one connection.
    let s = node.connect();
    let mut writer = s.try_clone().unwrap();
    let mut reader = BufReader::new(s);
    for i in 0..3 {
        let msg = format!("request {i}");
        write!(writer, "POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{msg}", msg.len()).unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!((r.status, r.text()), (200, msg));
    }

    // Pipelining: all requests in one write, answers in order.
    let mut batch = String::new();
    for i in 0..5 {
        let msg = format!("pipelined {i}");
        batch += &format!("POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n{msg}", msg.len());
    }
    batch += "GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n";
    let mut s = node.connect();
    s.write_all(batch.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    for i in 0..5 {
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.text(), format!("pipelined {i}"));
    }
    assert_eq!(read_response(&mut reader).unwrap().status, 200);

    let unknown = node.call("GET", "/nope", b"");
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("\"code\":\"not_found\""), "{}", unknown.text());
}

/// With four CPUs (three parked, the I/O loop on the boot CPU) the node serves as with one:
/// healthz, echo of small and large bodies, keep-alive, and memory back at its baseline.
/// Under `netfault=` the NIC drops and corrupts frames (smoltcp's `FaultInjector`, both
/// directions): TCP must recover every loss, the checksums must catch every flipped bit, and
/// what comes back must be byte-exact: echoes and invocations of 1 MiB.
#[test]
fn faulty_link_still_delivers_byte_exact() {
    const TENANT: Tenant = Tenant { name: "alice", token: "alice-token-0123456789abcdef" };
    let test = "faulty_link_still_delivers_byte_exact";
    let Some(node) = boot_cmdline(test, &[TENANT], "netfault=drop:1,corrupt:1,seed:12345") else { return };
    let injecting = "injecting faults: 1% of frames dropped, 1% corrupted (one bit), seed 12345";
    assert!(node.qemu.lines().iter().any(|l| l.contains(injecting)), "no fault injection:\n{}", node.qemu.tail(20));
    let auth = format!("Bearer {}", TENANT.token);
    let upper = pappus_tests::functions::wasm("template");
    let r = node.request(
        "PUT",
        "/v1/functions/upper?engine=wasm&inputs=lines&outputs=upper&timeout_ms=30000",
        &[("Authorization", &auth)],
        &upper,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let raw = [("Authorization", auth.as_str()), ("Accept", "application/octet-stream")];
    // Once before the baseline: the first run prepares the module and grows wasmi's stacks.
    let r = node.request("POST", "/v1/invoke/upper", &raw, b"warm");
    assert_eq!((r.status, r.text().as_str()), (200, "WARM"));
    let baseline = node.baseline();
    for round in 0..2 {
        let body = pattern(1 << 20).into_iter().map(|b| b ^ round).collect::<Vec<u8>>();
        let r = node.call("POST", "/v1/echo", &body);
        assert_eq!(r.status, 200, "echo round {round}");
        assert!(r.body == body, "echo round {round}: {} bytes came back different", r.body.len());

        let r = node.request("POST", "/v1/invoke/identity", &raw, &body);
        assert_eq!(r.status, 200, "identity round {round}: {}", r.text());
        assert!(r.body == body, "identity round {round}: {} bytes came back different", r.body.len());

        let text: Vec<u8> = (0..1 << 20).map(|i: usize| b"abcdefghij klmnop"[(i + usize::from(round)) % 17]).collect();
        let r = node.request("POST", "/v1/invoke/upper", &raw, &text);
        assert_eq!(r.status, 200, "upper round {round}: {}", r.text());
        assert!(r.body == text.to_ascii_uppercase(), "upper round {round}: the answer differs");
    }
    node.assert_healthy(baseline, "1 MiB transfers over a faulty link");
}

/// The DHCP client waits outside smoltcp's socket set while its lease runs (it would cost every
/// frame sent) and comes back to renew: with leases capped at 4 s (`dhcp_lease=4`, renewal at
/// 2 s) the node renews again and again and keeps its address and its service throughout.
#[test]
fn dhcp_renews_its_lease_while_serving() {
    let test = "dhcp_renews_its_lease_while_serving";
    let Some(node) = boot_cmdline(test, &[], "dhcp_lease=4") else { return };
    let renewals = || node.qemu.lines().iter().filter(|l| l.contains("DHCP lease 10.0.2.15/24 renewed")).count();
    let start = std::time::Instant::now();
    while renewals() < 3 {
        assert!(start.elapsed() < Duration::from_secs(60), "fewer than 3 renewals in 60 s:\n{}", node.qemu.tail(30));
        let r = node.call("POST", "/v1/echo", b"still here");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"still here"[..]), "echo between renewals");
        std::thread::sleep(Duration::from_millis(250));
    }
    let lost = node.qemu.lines().iter().any(|l| l.contains("DHCP lease lost"));
    assert!(!lost, "the lease was lost:\n{}", node.qemu.tail(30));
}

/// A request that finds the I/O loop asleep (idle for longer than its 2 ms spin) ends the sleep
/// through the NIC's receive interrupt (MSI-X to the I/O core), not the sleep's end: each is
/// counted in `pappus_device_interrupts_total`. The test counts; it does not time.
#[test]
fn a_frame_wakes_the_sleeping_io_loop() {
    let Some(node) = boot("a_frame_wakes_the_sleeping_io_loop") else { return };
    let routed =
        node.qemu.lines().iter().any(|l| l.contains("virtio-net") && l.contains("a frame wakes the idle loop"));
    assert!(routed, "the boot log does not route the NIC's interrupt:\n{}", node.qemu.tail(40));
    let interrupts = || node.metric("pappus_device_interrupts_total{cpu=\"0\"}");
    let before = interrupts();
    let mut s = node.connect();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for i in 0..5 {
        thread::sleep(Duration::from_millis(50));
        write!(s, "POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]), "echo {i} after 50 ms idle");
    }
    let woken = interrupts() - before;
    assert!(woken >= 5, "5 requests to a sleeping node, {woken} device interrupts");
    let busy = interrupts();
    for i in 0..200 {
        write!(s, "POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200, "back-to-back echo {i}");
    }
    // Back to back the loop mostly spins, and a polled queue raises nothing: an unmasked one
    // would raise one interrupt a request or more. (A host that stalls the client past the spin
    // window lets the loop sleep now and then: those wake-ups are legitimate.)
    let during = interrupts() - busy;
    assert!(
        during < 100,
        "{during} device interrupts during 200 back-to-back requests: the queue is not masked while polled"
    );
}

#[test]
fn serves_with_four_cpus() {
    let Some(node) = boot_with("serves_with_four_cpus", Arch::X86_64, &[], Some(4)) else { return };
    let baseline = node.baseline();
    let r = node.call("GET", "/healthz", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    for len in [0, 64, 1024 * 1024] {
        let body = pattern(len);
        let r = node.call("POST", "/v1/echo", &body);
        assert_eq!(r.status, 200, "echo of {len} bytes");
        assert!(r.body == body, "echo of {len} bytes came back different");
    }
    let mut s = node.connect();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for i in 0..20 {
        let body = pattern(100 + i);
        write!(s, "POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
        s.write_all(&body).unwrap();
        let r = read_response(&mut reader).unwrap();
        assert!(r.status == 200 && r.body == body, "keep-alive request {i}");
    }
    drop((s, reader));
    node.assert_healthy(baseline, "requests with four CPUs");
}

#[test]
fn hundred_concurrent_connections() {
    let Some(node) = boot("hundred_concurrent_connections") else { return };
    let baseline = node.baseline();
    const N: usize = 100;
    // QEMU's user networking listens on the forwarded port with a backlog of one: when many
    // connects arrive at once the host kernel drops their handshakes' last ACK, the clients
    // believe they are connected, and QEMU (hence the guest) only sees them half a minute later
    // or never. So the connections open one after the other, each proven by a first keep-alive
    // request; then, with all 100 open at the same time (checked in the guest's own gauge),
    // every connection sends its second request at once.
    let request = |s: &mut TcpStream, reader: &mut BufReader<TcpStream>, i: usize, round: u32, connection: &str| {
        let msg = format!("connection {i} request {round}");
        let head = format!(
            "POST /v1/echo HTTP/1.1\r\nHost: p\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n",
            msg.len()
        );
        s.write_all((head + &msg).as_bytes()).map_err(|e| format!("connection {i} request {round}: {e}"))?;
        let r = read_response(reader).map_err(|e| format!("connection {i} request {round}: {e}"))?;
        if (r.status, r.text()) != (200, msg.clone()) {
            return Err(format!("connection {i} request {round}: {} {:?}", r.status, r.text()));
        }
        Ok::<(), String>(())
    };
    let mut open = Vec::new();
    for i in 0..N {
        let mut s = node.connect();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        request(&mut s, &mut reader, i, 1, "keep-alive").unwrap_or_else(|e| panic!("{e}\n{}", node.qemu.tail(20)));
        open.push((s, reader));
    }
    // 100 held open here, plus the one asking.
    let active = node.metric("pappus_http_connections_active");
    assert!(active > N as u64, "only {active} connections active in the guest while {N} were open");
    let handles: Vec<_> = open
        .into_iter()
        .enumerate()
        .map(|(i, (mut s, mut reader))| thread::spawn(move || request(&mut s, &mut reader, i, 2, "close")))
        .collect();
    for h in handles {
        h.join().unwrap().unwrap_or_else(|e| panic!("{e}\n{}", node.qemu.tail(20)));
    }
    node.assert_healthy(baseline, "100 concurrent connections");
}

#[test]
fn bad_input_is_refused_and_the_kernel_keeps_serving() {
    let Some(node) = boot("bad_input_is_refused_and_the_kernel_keeps_serving") else { return };
    let baseline = node.baseline();

    let mut x: u64 = 0x243f_6a88_85a3_08d3;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut random_with_newline = random.clone();
    random_with_newline.extend_from_slice(b"\r\n\r\n");
    let out = node.raw(&random_with_newline);
    assert_eq!(status_of(&out), 400, "random bytes: {}", String::from_utf8_lossy(&out));
    node.assert_healthy(baseline, "random bytes");

    let out = node.raw(b"GET /heal\r\n\r\n");
    assert_eq!(status_of(&out), 400, "truncated request line");
    node.assert_healthy(baseline, "a truncated request line");

    let big = format!("GET /healthz HTTP/1.1\r\nHost: p\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let out = node.raw(big.as_bytes());
    assert_eq!(status_of(&out), 431, "header over the limit");
    node.assert_healthy(baseline, "an oversize header");

    let out = node.raw(b"POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: 70000000\r\n\r\n");
    assert_eq!(status_of(&out), 413, "body over the limit");
    assert!(String::from_utf8_lossy(&out).contains("payload_too_large"));
    node.assert_healthy(baseline, "an oversize body");

    let out = node.raw(b"POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: 12x\r\n\r\n");
    assert_eq!(status_of(&out), 400, "bad Content-Length");
    node.assert_healthy(baseline, "a bad Content-Length");

    let out = node.raw(b"POST /v1/echo HTTP/1.1\r\nHost: p\r\n\r\n");
    assert_eq!(status_of(&out), 411, "POST without a length");

    let out = node.raw(b"GET /healthz HTTP/2.0\r\nHost: p\r\n\r\n");
    assert_eq!(status_of(&out), 505, "HTTP/2.0 request line");

    // A reset in the middle of a body.
    let mut s = node.connect();
    s.write_all(b"POST /v1/echo HTTP/1.1\r\nHost: p\r\nContent-Length: 1000000\r\n\r\n").unwrap();
    s.write_all(&pattern(300_000)).unwrap();
    let sock = socket2_linger_zero(s);
    drop(sock);
    node.assert_healthy(baseline, "a reset in the middle of a body");

    // 1,000 connections opened and dropped.
    for _ in 0..1000 {
        let s = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
        drop(s);
    }
    node.assert_healthy(baseline, "1,000 connections opened and dropped");

    // A client that goes silent: 408, then the connection closes.
    let mut s = node.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(status_of(&out), 408, "silent client: {}", String::from_utf8_lossy(&out));
    node.assert_healthy(baseline, "a silent client");
}

/// Closes with RST instead of FIN (SO_LINGER 0), as a crashing client would.
fn socket2_linger_zero(s: TcpStream) -> TcpStream {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a valid socket with a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    s
}

/// A JSON body whose items the node has no room to decode (53 MB of base64 for one 40 MB item
/// once took a node down with an allocation failure) is answered 503 `out_of_memory`, with a
/// pointer to the binary format, and the node keeps serving.
#[test]
fn a_json_body_too_large_to_decode_is_503_and_the_node_serves() {
    const TENANT: Tenant = Tenant { name: "alice", token: "alice-token-0123456789abcdef" };
    let Some(node) = boot_cmdline("a_json_body_too_large_to_decode_is_503", &[TENANT], "") else { return };
    let auth = format!("Bearer {}", TENANT.token);
    let mut body = br#"{"sets":{"in":[{"data":""#.to_vec();
    body.resize(body.len() + 53_333_336, b'Y');
    body.extend_from_slice(br#""}]}}"#);
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let r = node.request("POST", "/v1/invoke/identity", &headers, &body);
    assert_eq!(r.status, 503, "{}\n{}", r.text(), node.qemu.tail(10));
    assert!(r.text().contains("out_of_memory") && r.text().contains("application/x-pappus-sets"), "{}", r.text());
    let r = node.call("POST", "/v1/echo", b"still serving");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"still serving"[..]));
    assert!(!node.qemu.lines().iter().any(|l| l.contains("PANIC")), "{}", node.qemu.tail(20));
}
