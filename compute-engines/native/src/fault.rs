//! What a fault from ring 3 means for the sandbox that caused it.

use alloc::format;
use alloc::string::String;

use engine::{EngineError, Trap, TrapKind};

use crate::exit::Redacted;
use crate::layout::Layout;

/// A fault as the arch's trap handler saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    /// The faulting address (page faults; else 0).
    pub cr2: u64,
}

/// What the arch does about a fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Map a zeroed writable page at this (page-aligned) address, heap or stack on first touch,
    /// and resume; [`no_frame`] if the node has none.
    MapPage(u64),
    /// End the run with this error.
    End(EngineError),
}

const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_FETCH: u64 = 16;
const PF_PKEY: u64 = 32;

/// Decides what `fault` means for a sandbox at `layout` whose heap ends at `heap_end`, with
/// `pages_left` pages of its `memory_limit` not yet touched. `vector_name` is the arch's name of
/// the vector. Messages name the vector, the instruction pointer and the address, with kernel
/// addresses redacted ([`Redacted`]).
pub fn classify_fault(
    layout: Layout,
    heap_end: u64,
    pages_left: u64,
    memory_limit: u64,
    fault: Fault,
    vector_name: &str,
) -> FaultAction {
    let Fault { vector, error_code, rip, cr2 } = fault;
    let page = cr2 & !0xfff;
    if vector == 14 && error_code & (PF_PRESENT | PF_FETCH) == 0 && layout.lazy(heap_end, page) {
        if pages_left == 0 {
            return FaultAction::End(EngineError::OutOfMemory {
                limit_bytes: memory_limit,
                detail: format!("touching {cr2:#x} at rip={} needs a page beyond the limit", Redacted(rip)),
            });
        }
        return FaultAction::MapPage(page);
    }
    let (kind, what) = if vector == 14 && layout.guard().contains(&cr2) {
        (TrapKind::StackOverflow, format!("the stack ran into its guard at {cr2:#x}"))
    } else if vector == 14 {
        (kind_of(vector), format!("address {}: {}", Redacted(cr2), pf_detail(error_code)))
    } else {
        (kind_of(vector), format!("error code {error_code:#x}"))
    };
    let message = format!("vector {vector} {vector_name} at rip={}, {what}", Redacted(rip));
    FaultAction::End(Trap::new(kind, message).into())
}

/// The error when the node has no frame for a sandbox's first touch of `cr2`.
pub fn no_frame(memory_limit: u64, cr2: u64) -> EngineError {
    EngineError::OutOfMemory { limit_bytes: memory_limit, detail: format!("the node has no free frame for {cr2:#x}") }
}

fn kind_of(vector: u64) -> TrapKind {
    match vector {
        0 => TrapKind::IntegerDivisionByZero,
        6 | 13 => TrapKind::InvalidInstruction,
        14 => TrapKind::MemoryOutOfBounds,
        _ => TrapKind::Other,
    }
}

/// A page fault's error code in words (SDM Vol. 3, 4.7).
fn pf_detail(error: u64) -> String {
    let mut s = String::from(if error & PF_PRESENT != 0 { "protection violation" } else { "page not present" });
    s.push_str(if error & PF_FETCH != 0 {
        ", instruction fetch"
    } else if error & PF_WRITE != 0 {
        ", write"
    } else {
        ", read"
    });
    if error & PF_PKEY != 0 {
        s.push_str(", protection key");
    }
    s
}

/// ESR_EL1 exception classes (Arm ARM D17.2.37) the aarch64 classification names.
pub mod esr {
    pub const UNKNOWN: u64 = 0x00;
    pub const WFX: u64 = 0x01;
    pub const ILLEGAL_STATE: u64 = 0x0e;
    pub const SVC64: u64 = 0x15;
    pub const HVC64: u64 = 0x16;
    pub const SMC64: u64 = 0x17;
    pub const SYS64: u64 = 0x18;
    pub const IABT_LOWER: u64 = 0x20;
    pub const PC_ALIGN: u64 = 0x22;
    pub const DABT_LOWER: u64 = 0x24;
    pub const SP_ALIGN: u64 = 0x26;
    pub const FP_EXC64: u64 = 0x2c;
    pub const SERROR: u64 = 0x2f;
    pub const BRK64: u64 = 0x3c;
    /// ISS: write not read (data aborts).
    pub const WNR: u64 = 1 << 6;
    /// ISS: FAR not valid (aborts).
    pub const FNV: u64 = 1 << 10;
}

