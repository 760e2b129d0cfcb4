//! aarch64 self-tests: translation tables, precise exception reports, the generic timer.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, MPIDR_EL1, Readable, VBAR_EL1, Writeable};

use super::morello::{self, DeriveError, PROBE_CLEAR_TAG, PROBE_SEAL};
use super::paging::{self, Mapping};
use super::traps::{self, AbortStatus, FaultRecord};
use super::{UART_BASE, gic, percpu, stacks, timer};
use crate::mm;
use crate::selftest::{Outcome, SelfTest, check};
use crate::smp::MAX_CPUS;

/// Addresses no mapping uses (level-0 slots the kernel never fills): scratch for these tests.
const SCRATCH: u64 = 0x0000_4000_0000_0000;
const NEVER_MAPPED: u64 = 0x0000_7fff_dead_b000;

/// ESR_EL1 exception classes the tests expect.
const EC_UNKNOWN: u64 = 0x00;
const EC_IABT_SAME_EL: u64 = 0x21;
const EC_DABT_SAME_EL: u64 = 0x25;
/// ESR_EL1.ISS.WnR for data aborts.
const WNR: u64 = 1 << 6;

const TESTS: &[SelfTest] = &[
    SelfTest { name: "paging.kernel_layout", run: kernel_layout, on_request_only: false },
    SelfTest { name: "paging.map_unmap", run: map_unmap, on_request_only: false },
    SelfTest { name: "trap.data_abort", run: data_abort, on_request_only: false },
    SelfTest { name: "trap.write_protect", run: write_protect, on_request_only: false },
    SelfTest { name: "trap.undefined", run: undefined, on_request_only: false },
    SelfTest { name: "trap.exec_never", run: exec_never, on_request_only: false },
    SelfTest { name: "timer.counter", run: timer_counter, on_request_only: false },
    SelfTest { name: "gic.timer_interrupt", run: timer_interrupt, on_request_only: false },
    SelfTest { name: "gic.sgi_wakeup", run: sgi_wakeup, on_request_only: false },
    SelfTest { name: "smp.cpus", run: smp_cpus, on_request_only: false },
    SelfTest { name: "smp.timer", run: smp_timer, on_request_only: false },
    SelfTest { name: "morello.capabilities", run: morello_capabilities, on_request_only: false },
    SelfTest { name: "morello.derive", run: morello_derive, on_request_only: false },
    SelfTest { name: "morello.fault_bounds", run: morello_fault_bounds, on_request_only: false },
    SelfTest { name: "morello.fault_tag", run: morello_fault_tag, on_request_only: false },
    SelfTest { name: "morello.fault_seal", run: morello_fault_seal, on_request_only: false },
    SelfTest { name: "morello.fault_permission", run: morello_fault_permission, on_request_only: false },
    SelfTest { name: "morello.clear_registers", run: morello_clear_registers, on_request_only: false },
    SelfTest { name: "morello.clear_tags", run: morello_clear_tags, on_request_only: false },
    SelfTest { name: "cheri.sandbox", run: super::usermode_selftests::cheri_sandbox, on_request_only: false },
    SelfTest { name: "cheri.bounds", run: super::usermode_selftests::cheri_bounds, on_request_only: false },
    SelfTest {
        name: "cheri.preempt_resume",
        run: super::usermode_selftests::cheri_preempt_resume,
        on_request_only: false,
    },
    SelfTest { name: "usermode.svc_exit", run: super::usermode_selftests::svc_exit, on_request_only: false },
    SelfTest { name: "usermode.user_fault", run: super::usermode_selftests::user_fault, on_request_only: false },
    SelfTest {
        name: "usermode.forbidden_instructions",
        run: super::usermode_selftests::forbidden_instructions,
        on_request_only: false,
    },
    SelfTest {
        name: "usermode.preempt_resume",
        run: super::usermode_selftests::preempt_resume,
        on_request_only: false,
    },
    SelfTest { name: "usermode.pan", run: super::usermode_selftests::pan, on_request_only: false },
    SelfTest { name: "usermode.pxn", run: super::usermode_selftests::pxn, on_request_only: false },
    SelfTest { name: "trap.unexpected", run: unexpected_fault, on_request_only: true },
    SelfTest { name: "trap.stack_overflow", run: stack_overflow, on_request_only: true },
    SelfTest { name: "smp.stack_overflow", run: ap_stack_overflow, on_request_only: true },
];

