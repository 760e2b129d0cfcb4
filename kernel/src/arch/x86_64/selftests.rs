//! x86_64 self-tests: page-table flags, precise exception reports, the timer deadline.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use x86_64::registers::control::{Cr0, Cr4};
use x86_64::registers::model_specific::Efer;

use super::paging::{self, PageTableFlags as F};
use super::percpu::{self, MAX_CPUS};
use super::traps::{self, FaultRecord};
use super::{KERNEL_VMA, PHYS_OFFSET, smp, stacks, timer};
use crate::mm;
use crate::selftest::{Outcome, SelfTest, check};

/// Kernel-half addresses no mapping uses: scratch space for these tests.
const SCRATCH: u64 = 0xffff_c000_0000_0000;
const NEVER_MAPPED: u64 = 0xffff_c000_dead_b000;

const TESTS: &[SelfTest] = &[
    SelfTest { name: "paging.flags", run: paging_flags, on_request_only: false },
    SelfTest { name: "paging.kernel_layout", run: kernel_layout, on_request_only: false },
    SelfTest { name: "trap.page_fault", run: page_fault, on_request_only: false },
    SelfTest { name: "trap.general_protection", run: general_protection, on_request_only: false },
    SelfTest { name: "trap.invalid_opcode", run: invalid_opcode, on_request_only: false },
    SelfTest { name: "trap.nx_fetch", run: nx_fetch, on_request_only: false },
    SelfTest { name: "timer.deadline", run: timer_deadline, on_request_only: false },
    SelfTest { name: "smp.cpus", run: smp_cpus, on_request_only: false },
    SelfTest { name: "smp.timer", run: smp_timer, on_request_only: false },
    SelfTest { name: "usermode.syscall_exit", run: super::usermode_selftests::syscall_exit, on_request_only: false },
    SelfTest { name: "usermode.user_fault", run: super::usermode_selftests::user_fault, on_request_only: false },
    SelfTest {
        name: "usermode.protection_key",
        run: super::usermode_selftests::protection_key,
        on_request_only: false,
    },
    SelfTest { name: "trap.unexpected", run: unexpected_fault, on_request_only: true },
    SelfTest { name: "trap.stack_overflow", run: stack_overflow, on_request_only: true },
];

pub fn selftests() -> &'static [SelfTest] {
    TESTS
}

fn addr(sym: &u8) -> u64 {
    traps::label(sym)
}

/// Maps a fresh frame at `virt` with `flags`, checks the leaf entry reads back exactly, runs
/// `body`, then unmaps and frees.
fn with_scratch_page(virt: u64, flags: F, body: impl FnOnce(u64) -> Outcome) -> Outcome {
    let frame = mm::alloc_frame().ok_or("no frame")?;
    paging::map_page(virt, frame, flags).map_err(|e| format!("map {virt:#x}: {e:?}"))?;
    let result = (|| {
        let (phys, got) = paging::translate(virt).ok_or_else(|| format!("{virt:#x} not mapped after map"))?;
        check(phys == frame, || format!("{virt:#x} maps {phys:#x}, expected {frame:#x}"))?;
        let relevant = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE | F::NO_EXECUTE | F::GLOBAL;
        check(got & relevant == flags & relevant, || format!("{virt:#x} has flags {got:?}, mapped with {flags:?}"))?;
        body(frame)
    })();
    let unmapped = paging::unmap_page(virt).map_err(|e| format!("unmap {virt:#x}: {e:?}"));
    mm::free_frame(frame).map_err(|e| format!("{e}"))?;
    unmapped?;
    check(paging::translate(virt).is_none(), || format!("{virt:#x} still mapped after unmap"))?;
    result
}

