//! The kernel's sampling profiler (`profile=N`), over its operator-only endpoint: the samples
//! are real kernel code (every address in the kernel ELF's text, stacks that name kernel
//! functions), the endpoint refuses without the operator's token, and a kernel booted without
//! `profile=` says the profiler is off. `profile=alloc` records a sample per heap allocation.

use pappus_tests::node::{Node, OPERATOR_TOKEN, Tenant, boot_cmdline, operator_header};
use pappus_tests::profile::{self, Dump, Elf, Kind};
use pappus_tests::{Arch, kernel_image};

const TENANT: Tenant<'static> = Tenant { name: "t", token: "profile-tenant-0123456789abcdef" };

/// Every sample the node holds, over as many replies as it takes.
fn drain(node: &Node) -> Dump {
    let (name, value) = operator_header();
    let mut all = Dump::default();
    for _ in 0..1000 {
        let r = node.request("GET", "/v1/profile", &[(name, &value)], b"");
        assert_eq!(r.status, 200, "GET /v1/profile: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let part = profile::parse(&r.text()).unwrap_or_else(|e| panic!("{e}:\n{}", r.text()));
        all.interval = part.interval;
        all.cpus = part.cpus;
        all.samples.extend(part.samples);
        if !part.more {
            return all;
        }
    }
    panic!("the profile never ended");
}

#[test]
fn profile_samples_land_in_kernel_text_and_need_the_operator() {
    let Some(node) = boot_cmdline("profile_samples", &[TENANT], "profile=50021") else { return };
    assert!(node.qemu.lines().iter().any(|l| l.contains("profile: sampling every 50021 ticks")));

    // Code addresses are the operator's: no token, a tenant's token, a wrong one: 401.
    let tenant = format!("Bearer {}", TENANT.token);
    for headers in
        [vec![], vec![("Authorization", tenant.as_str())], vec![("Authorization", "Bearer wrong-0123456789abcdef")]]
    {
        for method in ["GET", "DELETE"] {
            let r = node.request(method, "/v1/profile", &headers, b"");
            assert_eq!(r.status, 401, "{method} /v1/profile with {headers:?}: {}", r.text());
        }
    }
    let (name, value) = operator_header();
    assert_eq!(node.request("POST", "/v1/profile", &[(name, &value)], b"").status, 405);

    // Start clean, make some work, read it back.
    let r = node.request("DELETE", "/v1/profile", &[(name, &value)], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    let conn = node.connect();
    drop(conn);
    for i in 0..40 {
        let body = pappus_tests::node::pattern(64 + i);
        let r = node.call("POST", "/v1/echo", &body);
        assert_eq!((r.status, r.body), (200, body));
    }
    let dump = drain(&node);
    assert_eq!(dump.interval, 50021);
    assert_eq!(dump.cpus.first().map(|c| c.cpu), Some(0), "{dump:?}");
    let kernel: Vec<_> = dump.samples.iter().filter(|s| s.kind == Kind::Kernel).collect();
    assert!(kernel.len() >= 10, "only {} kernel samples after 40 requests: {:?}", kernel.len(), dump.cpus);

    let path = kernel_image(Arch::X86_64).unwrap();
    let mut elf = Elf::open(&path).unwrap();
    for s in &kernel {
        for &a in &s.addrs {
            assert!(elf.in_text(a), "{a:#x} is not kernel text: {s:?}");
        }
    }
    // The stacks name the kernel's functions: the I/O loop under every request.
    let folded = profile::fold(&dump.samples, &mut elf, &[]);
    assert!(
        folded
            .stacks
            .keys()
            .any(|s| s.contains("pappus_kernel::serve::forever") && s.contains("pappus_kernel::frontdoor")),
        "no stack through the front door:\n{}",
        folded.lines().join("\n")
    );

    // DELETE empties the rings: what is left is at most the few samples taken since.
    assert_eq!(node.request("DELETE", "/v1/profile", &[(name, &value)], b"").status, 204);
    let after = drain(&node);
    assert!(after.samples.len() < kernel.len(), "{} samples after a reset", after.samples.len());
    let health = node.call("GET", "/healthz", b"");
    assert_eq!(health.status, 200);
}

#[test]
fn the_allocation_profile_has_a_sample_per_heap_allocation() {
    let Some(node) = boot_cmdline("profile_alloc", &[TENANT], "profile=alloc") else { return };
    assert!(node.qemu.lines().iter().any(|l| l.contains("profile: the stack of every heap allocation")));
    let (name, value) = operator_header();
    let allocations = |node: &Node| {
        let text = node.request("GET", "/metrics", &[(name, &value)], b"").text();
        let line = text.lines().find(|l| l.starts_with("pappus_heap_allocations_total ")).map(str::to_string);
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).expect("pappus_heap_allocations_total")
    };
    let _ = drain(&node);
    let before = allocations(&node);
    assert_eq!(node.request("DELETE", "/v1/profile", &[(name, &value)], b"").status, 204);
    for i in 0..20 {
        let body = pappus_tests::node::pattern(64 + i);
        assert_eq!(node.call("POST", "/v1/echo", &body).status, 200);
    }
    let dump = drain(&node);
    let after = allocations(&node);
    assert_eq!(dump.interval, 0, "an allocation profile has no interval");
    // Every allocation of the echoes is a sample (at least one each: the request head's copy),
    // and every sample is an allocation the heap counted between the two readings.
    let samples = dump.samples.len() as u64;
    assert!(samples >= 20 && samples <= after - before, "{samples} samples for {} allocations", after - before);
    let path = kernel_image(Arch::X86_64).unwrap();
    let mut elf = Elf::open(&path).unwrap();
    let folded = profile::fold(&dump.samples, &mut elf, &[]);
    assert!(
        folded.stacks.keys().any(|s| s.contains("pappus_http::parse")),
        "no allocation while parsing a request head:\n{}",
        folded.lines().join("\n")
    );
}

#[test]
fn without_profile_the_endpoint_says_the_profiler_is_off() {
    let Some(node) = boot_cmdline("profile_off", &[TENANT], "log=info") else { return };
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    for method in ["GET", "DELETE"] {
        let r = node.request(method, "/v1/profile", &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 409, "{method}: {}", r.text());
        assert!(r.text().contains("profiler_off"), "{}", r.text());
    }
    assert_eq!(node.request("GET", "/v1/profile", &[], b"").status, 401);
}