pub fn selftests() -> &'static [SelfTest] {
    TESTS
}

fn addr(sym: &u8) -> u64 {
    traps::label(sym)
}

/// Runs `f`, which must fault exactly once at `pc` (resuming at `resume`), and returns the fault.
fn fault_of((pc, resume): (u64, u64), f: impl FnOnce()) -> Result<FaultRecord, String> {
    traps::expect_fault(pc, resume);
    f();
    let fault = traps::take_fault().ok_or_else(|| format!("no fault at {pc:#x}"))?;
    check(fault.elr == pc, || format!("fault reported at ELR {:#x}, expected {pc:#x}", fault.elr))?;
    Ok(fault)
}

fn read_fault(target: u64) -> Result<FaultRecord, String> {
    // SAFETY: only the labels' addresses are taken.
    let labels = unsafe { (addr(&traps::probe_read_insn), addr(&traps::probe_read_resume)) };
    fault_of(labels, || {
        // SAFETY: the read faults and the trap handler resumes the probe; nothing is read.
        unsafe { traps::probe_read(target) };
    })
}

fn write_fault(target: u64) -> Result<FaultRecord, String> {
    // SAFETY: only the labels' addresses are taken.
    let labels = unsafe { (addr(&traps::probe_write_insn), addr(&traps::probe_write_resume)) };
    fault_of(labels, || {
        // SAFETY: the write faults and the trap handler resumes the probe; nothing is written.
        unsafe { traps::probe_write(target, 0xbad) };
    })
}

fn kernel_layout() -> Outcome {
    let text = selftests as *const () as u64;
    let (phys, m) = paging::translate(text).ok_or("kernel text not mapped")?;
    check(phys == text, || format!("text {text:#x} maps {phys:#x}, expected identity"))?;
    check(m == Mapping::TEXT, || format!("kernel text mapped {m:?}"))?;
    static RODATA: [u8; 8] = *b"rodata!!";
    let (_, m) = paging::translate(RODATA.as_ptr() as u64).ok_or("rodata not mapped")?;
    check(m == Mapping::RODATA, || format!("rodata mapped {m:?}"))?;
    let data = &raw const super::EXITING as u64;
    let (_, m) = paging::translate(data).ok_or("data not mapped")?;
    check(m == Mapping::DATA, || format!("data mapped {m:?}"))?;
    let (_, m) = paging::translate(UART_BASE as u64).ok_or("UART not mapped")?;
    check(m == Mapping::DEVICE, || format!("UART mapped {m:?}"))?;
    for guard in stacks::guard_pages() {
        check(paging::translate(guard).is_none(), || format!("stack guard page {guard:#x} is mapped"))?;
    }
    let heap_frame = mm::alloc_frame().ok_or("no frame")?;
    let free_ram = paging::translate(heap_frame);
    mm::free_frame(heap_frame).map_err(|e| format!("{e}"))?;
    check(free_ram == Some((heap_frame, Mapping::DATA)), || format!("free RAM {heap_frame:#x} mapped {free_ram:?}"))?;
    check(paging::translate(NEVER_MAPPED).is_none(), || format!("{NEVER_MAPPED:#x} is mapped"))?;
    Ok("text RX, rodata R XN, data RW XN, RAM RW XN, UART Device, 2 stack guards unmapped".into())
}

