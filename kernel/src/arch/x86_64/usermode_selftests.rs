//! Self-tests of ring 3: a tiny user code page that exits through `syscall` with its registers
//! checked, a fault from ring 3 that ends the run instead of the kernel, and (with PKU) a data
//! access under another protection key that faults with the PK bit.

use alloc::format;

use super::usermode::{self, Exit, Session, UserRegs};
use super::uspace::{Access, AddressSpace};
use crate::mm;
use crate::selftest::{Outcome, check};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x80_0000;
const OTHER: u64 = 0xc0_0000;
const STACK_TOP: u64 = 0x100_0000;

/// Records the first fault and ends the run.
#[derive(Default)]
struct Probe {
    fault: Option<(u64, u64, u64, u64)>,
}

impl Session for Probe {
    fn on_fault(&mut self, vector: u64, error_code: u64, rip: u64, cr2: u64) -> Option<()> {
        self.fault = Some((vector, error_code, rip, cr2));
        None
    }

    fn on_tick(&mut self) -> usermode::Tick {
        usermode::Tick::End
    }
}

/// Runs `code` (machine code, at CODE with key `key`) in a fresh space with a data page at DATA
/// (key `key`) and one at OTHER (key `other_key`), PKRU granting `key` when PKU is on.
fn run(code: &[u8], key: u8, other_key: u8) -> Result<(Exit, UserRegs, Probe), alloc::string::String> {
    let mut space = AddressSpace::new().ok_or("no frame")?;
    space.map_bytes(CODE, code, 1, Access::Executable, key).map_err(|_| "map code")?;
    space.map_bytes(DATA, &0x1122_3344_5566_7788u64.to_le_bytes(), 1, Access::Writable, key).map_err(|_| "map data")?;
    space.map_bytes(OTHER, &[0x5a; 8], 1, Access::Writable, other_key).map_err(|_| "map other")?;
    space.map_zeroed(STACK_TOP - 4096, Access::Writable, key).map_err(|_| "map stack")?;
    let mut regs = UserRegs { rip: CODE, rsp: STACK_TOP - 8, rdi: DATA, ..UserRegs::default() };
    let mut probe = Probe::default();
    let previous = space.activate();
    if usermode::pku_enabled() {
        usermode::write_pkru(usermode::pkru_grant_only(key));
    }
    let exit = usermode::enter_user(&mut regs, &mut usermode::ExtendedState::new(), &mut probe, None);
    if usermode::pku_enabled() {
        usermode::write_pkru(usermode::PKRU_DENY_ALL);
    }
    AddressSpace::deactivate(previous);
    let free_before = mm::frame_stats().free;
    drop(space);
    check(mm::frame_stats().free > free_before, || "the space freed no frame".into())?;
    Ok((exit, regs, probe))
}

/// `mov rax, [rdi]; mov rsi, rax; xor eax, eax; mov edi, 7; mov edx, 3; syscall`
const EXIT_WITH_DATA: &[u8] =
    &[0x48, 0x8b, 0x07, 0x48, 0x89, 0xc6, 0x31, 0xc0, 0xbf, 0x07, 0, 0, 0, 0xba, 0x03, 0, 0, 0, 0x0f, 0x05];

pub fn syscall_exit() -> Outcome {
    let (exit, regs, probe) = run(EXIT_WITH_DATA, 1, 2)?;
    check(exit == Exit::Syscall, || format!("ended {exit:?} with fault {:?}", probe.fault))?;
    check(regs.out_rax == 0 && regs.out_rdi == 7 && regs.out_rdx == 3, || format!("registers {regs:?}"))?;
    check(regs.out_rsi == 0x1122_3344_5566_7788, || format!("read {:#x} from its data page", regs.out_rsi))?;
    check(regs.out_rip == CODE + EXIT_WITH_DATA.len() as u64, || format!("syscall at {:#x}", regs.out_rip))?;
    Ok(format!("ring 3 read its page and exited through syscall at rip={:#x}", regs.out_rip))
}

/// `mov rax, [0xffff800000100000]` (kernel memory through the direct map), then `hlt`.
const READ_KERNEL: &[u8] = &[0x48, 0xa1, 0, 0, 0x10, 0, 0, 0x80, 0xff, 0xff, 0xf4];

pub fn user_fault() -> Outcome {
    let (exit, _, probe) = run(READ_KERNEL, 1, 2)?;
    let (vector, error, rip, cr2) = probe.fault.ok_or_else(|| format!("no fault, exit {exit:?}"))?;
    check(exit == Exit::Ended, || format!("exit {exit:?}"))?;
    check(vector == 14 && error & 0b101 == 0b101 && cr2 == 0xffff_8000_0010_0000 && rip == CODE, || {
        format!("vector {vector} error {error:#x} rip {rip:#x} cr2 {cr2:#x}")
    })?;
    Ok(format!("ring-3 read of kernel memory: #PF error {error:#x}, the run ended, the kernel did not"))
}

/// `mov rax, [0xc00000]` (OTHER, another key), then `hlt`.
const READ_OTHER_KEY: &[u8] = &[0x48, 0xa1, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0xf4];

pub fn protection_key() -> Outcome {
    if !usermode::pku_enabled() {
        return Ok("skipped: no PKU".into());
    }
    let (_, _, probe) = run(READ_OTHER_KEY, 1, 2)?;
    let (vector, error, _, cr2) = probe.fault.ok_or("no fault reading a page of another key")?;
    check(vector == 14 && error & (1 << 5) != 0 && cr2 == OTHER, || {
        format!("vector {vector} error {error:#x} cr2 {cr2:#x}")
    })?;
    // The same page under the running key is readable (then `hlt` faults with #GP).
    let (_, _, probe) = run(READ_OTHER_KEY, 1, 1)?;
    let (vector, ..) = probe.fault.ok_or("no fault at hlt")?;
    check(vector == 13, || format!("with its own key: vector {vector}, expected #GP at hlt"))?;
    Ok(format!("key 1 reading a key-2 page: #PF error {error:#x} (PK)"))
}
