//! In-kernel self-tests, run with `test` on the command line.
//!
//! Each test prints one parseable line, `SELFTEST PASS <name> <detail>` or
//! `SELFTEST FAIL <name> <reason>`, and the run ends with `SELFTEST DONE passed=N failed=M`;
//! the host harness reads those lines and the exit code. `selftest=a,b` runs only the named
//! tests (and is the only way to run tests marked `on_request_only`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::{arch, console, mm, smp};

pub type Outcome = Result<String, String>;

pub struct SelfTest {
    pub name: &'static str,
    pub run: fn() -> Outcome,
    /// Runs only when named by `selftest=` (e.g. the deliberate failure that proves a failing
    /// test fails the run).
    pub on_request_only: bool,
}

const COMMON: &[SelfTest] = &[
    SelfTest { name: "frames", run: frames, on_request_only: false },
    SelfTest { name: "heap.stress", run: heap_stress, on_request_only: false },
    SelfTest { name: "heap.oom", run: heap_oom, on_request_only: false },
    SelfTest { name: "heap.small", run: heap_small, on_request_only: false },
    SelfTest { name: "frontdoor.states", run: frontdoor_states, on_request_only: false },
    SelfTest { name: "usermode.zero", run: usermode_zero, on_request_only: false },
    SelfTest { name: "float.arithmetic", run: float_arithmetic, on_request_only: false },
    SelfTest { name: "mem.copy_move_set", run: mem_copy_move_set, on_request_only: false },
    SelfTest { name: "smp.wake", run: smp_wake, on_request_only: false },
    SelfTest { name: "fail.deliberate", run: fail_deliberate, on_request_only: true },
    SelfTest { name: "smp.ap_panic", run: smp_ap_panic, on_request_only: true },
];

/// Runs the tests (all, or those named in `filter`); true when none failed.
pub fn run_all(filter: Option<&str>) -> bool {
    let wanted = |t: &SelfTest| match filter {
        Some(list) => list.split(',').any(|n| n == t.name),
        None => !t.on_request_only,
    };
    let (mut passed, mut failed) = (0, 0);
    if let Some(list) = filter {
        for name in list.split(',') {
            if !COMMON.iter().chain(arch::selftests()).any(|t| t.name == name) {
                console::println(format_args!("SELFTEST FAIL {name} no such self-test"));
                failed += 1;
            }
        }
    }
    for test in COMMON.iter().chain(arch::selftests()).filter(|t| wanted(t)) {
        match (test.run)() {
            Ok(detail) => {
                passed += 1;
                console::println(format_args!("SELFTEST PASS {} {detail}", test.name));
            }
            Err(reason) => {
                failed += 1;
                console::println(format_args!("SELFTEST FAIL {} {reason}", test.name));
            }
        }
    }
    console::println(format_args!("SELFTEST DONE passed={passed} failed={failed}"));
    failed == 0
}

/// Fails with `message` unless `cond` holds.
pub fn check(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(message()) }
}

fn frames() -> Outcome {
    let before = mm::frame_stats();
    let a = mm::alloc_frame().ok_or("no frame")?;
    let b = mm::alloc_frame().ok_or("no second frame")?;
    check(a != b && a % 4096 == 0 && b % 4096 == 0, || format!("bad frames {a:#x} {b:#x}"))?;
    let mid = mm::frame_stats();
    check(mid.free == before.free - 2, || format!("free {} after 2 allocs from {}", mid.free, before.free))?;
    mm::free_frame(a).map_err(|e| format!("{e}"))?;
    check(mm::free_frame(a).is_err(), || "double free was accepted".into())?;
    mm::free_frame(b).map_err(|e| format!("{e}"))?;

    // A contiguous, aligned run (DMA rings, the heap) comes back whole.
    let run = mm::alloc_contiguous(16, 0x10000).ok_or("no 16-frame run")?;
    check(run % 0x10000 == 0, || format!("run at {run:#x} is not 64 KiB aligned"))?;
    mm::free_contiguous(run, 16).map_err(|e| format!("{e}"))?;

    // Exhaustion: take every frame, see the allocator say no, give them all back.
    let mut held = Vec::with_capacity(before.free as usize);
    while let Some(f) = mm::alloc_contiguous(1, 4096) {
        held.push(f);
    }
    let empty = mm::frame_stats();
    check(empty.free == 0, || format!("{} frames still free after exhaustion", empty.free))?;
    check(mm::alloc_frame().is_none(), || "allocation succeeded with no free frames".into())?;
    let exhausted = held.len();
    for f in held {
        mm::free_frame(f).map_err(|e| format!("{e}"))?;
    }
    let after = mm::frame_stats();
    check(after.free == before.free, || format!("free {} after test, {} before", after.free, before.free))?;
    Ok(format!(
        "total={} free={} exhausted_after={exhausted} failed_requests={}",
        after.total, after.free, after.failed
    ))
}

