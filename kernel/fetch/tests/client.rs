//! The socket driver (`Client`) against real smoltcp TCP: a loopback Ethernet interface holding
//! the client's sockets and a small HTTP server's listening sockets, on a simulated clock (1 ms
//! per pass). Refusals are real resets, connect timeouts real unanswered ARP, chunked and
//! close-delimited bodies really split by TCP.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use model::{Bytes, HostTable, Item, Set};
use pappus_fetch::{Client, FetchLimits, NetStack};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr};

const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 80;
/// On our subnet but nobody's: ARP goes unanswered, so a SYN is never even sent.
const NOBODY: &str = "10.0.0.99";
/// Room for 8 client connections, plus sockets whose connection just ended and which listen
/// again on the server's next pass (a SYN that finds no listener is refused, as it should be).
const LISTENERS: usize = 24;

struct Stack {
    device: Loopback,
    iface: Interface,
    sockets: SocketSet<'static>,
    added: usize,
}

impl NetStack for Stack {
    fn parts(&mut self) -> (&mut Interface, &mut SocketSet<'static>) {
        (&mut self.iface, &mut self.sockets)
    }

    fn add_tcp_socket(&mut self) -> SocketHandle {
        self.added += 1;
        let buffer = || tcp::SocketBuffer::new(vec![0; 4096]);
        self.sockets.add(tcp::Socket::new(buffer(), buffer()))
    }
}

/// A DNS server on UDP port 53 of the same interface: `*.example` names are 10.0.0.1, except
/// `nxdomain.example`, which does not exist, and `mute.example`, which gets no answer.
struct DnsServer {
    socket: SocketHandle,
    queries: Vec<String>,
}

impl DnsServer {
    fn new(stack: &mut Stack) -> Self {
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket.bind(53).unwrap();
        Self { socket: stack.sockets.add(socket), queries: Vec::new() }
    }

    fn serve(&mut self, stack: &mut Stack) {
        let socket = stack.sockets.get_mut::<udp::Socket>(self.socket);
        while let Ok((query, meta)) = socket.recv() {
            let query = query.to_vec();
            // The question's name: length-prefixed labels from byte 12.
            let mut labels = Vec::new();
            let mut at = 12;
            while query[at] != 0 {
                let len = query[at] as usize;
                labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).to_string());
                at += 1 + len;
            }
            let name = labels.join(".");
            self.queries.push(name.clone());
            if name == "mute.example" {
                continue;
            }
            let found = name != "nxdomain.example";
            let mut answer = query[..2].to_vec(); // the transaction id
            answer.extend([0x81, if found { 0x80 } else { 0x83 }]); // response; NXDOMAIN
            answer.extend([0, 1, 0, u8::from(found), 0, 0, 0, 0]);
            answer.extend(&query[12..]); // the question
            if found {
                answer.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]); // name, A, IN, TTL, length
                answer.extend(ADDRESS.octets());
            }
            socket.send_slice(&answer, meta.endpoint).unwrap();
        }
    }
}

/// A small HTTP server on port 80 of the same interface; one request per connection.
struct Server {
    listeners: Vec<(SocketHandle, Vec<u8>, bool)>,
}

impl Server {
    fn new(stack: &mut Stack) -> Self {
        let listeners = (0..LISTENERS)
            .map(|_| {
                let buffer = || tcp::SocketBuffer::new(vec![0; 2048]);
                let mut socket = tcp::Socket::new(buffer(), buffer());
                socket.listen(PORT).unwrap();
                (stack.sockets.add(socket), Vec::new(), false)
            })
            .collect();
        Self { listeners }
    }

    /// The response to `GET path`: (bytes, then close?) — `None` stays silent.
    fn answer(path: &str) -> Option<Vec<u8>> {
        let plain = |status: &str, body: &str| {
            format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                .into_bytes()
        };
        Some(match path {
            p if p.starts_with("/doc/") => plain("200 OK", &document(&p[5..])),
            "/chunked" => {
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for piece in document("chunked").as_bytes().chunks(7) {
                    out.extend(format!("{:x}\r\n", piece.len()).bytes());
                    out.extend(piece);
                    out.extend(b"\r\n");
                }
                out.extend(b"0\r\n\r\n");
                out
            }
            // A watch-like stream: two event objects in chunks of their own, then the end
            // (`/watch`) or a cut inside the third chunk (`/watch-cut`).
            "/watch" | "/watch-cut" => {
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for event in [&b"{\"n\":1}\n"[..], b"{\"n\":2}\n"] {
                    out.extend(format!("{:x}\r\n", event.len()).bytes());
                    out.extend(event);
                    out.extend(b"\r\n");
                }
                out.extend(if path == "/watch" { &b"0\r\n\r\n"[..] } else { b"8\r\n{\"n\":" });
                out
            }
            "/close" => [&b"HTTP/1.0 200 OK\r\n\r\n"[..], document("close").as_bytes()].concat(),
            "/big" => plain("200 OK", &"x".repeat(3000)),
            "/silent" => return None,
            _ => plain("404 Not Found", "no such document"),
        })
    }

