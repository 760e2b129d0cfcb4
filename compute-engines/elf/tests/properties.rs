//! Property tests: no input makes the loader panic, every image it accepts loads inside its
//! span with code that is exactly the scanned bytes, and the scan agrees with a naive one.

mod common;

use common::*;
use elf::{ForbiddenInstruction, Image, Place, Problem, scan_executable};
use proptest::prelude::*;

/// A function image built by rustc (see `real_function.rs`).
const REAL: &[u8] = include_bytes!("fixtures/tiny_fn.elf");

/// Everything an accepted image promises, checked by loading it.
fn check_accepted(file: &[u8], image: &Image) {
    let limits = elf::Limits::default();
    assert!(image.span() <= limits.max_span);
    assert!(image.align().is_power_of_two() && image.align() >= elf::PAGE_SIZE);
    let segments = image.segments();
    assert!(!segments.is_empty());
    for pair in segments.windows(2) {
        assert!(pair[0].pages().end <= pair[1].pages().start, "segments share a page: {pair:?}");
    }
    for segment in segments {
        assert!(!(segment.perms.write && segment.perms.execute), "W^X: {segment:?}");
        assert!(segment.file_size() <= segment.memory_size);
        assert!(segment.pages().end <= image.span());
    }
    let entry = image.entry();
    assert!(segments.iter().any(|s| s.perms.execute && s.offset <= entry && entry < s.offset + s.memory_size));
    for relocation in image.relocations() {
        assert!(
            segments.iter().any(|s| s.perms.write
                && s.offset <= relocation.offset
                && relocation.offset + 8 <= s.offset + s.memory_size),
            "{relocation:?}"
        );
    }

    // Exactly `span` bytes: any write past them would have to fail, and must not happen.
    let mut memory = vec![0x5au8; image.span() as usize];
    let base = image.align() * 0x1000;
    image.load_into(file, &mut memory, base).expect("an accepted image loads");
    for segment in segments.iter().filter(|s| s.perms.execute) {
        let pages = segment.pages();
        let mapped = &memory[pages.start as usize..pages.end as usize];
        // The executable pages hold the segment's file bytes and zeros, nothing else: the bytes
        // the scan looked at, untouched by relocation.
        let mut expected = vec![0u8; mapped.len()];
        let at = (segment.offset - pages.start) as usize;
        expected[at..at + segment.file_bytes.len()].copy_from_slice(&file[segment.file_bytes.clone()]);
        assert_eq!(mapped, &expected[..]);
        assert_eq!(scan_executable(mapped), Ok(()));
    }
}

fn parse_and_check(file: &[u8]) {
    match Image::parse(file) {
        Ok(image) => check_accepted(file, &image),
        Err(error) => {
            // Every refusal formats.
            let _ = error.to_string();
        }
    }
}

/// Bytes biased toward the ones that make forbidden patterns.
fn code_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        2 => Just(0x0f),
        1 => prop::sample::select(vec![0x01, 0xef, 0xae, 0xc7, 0x2e, 0x1f, 0x6d, 0xe8, 0x00]),
    ]
}

/// A value for a mutated header word: boundaries and offsets that land near real structures.
fn interesting_word() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        prop::sample::select(vec![
            0,
            1,
            2,
            3,
            7,
            8,
            24,
            56,
            64,
            0x400,
            0xfff,
            0x1000,
            0x1001,
            0x2000,
            0x2200,
            0x3800,
            0x4000,
            0x20_0000,
            0x6474_e551,
            u64::MAX,
            u64::MAX - 7,
            1 << 63,
        ]),
        0u64..0x5000,
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Byte(usize, u8),
    Word(usize, u64),
    Truncate(usize),
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    // Headers and program headers (0..400), the relocation table, the dynamic section, anywhere.
    let hot = prop_oneof![0usize..400, 0x400usize..0x448, 0x2000usize..0x2060, 0..len];
    prop_oneof![
        4 => (hot.clone(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte(at, value)),
        4 => (hot, interesting_word()).prop_map(|(at, value)| Mutation::Word(at & !7, value)),
        1 => (0..len).prop_map(Mutation::Truncate),
    ]
}

fn apply(file: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations {
        match *mutation {
            Mutation::Byte(at, value) => {
                if let Some(byte) = file.get_mut(at) {
                    *byte = value;
                }
            }
            Mutation::Word(at, value) => {
                if let Some(word) = file.get_mut(at..at + 8) {
                    word.copy_from_slice(&value.to_le_bytes());
                }
            }
            Mutation::Truncate(len) => file.truncate(len),
        }
    }
}