fn heap_stress() -> Outcome {
    let before = mm::heap_stats();
    // Deterministic xorshift sizes from 1 byte to 64 KiB, mixed lifetimes, contents checked.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut live: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0u64;
    for round in 0..4000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = match x % 8 {
            0 => (x >> 8) as usize % 65536 + 1,
            1..=3 => (x >> 8) as usize % 4096 + 1,
            _ => (x >> 8) as usize % 128 + 1,
        };
        let fill = (round % 251) as u8;
        live.push(alloc::vec![fill; size]);
        bytes += size as u64;
        if x.is_multiple_of(3) && !live.is_empty() {
            let victim = live.swap_remove((x >> 16) as usize % live.len());
            let expect = victim[0];
            check(victim.iter().all(|&b| b == expect), || "heap block corrupted".into())?;
        }
    }
    for block in &live {
        let expect = block[0];
        check(block.iter().all(|&b| b == expect), || "heap block corrupted".into())?;
    }
    let peak = mm::heap_stats().used;
    drop(live);
    let after = mm::heap_stats();
    check(after.used == before.used, || format!("heap used {} after test, {} before", after.used, before.used))?;
    Ok(format!("allocs=4000 bytes={bytes} peak_used={peak} used_after={}", after.used))
}

/// Asking for more than the heap holds fails cleanly (no panic), is counted, and is reported.
fn heap_oom() -> Outcome {
    let before = mm::heap_stats();
    let mut huge: Vec<u8> = Vec::new();
    let result = huge.try_reserve_exact(before.total * 2);
    check(result.is_err(), || "a reservation of twice the heap succeeded".into())?;
    let after = mm::heap_stats();
    check(after.failures == before.failures + 1, || format!("failures {} -> {}", before.failures, after.failures))?;
    check(after.used == before.used, || format!("heap used {} -> {}", before.used, after.used))?;
    Ok(format!("{} bytes refused, failure counted and reported", before.total * 2))
}

/// The per-CPU caches of small blocks: a block freed dirty and handed out again by
/// `alloc_zeroed` is zero, growth across classes and into talc keeps the bytes, and the heap's
/// `used` is back where it was (cached blocks count as free).
fn heap_small() -> Outcome {
    let before = mm::heap_stats();
    let dirty: Vec<Vec<u8>> = (0..64).map(|_| alloc::vec![0xa5u8; 40]).collect();
    drop(dirty);
    for _ in 0..64 {
        let zeroed = alloc::vec![0u8; 40];
        check(zeroed.iter().all(|&b| b == 0), || "alloc_zeroed handed out a dirty block".into())?;
    }
    let mut grown: Vec<u8> = Vec::with_capacity(1);
    for i in 0..3000u32 {
        grown.push(i as u8);
    }
    check(grown.iter().enumerate().all(|(i, &b)| b == i as u8), || "bytes lost in growth".into())?;
    grown.truncate(100);
    grown.shrink_to_fit();
    check(grown.iter().enumerate().all(|(i, &b)| b == i as u8), || "bytes lost in shrinking".into())?;
    drop(grown);
    let after = mm::heap_stats();
    check(after.used == before.used, || format!("heap used {} -> {}", before.used, after.used))?;
    Ok(format!("used {} before and after", after.used))
}