fn paging_flags() -> Outcome {
    let combos = [
        F::PRESENT,
        F::PRESENT | F::WRITABLE,
        F::PRESENT | F::NO_EXECUTE,
        F::PRESENT | F::WRITABLE | F::NO_EXECUTE,
        F::PRESENT | F::USER_ACCESSIBLE,
        F::PRESENT | F::USER_ACCESSIBLE | F::WRITABLE | F::NO_EXECUTE,
    ];
    for (i, flags) in combos.into_iter().enumerate() {
        with_scratch_page(SCRATCH + i as u64 * 4096, flags, |_| Ok(String::new()))?;
    }
    // A writable mapping really reaches its frame: write through it, read through the direct map.
    with_scratch_page(SCRATCH, F::PRESENT | F::WRITABLE | F::NO_EXECUTE, |frame| {
        // SAFETY: SCRATCH was just mapped writable to `frame`, which this test owns.
        unsafe { (SCRATCH as *mut u64).write_volatile(0x5eed_cafe_f00d_d00d) };
        // SAFETY: the direct map covers every frame.
        let seen = unsafe { ((frame + PHYS_OFFSET) as *const u64).read_volatile() };
        check(seen == 0x5eed_cafe_f00d_d00d, || format!("wrote through {SCRATCH:#x}, frame holds {seen:#x}"))?;
        Ok(String::new())
    })?;
    // A read-only mapping refuses a supervisor write (CR0.WP).
    with_scratch_page(SCRATCH, F::PRESENT | F::NO_EXECUTE, |_| {
        let fault = fault_of(addr_of_probe_write(), || {
            // SAFETY: the write faults (read-only page) and the trap handler resumes the probe.
            unsafe { traps::probe_write(SCRATCH, 1) }
        })?;
        check(fault.vector == 14 && fault.error_code & 0b11 == 0b11, || {
            format!("write to read-only page gave vector {} error {:#x}", fault.vector, fault.error_code)
        })?;
        Ok(String::new())
    })?;
    Ok(format!("{} flag combinations read back; write-through and read-only write fault checked", combos.len()))
}

fn kernel_layout() -> Outcome {
    let text = selftests as *const () as u64;
    let (_, f) = paging::translate(text).ok_or("kernel text not mapped")?;
    check(!f.contains(F::WRITABLE) && !f.contains(F::NO_EXECUTE), || format!("kernel text has flags {f:?}"))?;
    check(!f.contains(F::USER_ACCESSIBLE), || "kernel text is user-accessible".into())?;
    static RODATA: [u8; 8] = *b"rodata!!";
    let (_, f) = paging::translate(RODATA.as_ptr() as u64).ok_or("rodata not mapped")?;
    check(!f.contains(F::WRITABLE) && f.contains(F::NO_EXECUTE), || format!("rodata has flags {f:?}"))?;
    let data = &raw const super::TSC_HZ as u64;
    let (phys, f) = paging::translate(data).ok_or("data not mapped")?;
    check(f.contains(F::WRITABLE) && f.contains(F::NO_EXECUTE), || format!("data has flags {f:?}"))?;
    check(phys == data - KERNEL_VMA, || format!("data maps {phys:#x}, expected {:#x}", data - KERNEL_VMA))?;
    let (_, f) = paging::translate(PHYS_OFFSET + 0x10_0000).ok_or("direct map missing")?;
    check(f.contains(F::NO_EXECUTE) && !f.contains(F::USER_ACCESSIBLE), || format!("direct map has {f:?}"))?;
    for guard in stacks::guard_pages() {
        check(paging::translate(guard).is_none(), || format!("stack guard page {guard:#x} is mapped"))?;
    }
    check(paging::translate(0x20_0000).is_none(), || "lower half (identity map) still mapped".into())?;
    Ok("text RX, rodata R NX, data RW NX, direct map NX, 4 stack guards unmapped, lower half empty".into())
}

fn addr_of_probe_write() -> (u64, u64) {
    // SAFETY: only the labels' addresses are taken.
    unsafe { (addr(&traps::probe_write_insn), addr(&traps::probe_write_resume)) }
}