fn map_unmap() -> Outcome {
    let frame = mm::alloc_frame().ok_or("no frame")?;
    let result = (|| {
        paging::map_page(SCRATCH, frame, Mapping::DATA).map_err(|e| format!("map: {e:?}"))?;
        let got = paging::translate(SCRATCH);
        check(got == Some((frame, Mapping::DATA)), || format!("{SCRATCH:#x} translates to {got:?}"))?;
        // SAFETY: SCRATCH was just mapped read-write to `frame`, which this test owns.
        unsafe { (SCRATCH as *mut u64).write_volatile(0x5eed_cafe_f00d_d00d) };
        // SAFETY: the identity map covers every frame.
        let seen = unsafe { (super::phys_to_virt(frame) as *const u64).read_volatile() };
        check(seen == 0x5eed_cafe_f00d_d00d, || format!("wrote through {SCRATCH:#x}, frame holds {seen:#x}"))?;
        check(paging::map_page(SCRATCH, frame, Mapping::DATA) == Err(paging::MapError::AlreadyMapped), || {
            "double map accepted".into()
        })?;
        paging::unmap_page(SCRATCH).map_err(|e| format!("unmap: {e:?}"))?;
        check(paging::translate(SCRATCH).is_none(), || format!("{SCRATCH:#x} still mapped after unmap"))?;
        // The TLB forgot it too: a read now faults.
        let f = read_fault(SCRATCH)?;
        check(f.class() == EC_DABT_SAME_EL && f.far == SCRATCH, || {
            format!("read after unmap gave EC {:#x} FAR {:#x}", f.class(), f.far)
        })?;
        Ok(format!("mapped, wrote through, unmapped; stale access faults (FAR={:#x})", f.far))
    })();
    mm::free_frame(frame).map_err(|e| format!("{e}"))?;
    result
}

fn data_abort() -> Outcome {
    let f = read_fault(NEVER_MAPPED)?;
    let status = AbortStatus(f.esr);
    check(f.class() == EC_DABT_SAME_EL, || format!("EC {:#x} instead of {EC_DABT_SAME_EL:#x}", f.class()))?;
    check(f.far == NEVER_MAPPED, || format!("FAR {:#x}, expected {NEVER_MAPPED:#x}", f.far))?;
    check(status.translation_level().is_some(), || format!("{status}, expected a translation fault"))?;
    check(f.esr & WNR == 0, || "reported as a write".into())?;
    Ok(format!("EC={:#x} FAR={:#x} ELR={:#x} ESR={:#x} ({status}, read)", f.class(), f.far, f.elr, f.esr))
}

fn write_protect() -> Outcome {
    static READ_ONLY: u64 = 0x0123_4567_89ab_cdef;
    let target = &raw const READ_ONLY as u64;
    let f = write_fault(target)?;
    let status = AbortStatus(f.esr);
    check(f.class() == EC_DABT_SAME_EL, || format!("EC {:#x} instead of {EC_DABT_SAME_EL:#x}", f.class()))?;
    check(f.far == target, || format!("FAR {:#x}, expected {target:#x}", f.far))?;
    check(status.permission_level().is_some(), || format!("{status}, expected a permission fault"))?;
    check(f.esr & WNR != 0, || "reported as a read".into())?;
    check(core::hint::black_box(&READ_ONLY) == &0x0123_4567_89ab_cdef, || "read-only data changed".into())?;
    Ok(format!("EC={:#x} FAR={:#x} ({status}, write)", f.class(), f.far))
}

fn undefined() -> Outcome {
    // SAFETY: only the labels' addresses are taken.
    let labels = unsafe { (addr(&traps::probe_udf_insn), addr(&traps::probe_udf_resume)) };
    let f = fault_of(labels, || {
        // SAFETY: `udf` traps and the handler resumes past it.
        unsafe { traps::probe_udf() };
    })?;
    check(f.class() == EC_UNKNOWN, || format!("EC {:#x} instead of {EC_UNKNOWN:#x}", f.class()))?;
    Ok(format!("EC={:#x} ELR={:#x}", f.class(), f.elr))
}

fn exec_never() -> Outcome {
    /// `ret`, in read-write (so execute-never) data.
    static mut RET_IN_DATA: u32 = 0xd65f_03c0;
    let target = &raw mut RET_IN_DATA as u64;
    // SAFETY: only the label's address is taken.
    let resume = unsafe { addr(&traps::probe_read_resume) }; // a lone `ret`
    let f = fault_of((target, resume), || {
        // SAFETY: the call faults on fetch (PXN); the handler resumes at a `ret`, which returns
        // here through the link register the call set.
        let func: extern "C" fn() = unsafe { core::mem::transmute(target as *const ()) };
        func();
    })?;
    let status = AbortStatus(f.esr);
    check(f.class() == EC_IABT_SAME_EL, || format!("EC {:#x} instead of {EC_IABT_SAME_EL:#x}", f.class()))?;
    check(f.far == target, || format!("FAR {:#x}, expected {target:#x}", f.far))?;
    check(status.permission_level().is_some(), || format!("{status}, expected a permission fault"))?;
    Ok(format!("EC={:#x} FAR={:#x} ({status})", f.class(), f.far))
}