/// A sample with code from `code` and random relocations: all valid ones, or mostly RELATIVE
/// with targets around the segments.
fn random_sample(code: impl Strategy<Value = u8>, valid_relocations: bool) -> impl Strategy<Value = Sample> {
    let relative = u64::from(R_X86_64_RELATIVE);
    let rela = if valid_relocations {
        (0x2000u64..0x37f9, Just(relative).boxed(), any::<i64>()).boxed()
    } else {
        (
            prop_oneof![6 => 0x2000u64..0x3900, 1 => 0u64..0x5000, 1 => any::<u64>()],
            prop_oneof![30 => Just(relative), 1 => any::<u64>()].boxed(),
            any::<i64>(),
        )
            .boxed()
    };
    (prop::collection::vec(rela, 0..12), prop::collection::vec(code, 1..0x200)).prop_map(|(relas, code)| Sample {
        relas,
        code,
        ..Sample::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse_and_check(&bytes);
    }

    #[test]
    fn valid_header_then_noise_never_panics(noise in prop::collection::vec(any::<u8>(), 0..1024), phnum in 0u16..20) {
        let mut file = Sample::default().build()[..64].to_vec();
        file[56..58].copy_from_slice(&phnum.to_le_bytes());
        file.extend_from_slice(&noise);
        parse_and_check(&file);
    }

    #[test]
    fn mutated_images_never_panic_and_load_in_bounds(
        sample in random_sample(any::<u8>(), true),
        mutations in prop::collection::vec(mutation(0x2200), 1..4),
    ) {
        let mut file = sample.build();
        apply(&mut file, &mutations);
        parse_and_check(&file);
    }

    #[test]
    fn mutated_real_image_never_panics_and_loads_in_bounds(
        mutations in prop::collection::vec(mutation(REAL.len()), 1..4),
    ) {
        let mut file = REAL.to_vec();
        apply(&mut file, &mutations);
        parse_and_check(&file);
    }

    #[test]
    fn random_relocations_are_checked(sample in random_sample(code_byte(), false)) {
        let file = sample.build();
        let result = Image::parse(&file);
        let first_bad_reloc = sample.relas.iter().position(|&(offset, info, _)| {
            info as u32 != R_X86_64_RELATIVE || !(0x2000..=0x3800 - 8).contains(&offset)
        });
        let first_bad_code = naive_forbidden(&[&sample.code[..], &[0, 0]].concat());
        match (first_bad_reloc, first_bad_code) {
            (Some(index), _) => {
                let error = result.unwrap_err();
                prop_assert!(matches!(error.place, Place::Relocation { index: i, .. } if i == index), "{}", error);
            }
            (None, Some(at)) => {
                prop_assert_eq!(result.unwrap_err().place, Place::Code(CODE_AT + at as u64));
            }
            (None, None) => check_accepted(&file, &result.unwrap()),
        }
    }

    #[test]
    fn scan_agrees_with_naive(bytes in prop::collection::vec(code_byte(), 0..512)) {
        let expected = naive_forbidden(&bytes).map(|at| at as u64);
        prop_assert_eq!(scan_executable(&bytes).err().map(|f| f.offset), expected);
    }

    #[test]
    fn inserted_pattern_is_found(
        mut bytes in prop::collection::vec(any::<u8>(), 0..256),
        at in any::<prop::sample::Index>(),
        pattern in prop::sample::select(vec![
            (vec![0x0f, 0x01, 0xef], ForbiddenInstruction::Wrpkru),
            (vec![0x0f, 0xae, 0x28], ForbiddenInstruction::Xrstor),
            (vec![0x0f, 0xae, 0xaf], ForbiddenInstruction::Xrstor),
            (vec![0x0f, 0xc7, 0x5b], ForbiddenInstruction::Xrstors),
        ]),
    ) {
        let at = at.index(bytes.len() + 1);
        bytes.splice(at..at, pattern.0.iter().copied());
        let found = scan_executable(&bytes).unwrap_err();
        prop_assert!(found.offset <= at as u64);
        if found.offset == at as u64 {
            prop_assert_eq!(found.what, pattern.1);
        }
    }

    /// Two executable segments whose pages may touch: the image scan must see the bytes as they
    /// sit in memory, across the boundary, with zero fill where the file has none.
    #[test]
    fn scan_across_segments_agrees_with_memory(
        first in prop::collection::vec(code_byte(), 1..64),
        first_len in prop_oneof![Just(0x1000usize), 1usize..0x1000],
        second in prop::collection::vec(code_byte(), 1..64),
        second_page in prop_oneof![Just(0x2000u64), Just(0x3000u64)],
    ) {
        // The first segment's tail is `first` (padded in front with NOPs to `first_len`).
        let mut a = vec![0x90u8; first_len.max(first.len())];
        let n = a.len();
        a[n - first.len()..].copy_from_slice(&first);
        let a_len = a.len() as u64;
        let a_pages_end = (0x1000 + a_len).div_ceil(0x1000) * 0x1000;
        prop_assume!(a_pages_end <= second_page);
        let mut writer = ElfWriter { entry: 0x1000, ..ElfWriter::default() };
        writer.phdrs = vec![
            Phdr::load(R, 0, 0, 0x200, 0x200),
            Phdr::load(R | X, 0x1000, 0x1000, a_len, a_len),
            Phdr::load(R | X, second_page, second_page, second.len() as u64, second.len() as u64),
        ];
        writer.blobs = vec![(0x1000, a.clone()), (second_page as usize, second.clone())];
        let file = writer.build();

        // Memory from 0x1000: a, zeros to its page end; then, if adjacent, b and zeros.
        let mut first_run = a.clone();
        first_run.resize((a_pages_end - 0x1000) as usize, 0);
        let mut second_run = second.clone();
        second_run.resize(0x1000, 0);
        let expected = if a_pages_end == second_page {
            naive_forbidden(&[first_run, second_run].concat()).map(|at| 0x1000 + at as u64)
        } else {
            naive_forbidden(&first_run)
                .map(|at| 0x1000 + at as u64)
                .or_else(|| naive_forbidden(&second_run).map(|at| second_page + at as u64))
        };
        match Image::parse(&file) {
            Ok(image) => {
                prop_assert_eq!(expected, None);
                check_accepted(&file, &image);
            }
            Err(error) => {
                prop_assert!(matches!(error.problem, Problem::Forbidden(_)), "{}", error);
                prop_assert_eq!(Some(error.place), expected.map(Place::Code));
            }
        }
    }
}
