//! Suite `smp`: what more cores buy, under MTTCG (one host thread per guest CPU), in wall-clock
//! figures from a host client (icount would serialize the CPUs). Same kernel, same run:
//!
//! - 64×64 matrix multiplies per second with `-smp 1` (single-core mode: the I/O core runs them
//!   between network passes) and `-smp 2` (an I/O core and a compute core; the I/O core takes
//!   a turn of queued work when the compute core is busy and its own pass moved nothing), from
//!   four client connections at once, and their ratio;
//! - the makespan of a 64-way `each` fan-out (`wordcount_mapreduce` over 64 texts) with `-smp 2`
//!   (one compute core, the I/O core helping) and `-smp 3` (two), and the speed-up.
//!
//! Wall-clock figures depend on the host: compare them only within one run. The host must have
//! as many free cores as the guest has CPUs for the ratios to mean anything; `nproc` is printed.

use std::path::Path;
use std::thread;
use std::time::Instant;

use crate::util::{Failure, Result, say};

use super::io::{Node, auth, matmul_sets, print};

const MATMUL_CLIENTS: usize = 4;
const MATMUL_PER_CLIENT: usize = 15;
const FANOUT: usize = 64;
const TEXT_BYTES: usize = 32 << 10;

pub fn smp(kernel: &Path) -> Result {
    let host_cores = thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    say(format!("host has {host_cores} CPU(s); guests below use up to 3"));
    let matmul = pappus_tests::functions::wasm("matmul");
    let mut rates = Vec::new();
    for smp in [1, 2] {
        let rate = matmul_rate(kernel, smp, &matmul)?;
        print(&format!("smp.matmul64.invocations_per_s.smp{smp}"), format!("{rate:.2}"), "invocations/s");
        rates.push(rate);
    }
    print("smp.matmul64.smp2_over_smp1", format!("{:.2}", rates[1] / rates[0]), "x");

    let wordcount = pappus_tests::functions::wasm("wordcount");
    let merge = pappus_tests::functions::wasm("wordcount_merge");
    let mut spans = Vec::new();
    for smp in [2, 3] {
        let ms = fanout_makespan(kernel, smp, &wordcount, &merge)?;
        print(&format!("smp.fanout64.makespan_ms.smp{smp}"), format!("{ms:.0}"), "ms");
        spans.push(ms);
    }
    print("smp.fanout64.smp3_over_smp2", format!("{:.2}", spans[0] / spans[1]), "x");
    Ok(())
}

/// Matmul invocations per second from `MATMUL_CLIENTS` connections at once.
fn matmul_rate(kernel: &Path, smp: u32, image: &[u8]) -> Result<f64> {
    let mut node = Node::boot_smp(kernel, smp, &format!("smp-matmul-{smp}"))?;
    let auth = auth();
    // A wasm instance's memory limit is charged to its tenant's heap budget while it runs
    // (docs/api.md, "Memory: each tenant's budget"): at 64 MiB, a 512 MiB guest's budget (about 110 MiB) held one
    // instance at a time and the others waited, whatever the cores (1.01x measured). 16 MiB,
    // the default, is ample for two 32 KiB matrices and their product.
    let query = "engine=wasm&inputs=matrices&outputs=product&memory=16MiB&timeout_ms=60000";
    node.expect("PUT", &format!("/v1/functions/matmul?{query}"), &[("Authorization", &auth)], image, 201)?;
    let sets = matmul_sets(64)?;
    let kind = "application/x-pappus-sets";
    let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
    node.expect("POST", "/v1/invoke/matmul", &headers, &sets, 200)?; // warm: prepare, first run
    // Connected (and each used once) before the clock starts: QEMU's hostfwd has a backlog of
    // one, and connections opened while others are busy came up half a second apart, which
    // was what got measured (one connection at a time, whatever the cores).
    let mut conns = Vec::new();
    for _ in 0..MATMUL_CLIENTS {
        let mut conn = node.connect()?;
        conn.expect("POST", "/v1/invoke/matmul", &headers, &sets, 200)?;
        conns.push(conn);
    }
    let start = Instant::now();
    let clients: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let sets = sets.clone();
            let auth = auth.clone();
            Ok(thread::spawn(move || {
                let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
                for _ in 0..MATMUL_PER_CLIENT {
                    conn.expect("POST", "/v1/invoke/matmul", &headers, &sets, 200)?;
                }
                Ok::<(), Failure>(())
            }))
        })
        .collect::<Result<_>>()?;
    for client in clients {
        client.join().map_err(|_| Failure("a bench client panicked".into()))??;
    }
    Ok((MATMUL_CLIENTS * MATMUL_PER_CLIENT) as f64 / start.elapsed().as_secs_f64())
}

/// Milliseconds for one `wordcount_mapreduce` over `FANOUT` texts, the best of three.
fn fanout_makespan(kernel: &Path, smp: u32, wordcount: &[u8], merge: &[u8]) -> Result<f64> {
    let mut node = Node::boot_smp(kernel, smp, &format!("smp-fanout-{smp}"))?;
    let auth = auth();
    let a = [("Authorization", auth.as_str())];
    node.expect(
        "PUT",
        "/v1/functions/wordcount?engine=wasm&inputs=texts&outputs=counts&timeout_ms=60000",
        &a,
        wordcount,
        201,
    )?;
    node.expect(
        "PUT",
        "/v1/functions/wordcount_merge?engine=wasm&inputs=partials&outputs=counts&timeout_ms=60000",
        &a,
        merge,
        201,
    )?;
    let source =
        std::fs::read(pappus_tests::workspace_root().join("functions/compositions/wordcount_mapreduce.pappus"))?;
    node.expect("PUT", "/v1/compositions/wordcount_mapreduce", &a, &source, 201)?;
    let texts: Vec<model::Item> = (0..FANOUT)
        .map(|i| {
            let text: String = (0..).map(|w| format!("w{} ", (w * 7 + i) % 500)).take_while_len(TEXT_BYTES);
            model::Item { name: format!("t{i}").into(), key: None, data: model::Bytes::from(text.into_bytes()) }
        })
        .collect();
    let body = model::wire::binary::encode(&[model::Set { name: "texts".into(), items: texts }])
        .map_err(|e| Failure(format!("encoding the texts: {e}")))?;
    let kind = "application/x-pappus-sets";
    let headers = [("Authorization", auth.as_str()), ("Content-Type", kind), ("Accept", kind)];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        node.expect("POST", "/v1/invoke/wordcount_mapreduce", &headers, &body, 200)?;
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    let runs = node.core_runs()?;
    say(format!("-smp {smp}: instances per core {runs:?}"));
    if smp > 2 && runs.iter().filter(|(_, n)| *n > 0).count() < 2 {
        return Err(Failure(format!("-smp {smp}: the fan-out ran on fewer than two compute cores: {runs:?}")));
    }
    Ok(best)
}

/// Collects words until the text is `len` bytes long.
trait TakeWhileLen {
    fn take_while_len(self, len: usize) -> String;
}

impl<I: Iterator<Item = String>> TakeWhileLen for I {
    fn take_while_len(self, len: usize) -> String {
        let mut out = String::new();
        for word in self {
            if out.len() + word.len() > len {
                break;
            }
            out.push_str(&word);
        }
        out
    }
}