fn timer_counter() -> Outcome {
    let hz = super::ticks_per_second();
    check((1_000_000..=10_000_000_000).contains(&hz), || format!("CNTFRQ_EL0 = {hz} Hz is implausible"))?;
    // Monotonic over many reads.
    let mut last = super::ticks();
    let first = last;
    for i in 0..10_000 {
        let now = super::ticks();
        check(now >= last, || format!("counter went back from {last} to {now} at read {i}"))?;
        last = now;
    }
    check(last > first, || "counter did not advance over 10000 reads".into())?;
    // The virtual timer, compared against the same counter: its condition must not be met
    // before the deadline and must be met once the counter passes it (polled, interrupt masked).
    let interval = hz / 1000; // 1 ms
    let deadline = super::ticks() + interval;
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::SET);
    let early = CNTV_CTL_EL0.is_set(CNTV_CTL_EL0::ISTATUS) && super::ticks() < deadline;
    let give_up = deadline + hz; // a second
    let mut fired_at = 0;
    while super::ticks() < give_up {
        if CNTV_CTL_EL0.is_set(CNTV_CTL_EL0::ISTATUS) {
            fired_at = super::ticks();
            break;
        }
    }
    CNTV_CTL_EL0.set(0);
    check(!early, || "virtual timer condition met before its deadline".into())?;
    check(fired_at >= deadline, || format!("virtual timer condition not met within a second (fired_at={fired_at})"))?;
    let late_us = (fired_at - deadline) * 1_000_000 / hz;
    Ok(format!("CNTFRQ={hz} Hz, 10000 reads monotonic, 1 ms CNTV deadline met {late_us} us late, not early"))
}

/// The virtual timer as an interrupt: `sleep_until` a deadline 2 ms ahead returns after it,
/// with one more firing recorded on this CPU, at or after the deadline.
fn timer_interrupt() -> Outcome {
    if gic::version() == 0 {
        return Err("no GIC set up".into());
    }
    let hz = super::ticks_per_second();
    let (_, before) = timer::last_firing();
    let deadline = super::ticks() + hz / 500;
    super::sleep_until(deadline);
    let woke = super::ticks();
    let (fired_at, after) = timer::last_firing();
    check(woke >= deadline, || format!("sleep_until returned {} ticks early", deadline - woke))?;
    check(after > before, || format!("no timer interrupt taken (firings {before} -> {after})"))?;
    check(fired_at >= deadline, || format!("timer interrupt at {fired_at}, before its deadline {deadline}"))?;
    let late_us = (fired_at - deadline) * 1_000_000 / hz;
    Ok(format!("GICv{}: 2 ms deadline interrupt {late_us} us late, {} firing(s)", gic::version(), after - before))
}

/// A wake-up SGI sent to this CPU with IRQs masked ends the next `wfi` at once and is taken
/// when the wait unmasks (the path another CPU's `wake` takes).
fn sgi_wakeup() -> Outcome {
    if gic::version() == 0 {
        return Err("no GIC set up".into());
    }
    let this = percpu::current();
    let before = this.wakeups.load(Ordering::Relaxed);
    gic::send_sgi(super::cpu_index(), gic::SGI_WAKE);
    let hz = super::ticks_per_second();
    let start = super::ticks();
    // A deadline a second ahead: the wait must end on the SGI, long before it.
    super::wait_for_work(Some(start + hz), || false);
    let waited_us = (super::ticks() - start) * 1_000_000 / hz;
    let after = this.wakeups.load(Ordering::Relaxed);
    check(after == before + 1, || format!("wake-ups {before} -> {after}, expected one more"))?;
    check(waited_us < 500_000, || format!("the wait lasted {waited_us} us: the SGI did not end it"))?;
    Ok(format!("SGI {} to self ended the wait after {waited_us} us", gic::SGI_WAKE))
}