/// The page zeroing that scrubs sandboxes' pages (`arch::usermode::zero`, SSE or DC ZVA blocks
/// with byte ends) clears exactly the range it is given, from every alignment and for lengths
/// around each block boundary and of whole pages, and not a byte outside it.
fn usermode_zero() -> Outcome {
    const GUARD: usize = 64;
    let mut buffer = alloc::vec![0u8; 3 * 4096];
    let base = buffer.as_ptr().align_offset(4096);
    let lengths = (0..=300).chain([480, 511, 512, 513, 544, 1024 + 480 + 7]).chain([
        4096 - 129,
        4096 - 128,
        4096 - 17,
        4096 - 16,
        4096 - 1,
        4096,
        4096 + 17,
    ]);
    let mut cases = 0;
    for len in lengths {
        for start in 0..48 {
            let at = base + GUARD + start;
            let region = &mut buffer[at - GUARD..at + len + GUARD];
            region.fill(0xa5);
            arch::usermode::zero(&mut region[GUARD..GUARD + len]);
            let (before, rest) = region.split_at(GUARD);
            let (zeroed, after) = rest.split_at(len);
            check(zeroed.iter().all(|&b| b == 0), || format!("{len} bytes at offset {start}: not all zero"))?;
            check(before.iter().chain(after).all(|&b| b == 0xa5), || {
                format!("{len} bytes at offset {start}: a byte outside the range changed")
            })?;
            cases += 1;
        }
    }
    Ok(format!("{cases} ranges"))
}