    fn serve(&mut self, stack: &mut Stack) {
        for (handle, request, answered) in &mut self.listeners {
            let socket = stack.sockets.get_mut::<tcp::Socket>(*handle);
            if matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait) {
                socket.abort();
                socket.listen(PORT).unwrap();
                request.clear();
                *answered = false;
                continue;
            }
            while socket.can_recv() {
                socket
                    .recv(|buf| {
                        request.extend_from_slice(buf);
                        (buf.len(), ())
                    })
                    .unwrap();
            }
            if !*answered && request.windows(4).any(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(request);
                let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                assert!(text.contains("\r\nUser-Agent: pappus\r\n") && text.contains("\r\nConnection: close\r\n"));
                *answered = true;
                if let Some(response) = Self::answer(&path) {
                    // Responses fit the 2 KiB send buffer but /big; send it in pieces.
                    request.clear();
                    request.extend(response);
                    request.insert(0, b'!'); // marks "sending": the rest is the response
                }
            }
            if *answered && request.first() == Some(&b'!') {
                let n = socket.send_slice(&request[1..]).unwrap_or(0);
                request.drain(1..1 + n);
                if request.len() == 1 {
                    request.clear();
                    socket.close();
                }
            }
        }
    }
}

fn document(name: &str) -> String {
    (0..40).map(|i| format!("word{} {name} ", i % 7)).collect()
}

fn setup() -> (Stack, Server) {
    let mut device = Loopback::new(Medium::Ethernet);
    let mut iface = Interface::new(Config::new(EthernetAddress([2, 0, 0, 0, 0, 1]).into()), &mut device, Instant::ZERO);
    iface.update_ip_addrs(|addrs| addrs.push(IpCidr::new(ADDRESS.into(), 24)).unwrap());
    let mut stack = Stack { device, iface, sockets: SocketSet::new(vec![]), added: 0 };
    let server = Server::new(&mut stack);
    (stack, server)
}

fn requests(items: &[(&str, &str)]) -> Set {
    Set {
        name: "requests".into(),
        items: items
            .iter()
            .map(|(n, d)| Item { name: n.to_string().into(), key: None, data: Bytes::from(d.as_bytes()) })
            .collect(),
    }
}

/// Runs until `instances` instances completed or `limit_ms` passed; checks the in-flight bound.
fn run(
    client: &mut Client<u32>,
    stack: &mut Stack,
    server: &mut Server,
    now: &mut u64,
    instances: usize,
    limit_ms: u64,
) -> BTreeMap<u32, Vec<Set>> {
    let mut done = BTreeMap::new();
    let end = *now + limit_ms;
    while done.len() < instances && *now < end {
        *now += 1;
        stack.iface.poll(Instant::from_millis(*now as i64), &mut stack.device, &mut stack.sockets);
        server.serve(stack);
        client.poll(stack, *now);
        assert!(client.load().0 <= 8, "at most max_in_flight connections");
        if let Some(wake) = client.next_wakeup_ms() {
            assert!(wake > *now, "a deadline in the past was not acted on");
        }
        while let Some((ticket, sets)) = client.take_completed() {
            done.insert(ticket, sets);
        }
    }
    done
}

fn text(item: &Item) -> &str {
    std::str::from_utf8(&item.data).unwrap()
}

fn limits() -> FetchLimits {
    FetchLimits {
        connect_timeout_ms: 500,
        read_timeout_ms: 800,
        total_timeout_ms: 5_000,
        max_response_bytes: 2_000,
        max_in_flight: 8,
        ..FetchLimits::default()
    }
}