/// The translation and control registers a secondary must share with the boot CPU.
fn system_regs() -> [u64; 4] {
    let (ttbr0, tcr, sctlr, mair): (u64, u64, u64, u64);
    // SAFETY: reads system registers; no side effects.
    unsafe {
        core::arch::asm!(
            "mrs {}, ttbr0_el1", "mrs {}, tcr_el1", "mrs {}, sctlr_el1", "mrs {}, mair_el1",
            out(reg) ttbr0, out(reg) tcr, out(reg) sctlr, out(reg) mair, options(nomem, nostack)
        );
    }
    [ttbr0, tcr, sctlr, mair]
}

/// Each secondary runs on its own stack block (guard pages unmapped, the stack proper mapped),
/// with its own per-CPU block (TPIDR_EL1) naming its index and its MPIDR, the boot CPU's
/// translation settings and the kernel's vectors.
fn smp_cpus() -> Outcome {
    static STACK_ADDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
    static MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
    static VBAR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
    static REGS: [[AtomicU64; 4]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 4] }; MAX_CPUS];
    let n = super::cpu_count();
    let mine = system_regs();
    let mut mpidrs = alloc::vec![percpu::current().mpidr.load(Ordering::Relaxed)];
    for index in 1..n {
        let ran = crate::smp::run_on(
            index,
            |me| {
                let local = 0u8;
                STACK_ADDR[me].store(&raw const local as u64, Ordering::Release);
                MPIDR[me].store(MPIDR_EL1.get() & super::MPIDR_AFFINITY, Ordering::Release);
                VBAR[me].store(VBAR_EL1.get(), Ordering::Release);
                for (slot, value) in REGS[me].iter().zip(system_regs()) {
                    slot.store(value, Ordering::Release);
                }
            },
            1_000_000,
        );
        check(ran, || format!("CPU {index} did not run a job"))?;
        let block = stacks::ap_block(index);
        let sp = STACK_ADDR[index].load(Ordering::Acquire);
        let stack = (block + stacks::BLOCK as u64 / 2, block + stacks::BLOCK as u64);
        check((stack.0..stack.1).contains(&sp), || {
            format!("CPU {index} ran on {sp:#x}, outside its stack {:#x}..{:#x}", stack.0, stack.1)
        })?;
        for guard in stacks::guards_of(block) {
            check(paging::translate(guard).is_none(), || format!("CPU {index}: guard page {guard:#x} mapped"))?;
        }
        check(paging::translate(stack.1 - 8).is_some(), || format!("CPU {index}: stack top not mapped"))?;
        let regs = REGS[index].each_ref().map(|r| r.load(Ordering::Acquire));
        check(regs == mine, || {
            format!("CPU {index} runs with TTBR0/TCR/SCTLR/MAIR {regs:#x?}, the boot CPU with {mine:#x?}")
        })?;
        let vbar = VBAR[index].load(Ordering::Acquire);
        check(vbar == traps::vectors(), || format!("CPU {index}: VBAR_EL1 {vbar:#x}"))?;
        let block = percpu::of(index).ok_or_else(|| format!("CPU {index} has no per-CPU block"))?;
        let (said, mpidr) = (block.index.load(Ordering::Relaxed), MPIDR[index].load(Ordering::Acquire));
        check(said == index && block.mpidr.load(Ordering::Relaxed) == mpidr, || {
            format!(
                "CPU {index}: block says index {said} MPIDR {:#x}, the CPU {mpidr:#x}",
                block.mpidr.load(Ordering::Relaxed)
            )
        })?;
        check(!mpidrs.contains(&mpidr), || format!("CPU {index} shares MPIDR {mpidr:#x}"))?;
        mpidrs.push(mpidr);
    }
    Ok(format!(
        "cpus={n} MPIDRs {mpidrs:x?}: own stacks with guard pages, own blocks, the boot CPU's tables and vectors"
    ))
}

