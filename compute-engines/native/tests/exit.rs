//! The exit call's checks never panic and never accept output they should refuse, whatever a
//! hostile function leaves in its registers and memory.

use engine::{Limits, TimeBudget};
use native::exit::{ExitCall, exit_outcome};
use pappus_sdk::abi::native as abi;
use proptest::prelude::*;

const START: u64 = 0x2_0000_0000;

fn read(memory: &[u8], addr: u64, len: u64) -> Option<Vec<u8>> {
    let at = usize::try_from(addr.checked_sub(START)?).ok()?;
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    memory.get(at..end).map(<[u8]>::to_vec)
}

fn pointer() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), (0u64..4096).prop_map(|o| START + o), Just(0), Just(u64::MAX)]
}

proptest! {
    #[test]
    fn random_exits_are_judged_without_panicking(
        memory in proptest::collection::vec(any::<u8>(), 0..4096),
        number in prop_oneof![Just(abi::SYS_EXIT), any::<u64>()],
        status in prop_oneof![Just(abi::EXIT_DONE), Just(abi::EXIT_ABORT), any::<u64>()],
        pointer in pointer(),
        len in prop_oneof![0u64..100, any::<u64>()],
    ) {
        let exit = ExitCall { number, status, pointer, len, rip: 0 };
        let limits = Limits { max_output_items: 50, max_output_bytes: 1000, ..Limits::new(1 << 20, TimeBudget::from_millis(1)) };
        let outputs = ["a".to_string(), "b".to_string()];
        if let Ok(done) = exit_outcome(&exit, &outputs, &limits, 0, |a, l| read(&memory, a, l)) {
            prop_assert_eq!(number, abi::SYS_EXIT);
            prop_assert_eq!(status, abi::EXIT_DONE);
            prop_assert_eq!(done.outputs.len(), 2);
            let items: usize = done.outputs.iter().map(|s| s.items.len()).sum();
            let bytes: usize = done.outputs.iter().flat_map(|s| &s.items).map(|i| i.data.len()).sum();
            prop_assert!(items <= 50 && bytes <= 1000);
            prop_assert!(done.outputs.iter().flat_map(|s| &s.items).all(|i| i.name.len() <= 255));
        }
    }
}