/// An ESR_EL1 exception class in words.
pub fn esr_class_name(ec: u64) -> &'static str {
    match ec {
        esr::UNKNOWN => "undefined instruction",
        esr::WFX => "trapped WFI/WFE",
        0x07 => "trapped SIMD/FP access",
        esr::ILLEGAL_STATE => "illegal execution state",
        esr::SVC64 => "SVC",
        esr::HVC64 => "HVC",
        esr::SMC64 => "SMC",
        esr::SYS64 => "trapped MSR/MRS/system instruction",
        0x19 => "trapped SVE access",
        0x1c => "pointer authentication failure",
        esr::IABT_LOWER => "instruction abort",
        esr::PC_ALIGN => "PC alignment fault",
        esr::DABT_LOWER => "data abort",
        esr::SP_ALIGN => "SP alignment fault",
        esr::FP_EXC64 => "floating-point exception",
        esr::SERROR => "SError",
        0x30 | 0x32 | 0x34 => "debug exception",
        esr::BRK64 => "BRK instruction",
        0x29 => "trapped capability instruction",
        0x2a => "trapped capability system register access",
        _ => "exception",
    }
}

/// An abort's fault status code (ISS bits 5:0) in words.
fn abort_status(iss: u64) -> String {
    let code = iss & 0x3f;
    let level = code & 3;
    match code {
        0x00..=0x03 => format!("address size fault at level {level}"),
        0x04..=0x07 => format!("translation fault at level {level}"),
        0x08..=0x0b => format!("access flag fault at level {level}"),
        0x0c..=0x0f => format!("permission fault at level {level}"),
        0x21 => String::from("alignment fault"),
        _ => match cheri::fault::CapFaultKind::from_status(code) {
            Some(kind) => String::from(kind.name()),
            None => format!("fault status {code:#x}"),
        },
    }
}