/// Float arithmetic as the wasm interpreter does it (x86_64: SSE2 in place of the soft-float
/// routines, `arch/x86_64/float.rs`): IEEE-754 results, bit for bit, for rounding ties,
/// subnormal results, underflow to zero, overflow to infinity, signed zeros and division by
/// zero, in both widths; an invalid operation gives a NaN. Expected bits from the host's IEEE
/// arithmetic.
fn float_arithmetic() -> Outcome {
    use core::hint::black_box;
    #[rustfmt::skip]
    const F64: &[(char, u64, u64, u64)] = &[
        ('+', 0x3fb999999999999a, 0x3fc999999999999a, 0x3fd3333333333334), // 0.1 + 0.2
        ('+', 0x3ff0000000000000, 0x3ca0000000000000, 0x3ff0000000000000), // tie to even, down
        ('+', 0x3ff0000000000000, 0x3cb8000000000000, 0x3ff0000000000002), // tie to even, up
        ('-', 0x3ff0000000000000, 0x3ff0000000000000, 0x0000000000000000), // +0
        ('-', 0x0010000000000000, 0x000fffffffffffff, 0x0000000000000001), // subnormal result
        ('*', 0x0010000000000000, 0x3fe0000000000000, 0x0008000000000000), // into subnormals
        ('*', 0x7fe1ccf385ebc8a0, 0x4024000000000000, 0x7ff0000000000000), // overflow
        ('*', 0x0000000000000000, 0xbff0000000000000, 0x8000000000000000), // -0
        ('*', 0x3ff199999999999a, 0x3ff199999999999a, 0x3ff35c28f5c28f5d), // 1.1 * 1.1
        ('/', 0x3ff0000000000000, 0x4008000000000000, 0x3fd5555555555555), // 1 / 3
        ('/', 0xbff0000000000000, 0x0000000000000000, 0xfff0000000000000), // -1 / 0
        ('/', 0x0000000000000001, 0x4000000000000000, 0x0000000000000000), // underflow, tie to 0
    ];
    #[rustfmt::skip]
    const F32: &[(char, u32, u32, u32)] = &[
        ('+', 0x3dcccccd, 0x3e4ccccd, 0x3e99999a), // 0.1 + 0.2
        ('+', 0x3f800000, 0x33800000, 0x3f800000), // tie to even, down
        ('+', 0x3f800000, 0x34400000, 0x3f800002), // tie to even, up
        ('-', 0x3f800000, 0x3f400000, 0x3e800000),
        ('*', 0x00800000, 0x3f000000, 0x00400000), // into subnormals
        ('*', 0x7f61b1e6, 0x41200000, 0x7f800000), // overflow
        ('*', 0x3f8ccccd, 0x3f8ccccd, 0x3f9ae148), // 1.1 * 1.1
        ('/', 0x3f800000, 0x40400000, 0x3eaaaaab), // 1 / 3
        ('/', 0x00000001, 0x40000000, 0x00000000), // underflow, tie to 0
        ('/', 0x3f800000, 0x00000000, 0x7f800000), // 1 / 0
    ];
    fn apply<
        T: core::ops::Add<Output = T>
            + core::ops::Sub<Output = T>
            + core::ops::Mul<Output = T>
            + core::ops::Div<Output = T>,
    >(
        op: char,
        a: T,
        b: T,
    ) -> T {
        match op {
            '+' => a + b,
            '-' => a - b,
            '*' => a * b,
            _ => a / b,
        }
    }
    for &(op, a, b, want) in F64 {
        let got = apply(op, black_box(f64::from_bits(a)), black_box(f64::from_bits(b))).to_bits();
        check(got == want, || format!("f64 {a:#018x} {op} {b:#018x} = {got:#018x}, expected {want:#018x}"))?;
    }
    for &(op, a, b, want) in F32 {
        let got = apply(op, black_box(f32::from_bits(a)), black_box(f32::from_bits(b))).to_bits();
        check(got == want, || format!("f32 {a:#010x} {op} {b:#010x} = {got:#010x}, expected {want:#010x}"))?;
    }
    let nan = (black_box(f64::INFINITY) - black_box(f64::INFINITY)).to_bits();
    check(nan & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000 && nan << 12 != 0, || {
        format!("inf - inf = {nan:#018x}, not a NaN")
    })?;
    let nan = (black_box(0.0f32) / black_box(0.0f32)).to_bits();
    check(nan & 0x7f80_0000 == 0x7f80_0000 && nan << 9 != 0, || format!("0 / 0 = {nan:#010x}, not a NaN"))?;
    Ok(format!("{} f64 and {} f32 cases, two NaNs", F64.len(), F32.len()))
}

