//! One `http` instance: its `requests` set in, its three output sets out.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use model::{Bytes, HostTable, Item, Name, Set};

use crate::error::{ErrorClass, FetchError};
use crate::exchange::FetchLimits;
use crate::request::Request;
use crate::response::Response;
use crate::url::{Host, resolve};

/// The output set of status lines and headers.
pub const RESPONSES: &str = "responses";
/// The output set of bodies.
pub const BODIES: &str = "bodies";
/// The output set of per-request errors.
pub const ERRORS: &str = "errors";

/// A request that parsed and resolved: ready to connect.
#[derive(Debug)]
pub struct Ready {
    /// Its position in the request set: what [`Batch::finish`] takes.
    pub index: usize,
    pub request: Request,
    /// Where to connect; `None` for a host name to look up by DNS first (the table does not
    /// hold it and a DNS server is configured).
    pub address: Option<Ipv4Addr>,
}

struct Entry {
    name: Name,
    key: Option<u64>,
    /// `METHOD URL` of a request that parsed, for messages.
    describe: Option<String>,
    outcome: Option<Result<Response, FetchError>>,
}

/// The requests of one instance and what became of each.
pub struct Batch {
    entries: Vec<Entry>,
    unfinished: usize,
    /// Response bytes kept so far, and the most allowed.
    kept_bytes: usize,
    max_bytes: usize,
}

impl Batch {
    /// Parses and resolves every item of `requests`. Those that cannot be sent are finished at
    /// once with their error; the others are returned, to be sent and then [`Self::finish`]ed.
    /// `limits.max_instance_bytes` bounds the responses kept.
    pub fn plan(requests: &Set, hosts: &HostTable, limits: &FetchLimits) -> (Self, Vec<Ready>) {
        let mut entries = Vec::with_capacity(requests.items.len());
        let mut ready = Vec::new();
        for (index, item) in requests.items.iter().enumerate() {
            let prepared = Request::parse(&item.data).and_then(|request| match resolve(&request.url, hosts) {
                Ok(address) => Ok((request, Some(address))),
                Err(_) if hosts.dns_server().is_some() && matches!(request.url.host, Host::Name(_)) => {
                    Ok((request, None))
                }
                Err(e) => Err(e),
            });
            let (describe, outcome) = match prepared {
                Ok((request, address)) => {
                    let describe = request.describe();
                    ready.push(Ready { index, request, address });
                    (Some(describe), None)
                }
                Err(e) => (None, Some(Err(e))),
            };
            entries.push(Entry { name: item.name.clone(), key: item.key, describe, outcome });
        }
        let unfinished = ready.len();
        (Self { entries, unfinished, kept_bytes: 0, max_bytes: limits.max_instance_bytes }, ready)
    }

    /// Records how request `index` ended (the first record counts). A response that would take
    /// the instance over its byte budget is recorded as `too_large` instead.
    pub fn finish(&mut self, index: usize, outcome: Result<Response, FetchError>) {
        let Some(entry) = self.entries.get_mut(index).filter(|e| e.outcome.is_none()) else { return };
        let outcome = match outcome {
            Ok(response) => {
                let size = response.head.len() + response.body.len();
                if self.kept_bytes.saturating_add(size) > self.max_bytes {
                    Err(FetchError::new(
                        ErrorClass::TooLarge,
                        alloc::format!(
                            "the instance's responses are over {} bytes in all ({})",
                            self.max_bytes,
                            entry.describe.as_deref().unwrap_or("?")
                        ),
                    ))
                } else {
                    self.kept_bytes += size;
                    Ok(response)
                }
            }
            Err(e) => Err(e),
        };
        entry.outcome = Some(outcome);
        self.unfinished -= 1;
    }

    /// Whether every request has ended.
    pub fn is_complete(&self) -> bool {
        self.unfinished == 0
    }