/// Decides what an exception from EL0 (aarch64) means, as [`classify_fault`] does for x86_64:
/// `fault.vector` is ESR_EL1.EC, `error_code` the whole ESR_EL1, `rip` ELR_EL1, `cr2` FAR_EL1
/// (meaningful for aborts and alignment faults). A data abort that is a translation fault in
/// the heap or stack maps a page; in the stack guard it is a stack overflow; any other abort
/// or alignment fault is out of bounds; undefined, trapped system and exception-generating
/// instructions (`hvc`, `smc`, `brk`, `svc` other than the exit call's) are invalid
/// instructions; the rest is `other`. Messages name the class, ESR, PC and address, with
/// kernel addresses redacted.
pub fn classify_el0_fault(
    layout: Layout,
    heap_end: u64,
    pages_left: u64,
    memory_limit: u64,
    fault: Fault,
) -> FaultAction {
    let Fault { vector: ec, error_code: esr_value, rip: pc, cr2: far } = fault;
    let iss = esr_value & 0x01ff_ffff;
    let abort = ec == esr::DABT_LOWER || ec == esr::IABT_LOWER;
    let far_valid = abort && iss & esr::FNV == 0 || ec == esr::PC_ALIGN;
    let translation = abort && (iss & 0x3c) == 0x04;
    let page = far & !0xfff;
    if ec == esr::DABT_LOWER && translation && far_valid && layout.lazy(heap_end, page) {
        if pages_left == 0 {
            return FaultAction::End(EngineError::OutOfMemory {
                limit_bytes: memory_limit,
                detail: format!("touching {far:#x} at pc={} needs a page beyond the limit", Redacted(pc)),
            });
        }
        return FaultAction::MapPage(page);
    }
    let (kind, what) = if abort && far_valid && layout.guard().contains(&far) {
        (TrapKind::StackOverflow, format!("the stack ran into its guard at {far:#x}"))
    } else if abort {
        let access = if ec == esr::IABT_LOWER {
            "instruction fetch"
        } else if iss & esr::WNR != 0 {
            "write"
        } else {
            "read"
        };
        let address = if far_valid { format!("address {}", Redacted(far)) } else { String::from("address unknown") };
        (TrapKind::MemoryOutOfBounds, format!("{address}: {}, {access}", abort_status(iss)))
    } else if ec == esr::PC_ALIGN {
        (TrapKind::MemoryOutOfBounds, format!("pc {} is not 4-byte aligned", Redacted(far)))
    } else if ec == esr::SP_ALIGN {
        (TrapKind::MemoryOutOfBounds, String::from("sp is not 16-byte aligned"))
    } else {
        let kind = match ec {
            esr::UNKNOWN
            | esr::WFX
            | esr::ILLEGAL_STATE
            | esr::SVC64
            | esr::HVC64
            | esr::SMC64
            | esr::SYS64
            | esr::BRK64 => TrapKind::InvalidInstruction,
            _ => TrapKind::Other,
        };
        (kind, format!("ISS {iss:#x}"))
    };
    let message =
        format!("ESR class {ec:#04x} {} (ESR {esr_value:#x}) at pc={}, {what}", esr_class_name(ec), Redacted(pc));
    FaultAction::End(Trap::new(kind, message).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 4 << 20;

    fn classify(layout: Layout, pages_left: u64, fault: Fault) -> FaultAction {
        classify_fault(layout, layout.heap() + (1 << 20), pages_left, LIMIT, fault, "page fault (#PF)")
    }

    fn message(action: FaultAction) -> (TrapKind, String) {
        match action {
            FaultAction::End(EngineError::Trap(t)) => (t.kind, t.message),
            other => panic!("not a trap: {other:?}"),
        }
    }

    #[test]
    fn first_touch_of_heap_and_stack_maps_a_page() {
        let l = Layout::slot(2);
        let heap = Fault { vector: 14, error_code: PF_WRITE, rip: l.image(), cr2: l.heap() + 0x1234 };
        assert_eq!(classify(l, 5, heap), FaultAction::MapPage(l.heap() + 0x1000));
        let stack = Fault { cr2: l.stack_top() - 8, error_code: 0, ..heap };
        assert_eq!(classify(l, 5, stack), FaultAction::MapPage(l.stack_top() - 4096));
        // No page left: out of memory, not a map.
        assert!(matches!(classify(l, 0, heap), FaultAction::End(EngineError::OutOfMemory { .. })));
        // A present page (a protection fault) or an instruction fetch there is never mapped.
        for error_code in [PF_PRESENT | PF_WRITE, PF_FETCH] {
            assert!(matches!(classify(l, 5, Fault { error_code, ..heap }), FaultAction::End(_)));
        }
    }

    #[test]
    fn the_guard_is_a_stack_overflow() {
        let l = Layout::own();
        let f = Fault { vector: 14, error_code: PF_WRITE, rip: l.image(), cr2: l.stack_bottom() - 8 };
        let (kind, text) = message(classify(l, 5, f));
        assert_eq!(kind, TrapKind::StackOverflow);
        assert!(text.contains("guard"), "{text}");
    }

    #[test]
    fn kernel_addresses_never_reach_the_message() {
        let l = Layout::own();
        let f = Fault {
            vector: 14,
            error_code: PF_PRESENT | PF_FETCH,
            rip: 0xffff_ffff_8020_0000,
            cr2: 0xffff_ffff_8020_0000,
        };
        let (kind, text) = message(classify(l, 5, f));
        assert_eq!(kind, TrapKind::MemoryOutOfBounds);
        assert_eq!(
            text,
            "vector 14 page fault (#PF) at rip=kernel address, address kernel address: protection violation, instruction fetch"
        );
        let user = Fault { vector: 14, error_code: PF_PKEY, rip: l.image() + 0x10, cr2: 0x10_0000_0000 };
        let (_, text) = message(classify(l, 5, user));
        assert!(
            text.contains("rip=0x400010") && text.contains("address 0x1000000000") && text.contains("protection key"),
            "{text}"
        );
        let gp = Fault { vector: 13, error_code: 0, rip: 0xffff_8000_0000_0000, cr2: 0 };
        let (kind, text) = message(classify_fault(l, l.heap(), 0, LIMIT, gp, "general protection (#GP)"));
        assert_eq!(kind, TrapKind::InvalidInstruction);
        assert!(!text.contains("0xffff"), "{text}");
    }

    fn arm(ec: u64, iss: u64, pc: u64, far: u64) -> Fault {
        Fault { vector: ec, error_code: (ec << 26) | (1 << 25) | iss, rip: pc, cr2: far }
    }

    fn arm_classify(layout: Layout, pages_left: u64, fault: Fault) -> FaultAction {
        classify_el0_fault(layout, layout.heap() + (1 << 20), pages_left, LIMIT, fault)
    }

    #[test]
    fn el0_translation_faults_in_heap_and_stack_map_a_page() {
        let l = Layout::own_at(crate::layout::AARCH64_OWN_BASE);
        // DFSC 0b000111: translation fault at level 3; a write (WnR).
        let heap = arm(esr::DABT_LOWER, 0x07 | esr::WNR, l.image(), l.heap() + 0x1234);
        assert_eq!(arm_classify(l, 5, heap), FaultAction::MapPage(l.heap() + 0x1000));
        let stack = arm(esr::DABT_LOWER, 0x06, l.image(), l.stack_top() - 16);
        assert_eq!(arm_classify(l, 5, stack), FaultAction::MapPage(l.stack_top() - 4096));
        assert!(matches!(arm_classify(l, 0, heap), FaultAction::End(EngineError::OutOfMemory { .. })));
        // A permission fault there, an instruction fetch there, or a FAR the CPU says is not
        // valid: never a map.
        for f in [
            arm(esr::DABT_LOWER, 0x0f | esr::WNR, l.image(), l.heap()),
            arm(esr::IABT_LOWER, 0x07, l.heap(), l.heap()),
            arm(esr::DABT_LOWER, 0x07 | esr::FNV, l.image(), l.heap()),
        ] {
            let (kind, text) = message(arm_classify(l, 5, f));
            assert_eq!(kind, TrapKind::MemoryOutOfBounds, "{text}");
        }
    }

    #[test]
    fn el0_classes_have_named_errors() {
        let l = Layout::own_at(crate::layout::AARCH64_OWN_BASE);
        let pc = l.image() + 0x40;
        let guard = arm(esr::DABT_LOWER, 0x07 | esr::WNR, pc, l.stack_bottom() - 16);
        assert_eq!(message(arm_classify(l, 5, guard)).0, TrapKind::StackOverflow);
        let cases = [
            (esr::UNKNOWN, TrapKind::InvalidInstruction),
            (esr::SYS64, TrapKind::InvalidInstruction),
            (esr::WFX, TrapKind::InvalidInstruction),
            (esr::BRK64, TrapKind::InvalidInstruction),
            (esr::SVC64, TrapKind::InvalidInstruction),
            (esr::ILLEGAL_STATE, TrapKind::InvalidInstruction),
            (esr::SP_ALIGN, TrapKind::MemoryOutOfBounds),
            (esr::PC_ALIGN, TrapKind::MemoryOutOfBounds),
            (esr::SERROR, TrapKind::Other),
            (esr::FP_EXC64, TrapKind::Other),
        ];
        for (ec, want) in cases {
            let (kind, text) = message(arm_classify(l, 5, arm(ec, 0, pc, l.image() + 2)));
            assert_eq!(kind, want, "{text}");
            assert!(text.starts_with(&format!("ESR class {ec:#04x} {}", esr_class_name(ec))), "{text}");
        }
        let (kind, text) = message(arm_classify(l, 5, arm(esr::DABT_LOWER, 0x21, pc, l.heap() + 3)));
        assert_eq!(kind, TrapKind::MemoryOutOfBounds);
        assert!(text.contains("alignment fault, read"), "{text}");
    }

    #[test]
    fn el0_capability_faults_are_named_and_never_map() {
        // The `cheri` engine's slots: Morello's capability fault status codes (DFSC/IFSC 0x28..0x2c)
        // end the run, named, even in the heap or stack (where a translation fault would map).
        let l = Layout::cheri_slot(3);
        for (code, name) in [
            (0x28, "capability tag fault"),
            (0x29, "capability seal fault"),
            (0x2a, "capability bounds fault"),
            (0x2b, "capability permission fault"),
            (0x2c, "capability page permission fault"),
        ] {
            for (ec, far, access) in [
                (esr::DABT_LOWER, l.heap() + 8, "read"),
                (esr::DABT_LOWER, l.stack_top() - 8, "read"),
                (esr::IABT_LOWER, l.image() + 0x1000, "instruction fetch"),
            ] {
                let (kind, text) = message(arm_classify(l, 5, arm(ec, code, l.image(), far)));
                assert_eq!(kind, TrapKind::MemoryOutOfBounds, "{text}");
                assert!(text.contains(&format!("{name}, {access}")), "{text}");
            }
        }
        let (_, text) = message(arm_classify(l, 5, arm(0x2a, 0, l.image(), 0)));
        assert!(text.contains("trapped capability system register access"), "{text}");
    }

    #[test]
    fn el0_messages_redact_kernel_addresses() {
        let l = Layout::own_at(crate::layout::AARCH64_OWN_BASE);
        // A read of the kernel's identity map (EL1-only: a permission fault at level 3).
        let f = arm(esr::DABT_LOWER, 0x0f, l.image() + 8, 0x4020_0000);
        let action = arm_classify(l, 5, f);
        let FaultAction::End(EngineError::Trap(t)) = action else { panic!("not a trap") };
        assert_eq!(t.kind, TrapKind::MemoryOutOfBounds);
        let mut shown = String::new();
        Redacted(0x4020_0000).write_for(&crate::exit::AARCH64_USER, &mut shown).unwrap();
        assert_eq!(shown, "kernel address", "below the sandboxes' entry is the kernel's");
        shown.clear();
        Redacted(l.heap()).write_for(&crate::exit::AARCH64_USER, &mut shown).unwrap();
        assert_eq!(shown, format!("{:#x}", l.heap()));
        assert!(t.message.contains("permission fault at level 3, read"), "{}", t.message);
    }
}
