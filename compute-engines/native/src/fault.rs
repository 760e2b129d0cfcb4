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
}