/// Runs `f`, which must fault exactly once at `rip` (resuming at `resume`), and returns the fault.
fn fault_of((rip, resume): (u64, u64), f: impl FnOnce()) -> Result<FaultRecord, String> {
    traps::expect_fault(rip, resume);
    f();
    let fault = traps::take_fault().ok_or_else(|| format!("no fault at {rip:#x}"))?;
    check(fault.rip == rip, || format!("fault reported at rip {:#x}, expected {rip:#x}", fault.rip))?;
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

fn page_fault() -> Outcome {
    let f = read_fault(NEVER_MAPPED)?;
    check(f.vector == 14, || format!("vector {} instead of 14", f.vector))?;
    check(f.cr2 == NEVER_MAPPED, || format!("cr2 {:#x}, expected {NEVER_MAPPED:#x}", f.cr2))?;
    check(f.error_code & 1 == 0, || format!("error code {:#x} says present", f.error_code))?;
    Ok(format!("vector=14 cr2={:#x} rip={:#x} error_code={:#x}", f.cr2, f.rip, f.error_code))
}

fn general_protection() -> Outcome {
    let target = 0x8000_0000_0000_0000; // non-canonical
    let f = read_fault(target)?;
    check(f.vector == 13, || format!("vector {} instead of 13", f.vector))?;
    Ok(format!("vector=13 rip={:#x} error_code={:#x}", f.rip, f.error_code))
}

fn invalid_opcode() -> Outcome {
    // SAFETY: only the labels' addresses are taken.
    let labels = unsafe { (addr(&traps::probe_ud_insn), addr(&traps::probe_ud_resume)) };
    let f = fault_of(labels, || {
        // SAFETY: `ud2` faults and the trap handler resumes past it.
        unsafe { traps::probe_ud() };
    })?;
    check(f.vector == 6, || format!("vector {} instead of 6", f.vector))?;
    Ok(format!("vector=6 rip={:#x}", f.rip))
}

fn nx_fetch() -> Outcome {
    with_scratch_page(SCRATCH, F::PRESENT | F::WRITABLE | F::NO_EXECUTE, |_| {
        // SAFETY: SCRATCH is mapped writable; a `ret` there would return if it could execute.
        unsafe { (SCRATCH as *mut u8).write_volatile(0xc3) };
        // SAFETY: only the label's address is taken.
        let ret = unsafe { addr(&traps::probe_read_resume) }; // a lone `ret`
        let f = fault_of((SCRATCH, ret), || {
            // SAFETY: the call faults on fetch (NX); the handler resumes at a `ret`, which
            // returns here with the stack exactly as the call left it.
            let func: extern "C" fn() = unsafe { core::mem::transmute(SCRATCH as *const ()) };
            func();
        })?;
        check(f.vector == 14 && f.error_code & (1 << 4) != 0, || {
            format!("fetch from NX page gave vector {} error {:#x}", f.vector, f.error_code)
        })?;
        Ok(format!("vector=14 instruction-fetch error_code={:#x}", f.error_code))
    })
}

fn timer_deadline() -> Outcome {
    let hz = super::ticks_per_second();
    check(hz != 0, || "TSC not calibrated".into())?;
    let interval = hz / 100; // 10 ms
    // Tolerance: never early by more than 1% of the interval (calibration error); late by at
    // most 50 ms. Lateness is not the kernel's to control under TCG: the guest clock follows the
    // host's, and a busy 2-core host delays the translated guest by milliseconds (7 ms seen).
    let early = interval / 100;
    let late = hz / 20;
    static HANDLED: AtomicU64 = AtomicU64::new(0);
    timer::set_handler(|| {
        HANDLED.fetch_add(1, Ordering::Relaxed);
    });
    let (_, before) = timer::last_firing();
    let handled_before = HANDLED.load(Ordering::Relaxed);
    let deadline = super::rdtsc() + interval;
    timer::arm_deadline(deadline);
    let give_up = deadline + hz / 10;
    while timer::last_firing().1 == before && super::rdtsc() < give_up {
        traps::wait_for_interrupt();
    }
    let (fired_at, count) = timer::last_firing();
    check(count == before + 1, || format!("timer fired {} times, expected once", count - before))?;
    check(HANDLED.load(Ordering::Relaxed) == handled_before + 1, || "the registered handler did not run".into())?;

    // A disarmed deadline never fires.
    timer::arm_deadline(super::rdtsc() + interval);
    timer::disarm();
    let quiet_until = super::rdtsc() + 2 * interval;
    while super::rdtsc() < quiet_until {
        traps::wait_for_interrupt_or_spin();
    }
    check(timer::last_firing().1 == count, || "a disarmed deadline fired".into())?;
    let delta = fired_at as i128 - deadline as i128;
    let us = delta * 1_000_000 / i128::from(hz);
    check(delta >= -(early as i128) && delta <= late as i128, || {
        format!(
            "fired {us} us from the deadline; tolerance -{} us / +{} us",
            early * 1_000_000 / hz,
            late * 1_000_000 / hz
        )
    })?;
    Ok(format!("10 ms deadline fired {us:+} us from target (tolerance -100 us / +50 ms); handler ran; disarm held"))
}

/// Each application processor runs on its own stack (guard pages unmapped), with its own per-CPU
/// block and APIC id, and the boot CPU's control registers.
fn smp_cpus() -> Outcome {
    static STACK_ADDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
    static REGS: [[AtomicU64; 3]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 3] }; MAX_CPUS];
    let n = smp::cpus_online();
    let mine = [Cr0::read_raw(), Cr4::read_raw(), Efer::read_raw()];
    let mut ids = alloc::vec![percpu::current().apic_id.get()];
    for index in 1..n {
        let ran = crate::smp::run_on(
            index,
            |me| {
                let local = 0u8;
                STACK_ADDR[me].store(&raw const local as u64, Ordering::Release);
                for (slot, value) in REGS[me].iter().zip([Cr0::read_raw(), Cr4::read_raw(), Efer::read_raw()]) {
                    slot.store(value, Ordering::Release);
                }
            },
            1_000_000,
        );
        check(ran, || format!("CPU {index} did not run a job"))?;
        let [stack, ist0, ist1, ist2, user_traps] = stacks::ap_stacks(index);
        let sp = STACK_ADDR[index].load(Ordering::Acquire);
        check((stack.0..stack.1).contains(&sp), || {
            format!("CPU {index} ran on {sp:#x}, outside its stack {:#x}..{:#x}", stack.0, stack.1)
        })?;
        for (bottom, top) in [stack, ist0, ist1, ist2, user_traps] {
            check(paging::translate(bottom - 4096).is_none(), || {
                format!("CPU {index}: guard below {bottom:#x} mapped")
            })?;
            check(stacks::near_guard(bottom - 8), || format!("CPU {index}: {bottom:#x} - 8 not seen as a guard"))?;
            check(paging::translate(top - 8).is_some(), || format!("CPU {index}: stack top {top:#x} not mapped"))?;
        }
        let regs = REGS[index].each_ref().map(|r| r.load(Ordering::Acquire));
        check(regs == mine, || format!("CPU {index} runs with CR0/CR4/EFER {regs:#x?}, the boot CPU with {mine:#x?}"))?;
        let block = percpu::of(index).ok_or_else(|| format!("CPU {index} has no per-CPU block"))?;
        let id = block.apic_id.get();
        check(block.index as usize == index && smp::apic_id(index) == Some(id), || {
            format!("CPU {index}: block says index {} APIC id {id}, table {:?}", block.index, smp::apic_id(index))
        })?;
        check(!ids.contains(&id), || format!("CPU {index} shares APIC id {id}"))?;
        ids.push(id);
    }
    Ok(format!("cpus={n} APIC ids {ids:?}: own stacks with guard pages, own blocks, the boot CPU's CR0/CR4/EFER"))
}