/// `memcpy`, `memmove` and `memset` (x86_64: the kernel's own, `arch/x86_64/mem.S`) for every
/// length up to 300 and a few pages' worth, from every alignment of source and destination
/// within a quadword, and `memmove` for every overlap within 40 bytes either way: the bytes
/// asked for change and nothing else. Checked with volatile byte accesses (which the compiler
/// cannot turn back into the functions under test).
fn mem_copy_move_set() -> Outcome {
    use core::hint::black_box;
    use core::ptr::{read_volatile, write_volatile};
    const GUARD: usize = 48;
    let lengths = (0..=300).chain([4095, 4096, 4097, 3 * 4096 + 5]);
    let size = 2 * (3 * 4096 + 5 + 2 * GUARD + 16);
    let mut buffer = alloc::vec![0u8; size];
    let base = buffer.as_mut_ptr();
    let pattern = |i: usize| (i.wrapping_mul(131) ^ (i >> 7)) as u8 | 1;
    let fill = |len: usize| {
        for i in 0..len {
            // SAFETY: `i` < `size`: inside `buffer`, which nothing else borrows meanwhile.
            unsafe { write_volatile(base.add(i), pattern(i)) };
        }
    };
    // SAFETY: every index asked for is below `size` (the checks below stay in the buffer).
    let byte = |at: usize| unsafe { read_volatile(base.add(at)) };
    let half = size / 2;
    let mut cases = 0;
    for len in lengths {
        for src_off in 0..8 {
            for dst_off in 0..8 {
                fill(size);
                let (src, dst) = (GUARD + src_off, half + GUARD + dst_off);
                // SAFETY: both ranges lie in `buffer` and do not overlap (different halves).
                unsafe { core::ptr::copy_nonoverlapping(base.add(src), base.add(dst), black_box(len)) };
                for i in dst - GUARD..dst + len + GUARD {
                    let want = if (dst..dst + len).contains(&i) { pattern(src + i - dst) } else { pattern(i) };
                    check(byte(i) == want, || format!("memcpy of {len} from +{src_off} to +{dst_off}: byte {i}"))?;
                }
                fill(size);
                let value = black_box(0x5a_u8.wrapping_add(len as u8));
                // SAFETY: the range lies in `buffer`.
                unsafe { core::ptr::write_bytes(base.add(dst), value, black_box(len)) };
                for i in dst - GUARD..dst + len + GUARD {
                    let want = if (dst..dst + len).contains(&i) { value } else { pattern(i) };
                    check(byte(i) == want, || format!("memset of {len} at +{dst_off}: byte {i}"))?;
                }
                cases += 2;
            }
        }
        if len > 600 {
            continue;
        }
        for shift in -40isize..=40 {
            fill(size);
            let src = GUARD + 64;
            let dst = src.wrapping_add_signed(shift);
            // SAFETY: both ranges lie in `buffer`; `copy` allows them to overlap.
            unsafe { core::ptr::copy(base.add(src), base.add(dst), black_box(len)) };
            for i in 0..src + len + 2 * GUARD {
                let want = if (dst..dst + len).contains(&i) { pattern(src + i - dst) } else { pattern(i) };
                check(byte(i) == want, || format!("memmove of {len} by {shift}: byte {i}"))?;
            }
            cases += 1;
        }
    }
    drop(buffer);
    Ok(format!("{cases} copies, moves and fills"))
}

fn frontdoor_states() -> Outcome {
    crate::frontdoor::check_state_indices()
}

fn fail_deliberate() -> Outcome {
    Err("deliberate failure (proves that a failing self-test fails the run)".into())
}

/// Every other CPU wakes from its halt when woken, and runs what it is given as itself.
fn smp_wake() -> Outcome {
    let n = arch::cpu_count();
    check(arch::cpu_index() == 0, || format!("the boot CPU says it is CPU {}", arch::cpu_index()))?;
    arch::wake(0); // this CPU: a no-op
    time_hz()?;
    for index in 1..n {
        let before = smp::wakeups(index);
        arch::wake(index);
        let woke = smp::wait_until(1_000_000, || smp::wakeups(index) > before);
        check(woke, || format!("CPU {index} did not wake within 1 s"))?;
    }
    static SEEN: [AtomicUsize; smp::MAX_CPUS] = [const { AtomicUsize::new(usize::MAX) }; smp::MAX_CPUS];
    for (index, seen) in SEEN.iter().enumerate().take(n).skip(1) {
        let ran = smp::run_on(index, |me| SEEN[me].store(arch::cpu_index(), Ordering::Release), 1_000_000);
        check(ran, || format!("CPU {index} did not run a job within 1 s"))?;
        let seen = seen.load(Ordering::Acquire);
        check(seen == index, || format!("CPU {index} says it is CPU {seen}"))?;
    }
    Ok(format!("cpus={n}: each other CPU woke on wake() and ran a job as itself"))
}

fn time_hz() -> Result<u64, String> {
    let hz = crate::time::ticks_per_second();
    check(hz != 0, || "the clock is not calibrated".into())?;
    Ok(hz)
}

/// A panic on another CPU stops the machine and fails the run (it must not hang or crash).
fn smp_ap_panic() -> Outcome {
    check(arch::cpu_count() > 1, || "needs a second CPU".into())?;
    smp::run_on(1, |me| panic!("deliberate panic on CPU {me} (self-test smp.ap_panic)"), 5_000_000);
    Err("the panic on CPU 1 did not stop the machine".into())
}