    /// The output sets, in the declared order: `responses`, `bodies`, `errors`. Each item is
    /// named (and keyed) like its request; requests keep their order within each set. A request
    /// not finished yet (the batch is taken early) is reported as cancelled.
    pub fn into_sets(self) -> Vec<Set> {
        let mut responses = Set::new(RESPONSES);
        let mut bodies = Set::new(BODIES);
        let mut errors = Set::new(ERRORS);
        for entry in self.entries {
            let item = |data: Bytes| Item { name: entry.name.clone(), key: entry.key, data };
            match entry.outcome {
                Some(Ok(response)) => {
                    responses.items.push(item(Bytes::from(response.head)));
                    bodies.items.push(item(Bytes::from(response.body)));
                }
                Some(Err(error)) => errors.items.push(item(Bytes::from(error.to_string().into_bytes()))),
                None => errors.items.push(item(Bytes::from(&b"cancelled: the request did not finish"[..]))),
            }
        }
        alloc::vec![responses, bodies, errors]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    fn item(name: &str, key: Option<u64>, data: &str) -> Item {
        Item { name: name.into(), key, data: Bytes::from(data.as_bytes()) }
    }

    #[test]
    fn a_batch_maps_to_three_sets_in_request_order() {
        let mut hosts = HostTable::default();
        hosts.insert("docs", Ipv4Addr::new(10, 0, 2, 2)).unwrap();
        let requests = Set {
            name: "requests".into(),
            items: alloc::vec![
                item("a", None, "http://docs:8000/a"),
                item("bad", Some(7), "https://docs/"),
                item("b", Some(3), "POST http://10.0.2.2/b\n\nbody"),
                item("unknown", None, "http://elsewhere/"),
                item("late", None, "http://docs/late"),
            ],
        };
        let (mut batch, ready) = Batch::plan(&requests, &hosts, &FetchLimits::default());
        assert_eq!(ready.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(ready[0].address, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert!(!batch.is_complete());
        let ok = |status, body: &str| {
            Ok(Response { status, head: alloc::format!("HTTP/1.1 {status} X\r\n\r\n").into_bytes(), body: body.into() })
        };
        batch.finish(2, ok(404, "nope"));
        batch.finish(0, ok(200, "doc a"));
        batch.finish(0, ok(500, "ignored: the first record counts"));
        assert!(!batch.is_complete());
        batch.finish(4, Err(FetchError::new(ErrorClass::Timeout, "slow")));
        assert!(batch.is_complete());
        let sets = batch.into_sets();
        fn names(s: &Set) -> Vec<&str> {
            s.items.iter().map(|i| i.name.as_str()).collect()
        }
        assert_eq!(sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), [RESPONSES, BODIES, ERRORS]);
        assert_eq!(names(&sets[0]), ["a", "b"]);
        assert_eq!(&*sets[0].items[1].data, b"HTTP/1.1 404 X\r\n\r\n");
        assert_eq!(sets[0].items[1].key, Some(3));
        assert_eq!(names(&sets[1]), ["a", "b"]);
        assert_eq!(&*sets[1].items[0].data, b"doc a");
        assert_eq!(names(&sets[2]), ["bad", "unknown", "late"]);
        assert_eq!(sets[2].items[0].key, Some(7));
        let texts: Vec<&str> = sets[2].items.iter().map(|i| core::str::from_utf8(&i.data).unwrap()).collect();
        assert!(texts[0].starts_with("bad_request: https is not supported"), "{}", texts[0]);
        assert!(texts[1].starts_with("unknown_host: elsewhere"), "{}", texts[1]);
        assert_eq!(texts[2], "timeout: slow");
    }

    #[test]
    fn an_empty_or_all_bad_batch_is_complete_at_once() {
        let (batch, ready) = Batch::plan(&Set::new("requests"), &HostTable::default(), &FetchLimits::default());
        assert!(batch.is_complete() && ready.is_empty());
        assert!(batch.into_sets().iter().all(|s| s.items.is_empty()));
        let requests = Set { name: "r".into(), items: alloc::vec![item("x", None, "")] };
        let (batch, ready) = Batch::plan(&requests, &HostTable::default(), &FetchLimits::default());
        assert!(batch.is_complete() && ready.is_empty());
        let sets = batch.into_sets();
        assert!(core::str::from_utf8(&sets[2].items[0].data).unwrap().starts_with("bad_request: empty request item"));
    }

    #[test]
    fn unfinished_requests_are_reported_as_cancelled() {
        let requests = Set { name: "r".into(), items: alloc::vec![item("x", None, "http://1.2.3.4/")] };
        let (batch, ready) = Batch::plan(&requests, &HostTable::default(), &FetchLimits::default());
        assert_eq!(ready.len(), 1);
        assert_eq!(&*batch.into_sets()[2].items[0].data, b"cancelled: the request did not finish");
    }

    #[test]
    fn an_instance_keeps_at_most_its_byte_budget() {
        let requests = Set {
            name: "r".into(),
            items: (0..3).map(|i| item(&alloc::format!("i{i}"), None, "http://1.2.3.4/x")).collect(),
        };
        let limits = FetchLimits { max_instance_bytes: 100, ..FetchLimits::default() };
        let (mut batch, _) = Batch::plan(&requests, &HostTable::default(), &limits);
        let response = |n| Ok(Response { status: 200, head: alloc::vec![b'h'; 10], body: alloc::vec![b'b'; n] });
        batch.finish(0, response(40));
        batch.finish(1, response(41));
        batch.finish(2, response(30));
        let sets = batch.into_sets();
        assert_eq!(sets[1].items.len(), 2);
        assert_eq!(
            core::str::from_utf8(&sets[2].items[0].data).unwrap(),
            "too_large: the instance's responses are over 100 bytes in all (GET http://1.2.3.4/x)"
        );
        assert_eq!(sets[2].items[0].name, "i1");
    }

    #[test]
    fn names_outside_the_table_wait_for_dns_when_a_server_is_configured() {
        let mut hosts = HostTable::default();
        hosts.insert("docs", Ipv4Addr::new(10, 0, 2, 2)).unwrap();
        hosts.set_dns_server(Some(Ipv4Addr::new(10, 0, 2, 3)));
        let requests = Set {
            name: "r".into(),
            items: alloc::vec![
                item("t", None, "http://docs/"),
                item("d", None, "http://example.org/"),
                item("i", None, "http://1.2.3.4/")
            ],
        };
        let (_, ready) = Batch::plan(&requests, &hosts, &FetchLimits::default());
        let addresses: Vec<_> = ready.iter().map(|r| r.address).collect();
        assert_eq!(addresses, [Some(Ipv4Addr::new(10, 0, 2, 2)), None, Some(Ipv4Addr::new(1, 2, 3, 4))]);
    }
}