/// Each secondary's own virtual timer interrupts at a 10 ms deadline (the boot CPU's is
/// `gic.timer_interrupt`).
fn smp_timer() -> Outcome {
    const NOT_FIRED: i64 = i64::MIN;
    static LATE: [AtomicI64; MAX_CPUS] = [const { AtomicI64::new(NOT_FIRED) }; MAX_CPUS];
    let n = super::cpu_count();
    let hz = super::ticks_per_second();
    let mut worst = 0i64;
    for (index, late) in LATE.iter().enumerate().take(n).skip(1) {
        let ran = crate::smp::run_on(
            index,
            |me| {
                let hz = super::ticks_per_second();
                let (_, before) = timer::last_firing();
                let deadline = super::ticks() + hz / 100;
                super::sleep_until(deadline);
                let (fired_at, count) = timer::last_firing();
                let late = if count > before { fired_at as i64 - deadline as i64 } else { NOT_FIRED };
                LATE[me].store(late, Ordering::Release);
            },
            2_000_000,
        );
        check(ran, || format!("CPU {index} did not run the timer job"))?;
        let late = late.load(Ordering::Acquire);
        check(late != NOT_FIRED, || format!("CPU {index}: its timer did not interrupt"))?;
        let us = i128::from(late) * 1_000_000 / i128::from(hz);
        check(late >= 0 && late <= (hz / 20) as i64, || {
            format!("CPU {index}: fired {us} us from the deadline; tolerance 0 / +50 ms")
        })?;
        worst = worst.max(late);
    }
    let worst_us = i128::from(worst) * 1_000_000 / i128::from(hz);
    Ok(format!("cpus={n}: each other CPU's timer interrupted at its 10 ms deadline (latest {worst_us:+} us)"))
}

/// A stack overflow on a secondary runs into its guard page and is reported (on its emergency
/// stack), failing the run.
fn ap_stack_overflow() -> Outcome {
    check(super::cpu_count() > 1, || "needs a second CPU".into())?;
    crate::smp::run_on(
        1,
        |_| {
            let _ = stack_overflow();
        },
        5_000_000,
    );
    Err("the overflow on CPU 1 did not stop the machine".into())
}

fn unexpected_fault() -> Outcome {
    // SAFETY: deliberately faults with no catch armed: the kernel must report and fail the run.
    unsafe { traps::probe_read(NEVER_MAPPED) };
    Err("the unexpected fault did not stop the kernel".into())
}

fn stack_overflow() -> Outcome {
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        // The bound is far beyond the 256 KiB stack; it only keeps the compiler from calling
        // this an infinite recursion.
        if depth == u64::MAX {
            return 0;
        }
        let pad = [depth; 64];
        core::hint::black_box(&pad);
        recurse(depth + 1) + pad[3]
    }
    let _ = recurse(0);
    Err("recursion ended without hitting the guard page".into())
}

/// What the Morello self-tests say on a CPU without Morello (the `morello.capabilities` test
/// checks that such a CPU really refuses capability instructions).
const NOT_MORELLO: &str = "skipped: not a Morello CPU";

/// The detection agrees with the CPU. On Morello: ID_AA64PFR1_EL1.CE set, CPACR_EL1.CEN on,
/// CVBAR_EL1 a tagged, unsealed capability whose value is the vector table (every exception
/// this boot took went through it), DDC the root (tagged, base 0, every permission). Elsewhere:
/// a capability instruction is an undefined instruction, so "not Morello" was no mistake.
fn morello_capabilities() -> Outcome {
    if !morello::present() {
        // SAFETY: only the labels' addresses are taken.
        let labels = unsafe { (addr(&morello::morello_probe_mrs_insn), addr(&morello::morello_probe_mrs_resume)) };
        let f = fault_of(labels, || {
            // SAFETY: on this CPU the word is undefined; the handler resumes past it.
            unsafe { morello::morello_probe_mrs() };
        })?;
        check(f.class() == EC_UNKNOWN, || format!("mrs c9, ddc gave EC {:#x}, not undefined", f.class()))?;
        return Ok(format!(
            "not a Morello CPU: ID_AA64PFR1_EL1.CE=0 and `mrs c9, ddc` is undefined (EC {:#x})",
            f.class()
        ));
    }
    check(morello::enabled(), || "Morello CPU, but CPACR_EL1.CEN is not 0b11".into())?;
    let cvbar = morello::cvbar().ok_or("CVBAR_EL1 unreadable")?;
    check(cvbar.tag && !cvbar.sealed, || format!("CVBAR_EL1 is {cvbar}"))?;
    check(cvbar.value == traps::vectors(), || {
        format!("CVBAR_EL1 value {:#x}, vectors at {:#x}", cvbar.value, traps::vectors())
    })?;
    check(cvbar.perms & cheri::perms::EXECUTE != 0, || format!("CVBAR_EL1 cannot execute: {cvbar}"))?;
    let ddc = morello::ddc().ok_or("DDC unreadable")?;
    check(ddc.tag && !ddc.sealed && ddc.base == 0, || format!("DDC is {ddc}"))?;
    check(ddc.perms == cheri::perms::ALL, || format!("DDC lacks permissions: {ddc}"))?;
    Ok(format!("CE=1 CEN=0b11 CVBAR_EL1: {cvbar}; DDC: {ddc}"))
}