#[test]
fn thirty_two_documents_through_eight_connections() {
    let (mut stack, mut server) = setup();
    let mut hosts = HostTable::default();
    hosts.insert("docs", ADDRESS).unwrap();
    let mut client = Client::new(hosts, limits());
    let items: Vec<(String, String)> = (0..32)
        .map(|i| (format!("d{i}"), format!("http://{}/doc/{i}", if i % 2 == 0 { "10.0.0.1" } else { "docs" })))
        .collect();
    let first: Vec<(&str, &str)> = items[..20].iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    let second: Vec<(&str, &str)> = items[20..].iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    client.start(1, &requests(&first));
    client.start(2, &requests(&second));
    let mut now = 0;
    let done = run(&mut client, &mut stack, &mut server, &mut now, 2, 20_000);
    assert_eq!(done.len(), 2, "both instances finish (at {now} ms)");
    for (ticket, range) in [(1, 0..20), (2, 20..32)] {
        let sets = &done[&ticket];
        assert_eq!(sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["responses", "bodies", "errors"]);
        assert!(sets[2].items.is_empty(), "{:?}", sets[2].items.iter().map(text).collect::<Vec<_>>());
        for (item, i) in sets[1].items.iter().zip(range.clone()) {
            assert_eq!(item.name, format!("d{i}"));
            assert_eq!(text(item), document(&i.to_string()));
        }
        for item in &sets[0].items {
            assert!(text(item).starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"), "{}", text(item));
        }
        assert_eq!(sets[0].items.len(), range.len());
    }
    assert!(stack.added <= 8, "sockets are pooled: {} made", stack.added);
    assert_eq!(client.load(), (0, 0));
    assert_eq!(client.next_wakeup_ms(), None);

    // The pool serves a second round with the same sockets.
    client.start(3, &requests(&first));
    let done = run(&mut client, &mut stack, &mut server, &mut now, 1, 20_000);
    assert_eq!(done[&3][1].items.len(), 20);
    assert!(stack.added <= 8);
}

#[test]
fn every_kind_of_failure_is_reported_per_item() {
    let (mut stack, mut server) = setup();
    let mut client = Client::new(HostTable::default(), limits());
    let nobody = format!("http://{NOBODY}/x");
    let set = requests(&[
        ("ok", "http://10.0.0.1/doc/a"),
        ("chunked", "http://10.0.0.1/chunked"),
        ("close", "http://10.0.0.1/close"),
        ("missing", "http://10.0.0.1/nope"),
        ("refused", "http://10.0.0.1:81/x"),
        ("timeout", &nobody),
        ("silent", "http://10.0.0.1/silent"),
        ("big", "http://10.0.0.1/big"),
        ("unknown", "http://elsewhere/x"),
        ("https", "https://10.0.0.1/"),
        ("head", "HEAD http://10.0.0.1/doc/h"),
    ]);
    client.start(7, &set);
    let mut now = 0;
    let done = run(&mut client, &mut stack, &mut server, &mut now, 1, 10_000);
    let sets = &done[&7];
    let by_name =
        |set: &Set| set.items.iter().map(|i| (i.name.clone(), text(i).to_string())).collect::<BTreeMap<_, _>>();
    let (responses, bodies, errors) = (by_name(&sets[0]), by_name(&sets[1]), by_name(&sets[2]));
    assert_eq!(bodies["ok"], document("a"));
    assert_eq!(bodies["chunked"], document("chunked"));
    assert_eq!(bodies["close"], document("close"));
    assert_eq!(bodies["missing"], "no such document");
    assert!(responses["missing"].starts_with("HTTP/1.1 404 Not Found\r\n"), "an error status is a response");
    assert!(responses["chunked"].contains("Transfer-Encoding: chunked\r\n"));
    assert_eq!((responses["head"].starts_with("HTTP/1.1 200 OK"), bodies["head"].as_str()), (true, ""));
    let expect = [
        ("refused", "refused: 10.0.0.1:81 refused the connection (GET http://10.0.0.1:81/x)".to_string()),
        ("timeout", format!("timeout: no connection to {NOBODY}:80 within 500 ms (GET {nobody})")),
        (
            "silent",
            "timeout: no response bytes from 10.0.0.1:80 for 800 ms (0 received) (GET http://10.0.0.1/silent)".into(),
        ),
        (
            "big",
            "too_large: the response body of 3000 bytes is over the 2000-byte limit (GET http://10.0.0.1/big)".into(),
        ),
        ("unknown", "unknown_host: elsewhere is not in the host table (URL http://elsewhere/x)".into()),
        ("https", "bad_request: https is not supported, only http:// (URL https://10.0.0.1/)".into()),
    ];
    for (name, message) in expect {
        assert_eq!(errors.get(name), Some(&message), "{name}");
    }
    assert_eq!(errors.len(), 6);
    assert_eq!(responses.len(), 5);
    assert!(now < 2_000, "the slowest is the 800 ms read timeout after connecting (took {now} ms)");
}

#[test]
fn cancel_drops_queued_and_in_flight_requests() {
    let (mut stack, mut server) = setup();
    let mut client = Client::new(HostTable::default(), limits());
    let silent: Vec<(String, String)> = (0..12).map(|i| (format!("s{i}"), "http://10.0.0.1/silent".into())).collect();
    let silent: Vec<(&str, &str)> = silent.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    client.start(2, &requests(&[("ok", "http://10.0.0.1/doc/z")]));
    client.start(1, &requests(&silent));
    let mut now = 0;
    // 100 ms (the silent instance cannot finish): `ok` is done and its socket serves the next.
    let done = run(&mut client, &mut stack, &mut server, &mut now, 2, 100);
    assert_eq!(done.keys().collect::<Vec<_>>(), [&2]);
    assert_eq!(client.load(), (8, 4), "8 connections open, 4 queued");
    client.cancel_where(|&ticket| ticket == 1);
    assert_eq!(client.load(), (0, 0));
    let done = run(&mut client, &mut stack, &mut server, &mut now, 1, 3_000);
    assert!(done.is_empty(), "a cancelled instance never completes");
    assert_eq!(client.next_wakeup_ms(), None);
    // Its sockets were reset and serve new requests.
    client.start(3, &requests(&[("again", "http://10.0.0.1/doc/y")]));
    let done = run(&mut client, &mut stack, &mut server, &mut now, 1, 1_000);
    assert_eq!(text(&done[&3][1].items[0]), document("y"));
    assert!(stack.added <= 8);
}

#[test]
fn an_instance_with_nothing_to_send_completes_at_once() {
    let mut client: Client<u32> = Client::new(HostTable::default(), limits());
    client.start(9, &requests(&[("bad", "ftp://x/")]));
    let (ticket, sets) = client.take_completed().unwrap();
    assert_eq!(ticket, 9);
    assert!(text(&sets[2].items[0]).starts_with("bad_request: "));
    client.start(10, &requests(&[]));
    assert_eq!(client.take_completed().unwrap().0, 10);
}

#[test]
fn instances_take_turns_for_connections() {
    let (mut stack, mut server) = setup();
    let mut client = Client::new(HostTable::default(), limits());
    let silent: Vec<(String, String)> = (0..16).map(|i| (format!("s{i}"), "http://10.0.0.1/silent".into())).collect();
    let silent: Vec<(&str, &str)> = silent.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    client.start(1, &requests(&silent));
    let mut now = 0;
    assert!(run(&mut client, &mut stack, &mut server, &mut now, 1, 50).is_empty());
    assert_eq!(client.load(), (8, 8));
    client.start(2, &requests(&[("late", "http://10.0.0.1/doc/late")]));
    let done = run(&mut client, &mut stack, &mut server, &mut now, 1, 5_000);
    assert_eq!(done.keys().collect::<Vec<_>>(), [&2]);
    // The first slot to free up (a read timeout, 800 ms) goes to instance 2, not to instance
    // 1's ninth request; in arrival order it would wait for a second round of timeouts.
    assert!((800..1_000).contains(&now), "instance 2 finished at {now} ms");
    assert_eq!(text(&done[&2][1].items[0]), document("late"));
}

#[test]
fn names_outside_the_table_are_asked_of_dns() {
    let (mut stack, mut server) = setup();
    let mut dns_server = DnsServer::new(&mut stack);
    let mut hosts = HostTable::default();
    hosts.insert("docs", ADDRESS).unwrap();
    hosts.set_dns_server(Some(ADDRESS));
    let mut client = Client::new(hosts, limits());
    client.start(
        1,
        &requests(&[
            ("table", "http://docs/doc/t"),
            ("dns1", "http://www.example/doc/1"),
            ("dns2", "http://WWW.example/doc/2"),
            ("nx", "http://nxdomain.example/x"),
            ("mute", "http://mute.example/x"),
        ]),
    );
    let mut now = 0;
    let mut done = BTreeMap::new();
    while done.is_empty() && now < 5_000 {
        now += 1;
        stack.iface.poll(Instant::from_millis(now as i64), &mut stack.device, &mut stack.sockets);
        server.serve(&mut stack);
        dns_server.serve(&mut stack);
        client.poll(&mut stack, now);
        if let Some((ticket, sets)) = client.take_completed() {
            done.insert(ticket, sets);
        }
    }
    let sets = &done[&1];
    let bodies: BTreeMap<_, _> = sets[1].items.iter().map(|i| (i.name.as_str(), text(i))).collect();
    let errors: BTreeMap<_, _> = sets[2].items.iter().map(|i| (i.name.as_str(), text(i))).collect();
    assert_eq!(bodies["table"], document("t"));
    assert_eq!(bodies["dns1"], document("1"));
    assert_eq!(bodies["dns2"], document("2"));
    assert_eq!(
        errors["nx"],
        "unknown_host: DNS server 10.0.0.1 has no address for nxdomain.example (GET http://nxdomain.example/x)"
    );
    assert_eq!(
        errors["mute"],
        "timeout: DNS server 10.0.0.1 did not answer for mute.example within 500 ms (GET http://mute.example/x)"
    );
    // One query per name (the table's name is never asked), however many requests share it.
    let mut asked = dns_server.queries.clone();
    asked.sort();
    asked.dedup();
    assert_eq!(asked, ["mute.example", "nxdomain.example", "www.example"]);
    assert_eq!(dns_server.queries.iter().filter(|q| *q == "www.example").count(), 1);
    assert!((500..700).contains(&now), "the mute name's timeout ends it: {now} ms");

    // The answer is cached: a second instance asks nothing.
    client.start(2, &requests(&[("again", "http://www.example/doc/3")]));
    let done = run(&mut client, &mut stack, &mut server, &mut now, 1, 1_000);
    assert_eq!(text(&done[&2][1].items[0]), document("3"));
    assert_eq!(dns_server.queries.iter().filter(|q| *q == "www.example").count(), 1);
}

/// Runs streams until `id`'s has ended (or `limit_ms`): the bytes it handed out and its outcome.
fn run_stream(
    client: &mut Client<u32>,
    stack: &mut Stack,
    server: &mut Server,
    id: u64,
    limit_ms: u64,
) -> (Vec<u8>, Option<Result<(), pappus_fetch::FetchError>>) {
    let mut data = Vec::new();
    for now in 1..limit_ms {
        stack.iface.poll(Instant::from_millis(now as i64), &mut stack.device, &mut stack.sockets);
        server.serve(stack);
        client.poll(stack, now);
        let stream = client.stream(id).unwrap();
        data.extend(stream.take_data());
        if let Some(outcome) = stream.take_outcome() {
            client.close_stream(id);
            assert!(client.stream(id).is_none());
            return (data, Some(outcome));
        }
    }
    (data, None)
}

#[test]
fn a_stream_hands_out_its_chunks_and_a_cut_is_a_clean_error() {
    let (mut stack, mut server) = setup();
    let mut client = Client::new(HostTable::default(), limits());
    let stream_limits = pappus_fetch::StreamLimits { connect_timeout_ms: 500, ..Default::default() };
    let id = client.open_stream(&mut stack, b"POST http://10.0.0.1/watch\r\n\r\n{}", &stream_limits, 0).unwrap();
    let (data, outcome) = run_stream(&mut client, &mut stack, &mut server, id, 2_000);
    assert_eq!(data, b"{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(outcome, Some(Ok(())));

    let id = client.open_stream(&mut stack, b"POST http://10.0.0.1/watch-cut\r\n\r\n{}", &stream_limits, 0).unwrap();
    let (data, outcome) = run_stream(&mut client, &mut stack, &mut server, id, 2_000);
    assert_eq!(data, b"{\"n\":1}\n{\"n\":2}\n{\"n\":", "what came before the cut is handed out");
    let error = outcome.unwrap().unwrap_err().to_string();
    assert!(error.starts_with("bad_response: the stream broke"), "{error}");

    let id = client.open_stream(&mut stack, b"GET http://10.0.0.1:81/watch\r\n\r\n", &stream_limits, 0).unwrap();
    let (_, outcome) = run_stream(&mut client, &mut stack, &mut server, id, 2_000);
    assert!(outcome.unwrap().unwrap_err().to_string().starts_with("refused: "));
    let id = client
        .open_stream(&mut stack, format!("GET http://{NOBODY}/watch\r\n\r\n").as_bytes(), &stream_limits, 0)
        .unwrap();
    let (_, outcome) = run_stream(&mut client, &mut stack, &mut server, id, 2_000);
    assert!(outcome.unwrap().unwrap_err().to_string().starts_with("timeout: no connection"));
    assert!(client.open_stream(&mut stack, b"GET http://nowhere/\r\n\r\n", &stream_limits, 0).is_err());
    assert!(client.open_stream(&mut stack, b"not a request", &stream_limits, 0).is_err());
}