/// Each application processor's own local APIC timer fires a 10 ms deadline (the boot CPU's is
/// `timer.deadline`).
fn smp_timer() -> Outcome {
    const NOT_FIRED: i64 = i64::MIN;
    static LATE: [AtomicI64; MAX_CPUS] = [const { AtomicI64::new(NOT_FIRED) }; MAX_CPUS];
    let n = smp::cpus_online();
    let hz = super::ticks_per_second();
    check(hz != 0, || "TSC not calibrated".into())?;
    let mut worst = 0i64;
    for (index, late) in LATE.iter().enumerate().take(n).skip(1) {
        let ran = crate::smp::run_on(
            index,
            |me| {
                let hz = super::ticks_per_second();
                let (_, before) = timer::last_firing();
                let deadline = super::rdtsc() + hz / 100;
                let give_up = deadline + hz / 10;
                while timer::last_firing().1 == before && super::rdtsc() < give_up {
                    if super::rdtsc() < deadline {
                        super::sleep_until(deadline);
                    } else {
                        traps::wait_for_interrupt_or_spin();
                    }
                }
                let (fired_at, count) = timer::last_firing();
                let late = if count > before { fired_at as i64 - deadline as i64 } else { NOT_FIRED };
                LATE[me].store(late, Ordering::Release);
            },
            2_000_000,
        );
        check(ran, || format!("CPU {index} did not run the timer job"))?;
        let late = late.load(Ordering::Acquire);
        check(late != NOT_FIRED, || format!("CPU {index}: its timer did not fire within 100 ms of the deadline"))?;
        // As `timer.deadline`: never early by more than 1% of the interval; late by at most 50 ms.
        let us = i128::from(late) * 1_000_000 / i128::from(hz);
        check(late >= -((hz / 10_000) as i64) && late <= (hz / 20) as i64, || {
            format!("CPU {index}: fired {us} us from the deadline; tolerance -100 us / +50 ms")
        })?;
        worst = worst.max(late);
    }
    let worst_us = i128::from(worst) * 1_000_000 / i128::from(hz);
    Ok(format!("cpus={n}: each other CPU's timer fired its 10 ms deadline (latest {worst_us:+} us)"))
}

fn unexpected_fault() -> Outcome {
    // SAFETY: deliberately faults with no catch armed: the kernel must report and fail the run.
    unsafe { traps::probe_read(NEVER_MAPPED) };
    Err("the unexpected fault did not stop the kernel".into())
}

fn stack_overflow() -> Outcome {
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        // The bound is far beyond the 64 KiB stack; it only keeps the compiler from calling
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