/// A 64-byte, 64-aligned buffer for the capability probes (read-only: a store probe that
/// failed to fault would fault on the page instead, and the test would say so).
#[repr(C, align(64))]
struct ProbeBuffer([u8; 64]);
static PROBE_BUFFER: ProbeBuffer = ProbeBuffer(*b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");

/// Deriving a bounded capability: exact bounds, the asked-for permissions cleared and no
/// others, unsealed; a region whose bounds Morello cannot represent exactly is refused.
fn morello_derive() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    use cheri::perms::*;
    let base = &raw const PROBE_BUFFER as u64;
    let clear = ALL & !SANDBOX_DATA;
    let cap = morello::derive(base, 64, clear).map_err(|e| format!("derive: {e:?}"))?;
    check(cap.base == base && cap.len == 64 && cap.value == base, || format!("bounds: {cap}"))?;
    check(cap.perms == SANDBOX_DATA, || format!("permissions {:#x}, expected {SANDBOX_DATA:#x}", cap.perms))?;
    let code = morello::derive(base, 4096, ALL & !SANDBOX_CODE).map_err(|e| format!("derive code: {e:?}"))?;
    check(code.perms == SANDBOX_CODE, || format!("code permissions {:#x}", code.perms))?;
    // 2^40 + 16 bytes from an odd address: more precision than a compressed capability has.
    let refused = morello::derive(base + 1, (1 << 40) + 16, 0);
    check(refused == Err(DeriveError::NotRepresentable), || format!("unrepresentable bounds gave {refused:?}"))?;
    Ok(format!("data: {cap}; code: perms {:#x}; [base+1, +2^40+16) refused as not representable", code.perms))
}

/// One probe through a derived capability that must fault with `kind` at `base + offset`.
fn cap_fault(
    store: bool,
    len: u64,
    clear_perms: u64,
    offset: u64,
    mode: u64,
    kind: cheri::fault::CapFaultKind,
) -> Result<(FaultRecord, u64), String> {
    let base = &raw const PROBE_BUFFER as u64;
    // SAFETY: only the labels' addresses are taken.
    let labels = unsafe {
        if store {
            (addr(&morello::morello_probe_store_insn), addr(&morello::morello_probe_store_resume))
        } else {
            (addr(&morello::morello_probe_load_insn), addr(&morello::morello_probe_load_resume))
        }
    };
    let f = fault_of(labels, || {
        // SAFETY: capabilities are enabled (the callers check `present`); the probe's one access
        // faults and the handler resumes past it; nothing is written.
        unsafe {
            if store {
                morello::morello_probe_store(base, len, clear_perms, offset, mode);
            } else {
                morello::morello_probe_load(base, len, clear_perms, offset, mode);
            }
        }
    })?;
    let decoded = cheri::fault::decode(f.esr);
    let access = if store { cheri::fault::Access::Write } else { cheri::fault::Access::Read };
    let want = cheri::fault::CapException::Fault { kind, access, lower_el: false };
    check(decoded == Some(want), || format!("ESR {:#x} decodes to {decoded:?}, expected {want:?}", f.esr))?;
    check(f.far == base + offset, || format!("FAR {:#x}, expected {:#x}", f.far, base + offset))?;
    Ok((f, base))
}

fn describe(f: &FaultRecord) -> String {
    let cap = cheri::fault::decode(f.esr).map(|c| format!("{c}")).unwrap_or_default();
    format!("ESR={:#x} FAR={:#x} ({cap})", f.esr, f.far)
}

/// A load one byte past a 16-byte capability's bound is a capability bounds fault (and the
/// last byte inside it loads).
fn morello_fault_bounds() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    let base = &raw const PROBE_BUFFER as u64;
    // SAFETY: capabilities are enabled; offset 15 is inside the bounds, so the load completes.
    let last = unsafe { morello::morello_probe_load(base, 16, 0, 15, 0) };
    check(last == u64::from(b'f'), || format!("the last byte in bounds read {last:#x}, not 'f'"))?;
    let (f, _) = cap_fault(false, 16, 0, 16, 0, cheri::fault::CapFaultKind::Bounds)?;
    Ok(format!("byte 15 read {last:#x}; byte 16: {}", describe(&f)))
}

/// A load through a capability whose tag was cleared is a tag fault.
fn morello_fault_tag() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    let (f, _) = cap_fault(false, 16, 0, 0, PROBE_CLEAR_TAG, cheri::fault::CapFaultKind::Tag)?;
    Ok(describe(&f))
}

/// A load through a sealed capability is a seal fault.
fn morello_fault_seal() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    let (f, _) = cap_fault(false, 16, 0, 0, PROBE_SEAL, cheri::fault::CapFaultKind::Seal)?;
    Ok(describe(&f))
}

/// A load through a capability without Load, and a store through one without Store, are
/// permission faults.
fn morello_fault_permission() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    use cheri::fault::CapFaultKind::Permission;
    let (load, _) = cap_fault(false, 16, cheri::perms::LOAD, 0, 0, Permission)?;
    let (store, _) = cap_fault(true, 16, cheri::perms::STORE, 0, 0, Permission)?;
    Ok(format!("load: {}; store: {}", describe(&load), describe(&store)))
}

/// Clearing every capability register leaves none tagged; without the clear, all were (so the
/// check can see a tag).
fn morello_clear_registers() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    const C2_TO_C30: u64 = 0x7fff_fffc;
    let filled = morello::clear_probe(false).ok_or("capabilities off")?;
    check(filled == C2_TO_C30, || format!("after filling, tagged mask {filled:#x}, expected {C2_TO_C30:#x}"))?;
    let cleared = morello::clear_probe(true).ok_or("capabilities off")?;
    check(cleared == 0, || format!("after clearing, c<n> still tagged for mask {cleared:#x}"))?;
    Ok(format!("tagged before the clear: {filled:#x} (c2..c30); after: {cleared:#x}"))
}

/// A frame with tagged capabilities stored in it (kernel data pages allow that on Morello) has
/// none left after [`morello::clear_tags`], as the engine will clear every frame it hands a
/// sandbox; the count before proves the check sees tags.
fn morello_clear_tags() -> Outcome {
    if !morello::present() {
        return Ok(NOT_MORELLO.into());
    }
    let frame = mm::alloc_frame().ok_or("no frame")?;
    let base = super::phys_to_virt(frame) as u64;
    let result = (|| {
        // SAFETY: the frame was just allocated for this test and is mapped kernel data.
        unsafe { morello::clear_tags(base, 4096) };
        let clean = morello::tags_in(base, 4096).ok_or("capabilities off")?;
        check(clean == 0, || format!("{clean} tags in a zeroed frame"))?;
        let slots = [0u64, 16, 1024, 4080];
        for off in slots {
            // SAFETY: 16 bytes of the test's own frame.
            unsafe { morello::store_capability(base + off) }.map_err(|e| format!("store: {e:?}"))?;
        }
        let stored = morello::tags_in(base, 4096).ok_or("capabilities off")?;
        check(stored == slots.len() as u64, || format!("{stored} tags after storing {}", slots.len()))?;
        // SAFETY: as above.
        unsafe { morello::clear_tags(base, 4096) };
        let after = morello::tags_in(base, 4096).ok_or("capabilities off")?;
        check(after == 0, || format!("{after} tags left after clear_tags"))?;
        Ok(format!("frame {frame:#x}: {stored} tagged capabilities stored, {after} after clear_tags"))
    })();
    mm::free_frame(frame).map_err(|e| format!("{e}"))?;
    result
}
