//! Loading a checked image: byte for byte what lands in the sandbox's image area, and the
//! refusals of `load_into`.

mod common;

use common::*;
use elf::{Image, PAGE_SIZE, Perms, Place, Problem, Relocation, Segment};

const BASE: u64 = 0x7f12_3450_0000;

/// What the image area must hold after loading the sample at `base`, computed independently
/// of the loader: zero everywhere, the three segments' file bytes, then the relocated words.
fn expected_memory(sample: &Sample, file: &[u8], base: u64) -> Vec<u8> {
    let mut memory = vec![0u8; SPAN as usize];
    let headers_len = RELA_AT as usize + sample.relas.len() * 24;
    memory[..headers_len].copy_from_slice(&file[..headers_len]);
    let code = CODE_AT as usize..CODE_AT as usize + sample.code.len();
    memory[code.clone()].copy_from_slice(&file[code]);
    let data = DATA_AT as usize..PAYLOAD_AT as usize + sample.payload.len();
    memory[data.clone()].copy_from_slice(&file[data]);
    for &(offset, _, addend) in &sample.relas {
        let at = offset as usize;
        memory[at..at + 8].copy_from_slice(&base.wrapping_add_signed(addend).to_le_bytes());
    }
    memory
}

#[test]
fn describes_the_sample() {
    let file = Sample::default().build();
    let image = Image::parse(&file).unwrap();
    let r = Perms { read: true, write: false, execute: false };
    let rx = Perms { read: true, write: false, execute: true };
    let rw = Perms { read: true, write: true, execute: false };
    assert_eq!(
        image.segments(),
        &[
            Segment { offset: 0, memory_size: 0x448, file_bytes: 0..0x448, perms: r },
            Segment { offset: 0x1000, memory_size: 0x40, file_bytes: 0x1000..0x1040, perms: rx },
            Segment { offset: 0x2000, memory_size: 0x1800, file_bytes: 0x2000..0x2200, perms: rw },
        ]
    );
    assert_eq!(image.segments()[0].pages(), 0..0x1000);
    assert_eq!(image.segments()[1].pages(), 0x1000..0x2000);
    assert_eq!(image.segments()[2].pages(), 0x2000..0x4000);
    assert_eq!(image.entry(), 0x1000);
    assert_eq!(image.span(), SPAN);
    assert_eq!(image.align(), PAGE_SIZE);
    assert_eq!(image.relro(), Some(0x2000..0x3000));
    assert_eq!(
        image.relocations(),
        &[
            Relocation { offset: 0x2100, addend: 0x1000 },
            Relocation { offset: 0x2108, addend: 0x2180 },
            Relocation { offset: 0x2200, addend: 0x3000 },
        ]
    );
}

#[test]
fn loads_byte_for_byte() {
    let sample = Sample::default();
    let file = sample.build();
    let image = Image::parse(&file).unwrap();
    // Dirty memory, larger than the span: the span is cleared, the rest is left alone.
    let mut memory = vec![0xa5u8; SPAN as usize + 0x1000];
    image.load_into(&file, &mut memory, BASE).unwrap();
    assert_eq!(memory[..SPAN as usize], expected_memory(&sample, &file, BASE)[..]);
    assert!(memory[SPAN as usize..].iter().all(|&b| b == 0xa5));
    // Spot checks, readable: the first relocated word points at the code.
    assert_eq!(u64::from_le_bytes(memory[0x2100..0x2108].try_into().unwrap()), BASE + 0x1000);
    // A relocation into bss.
    assert_eq!(u64::from_le_bytes(memory[0x2200..0x2208].try_into().unwrap()), BASE + 0x3000);
    // Gaps between segments, and bss, are zero.
    assert!(memory[0x448..0x1000].iter().all(|&b| b == 0));
    assert!(memory[0x1040..0x2000].iter().all(|&b| b == 0));
    assert!(memory[0x2208..SPAN as usize].iter().all(|&b| b == 0));
}

#[test]
fn negative_and_wrapping_addends() {
    let sample = Sample {
        relas: vec![
            (PAYLOAD_AT, info(R_X86_64_RELATIVE), -16),
            (PAYLOAD_AT + 8, info(R_X86_64_RELATIVE), i64::MAX),
            (PAYLOAD_AT + 16, info(R_X86_64_RELATIVE), i64::MIN),
        ],
        ..Sample::default()
    };
    let file = sample.build();
    let image = Image::parse(&file).unwrap();
    let mut memory = vec![0u8; SPAN as usize];
    image.load_into(&file, &mut memory, BASE).unwrap();
    assert_eq!(memory, expected_memory(&sample, &file, BASE));
    assert_eq!(u64::from_le_bytes(memory[0x2100..0x2108].try_into().unwrap()), BASE - 16);
}

#[test]
fn loads_at_base_zero_and_reloads_the_same() {
    let sample = Sample::default();
    let file = sample.build();
    let image = Image::parse(&file).unwrap();
    let mut memory = vec![0u8; SPAN as usize];
    image.load_into(&file, &mut memory, 0).unwrap();
    assert_eq!(memory, expected_memory(&sample, &file, 0));
    // Loading again over a used area gives the same bytes (the span is cleared first).
    memory.iter_mut().for_each(|b| *b = b.wrapping_add(1));
    image.load_into(&file, &mut memory, 0).unwrap();
    assert_eq!(memory, expected_memory(&sample, &file, 0));
}

#[test]
fn memory_too_small() {
    let file = Sample::default().build();
    let image = Image::parse(&file).unwrap();
    for len in [0, 0x1000, SPAN as usize - 1] {
        let mut memory = vec![0u8; len];
        let error = image.load_into(&file, &mut memory, BASE).unwrap_err();
        assert_eq!(error.place, Place::Load);
        assert_eq!(error.problem, Problem::MemoryTooSmall { needed: SPAN, len });
        assert!(memory.iter().all(|&b| b == 0), "nothing written on refusal");
    }
}

#[test]
fn base_must_be_aligned_and_fit() {
    let file = Sample::default().build();
    let image = Image::parse(&file).unwrap();
    let mut memory = vec![0u8; SPAN as usize];
    for base in [1, 0x800, BASE + 8] {
        let error = image.load_into(&file, &mut memory, base).unwrap_err();
        assert_eq!(error.problem, Problem::BaseMisaligned { base, align: PAGE_SIZE });
    }
    let base = u64::MAX - 0xfff;
    let error = image.load_into(&file, &mut memory, base).unwrap_err();
    assert_eq!(error.problem, Problem::BaseOverflow { base });
    assert_eq!(error.to_string(), format!("load: base {base:#x} plus the image span overflows"));
}

#[test]
fn large_alignment_is_required_of_the_base() {
    let mut writer = Sample::default().writer();
    writer.phdrs[PH_DATA].align = 0x20_0000;
    let file = writer.build();
    let image = Image::parse(&file).unwrap();
    let mut memory = vec![0u8; SPAN as usize];
    let error = image.load_into(&file, &mut memory, 0x1000).unwrap_err();
    assert_eq!(error.problem, Problem::BaseMisaligned { base: 0x1000, align: 0x20_0000 });
    image.load_into(&file, &mut memory, 0x40_0000).unwrap();
}

#[test]
fn another_file_is_refused() {
    let file = Sample::default().build();
    let image = Image::parse(&file).unwrap();
    let mut memory = vec![0u8; SPAN as usize];
    let error = image.load_into(&file[..file.len() - 1], &mut memory, BASE).unwrap_err();
    assert_eq!(error.problem, Problem::FileMismatch { expected: file.len(), found: file.len() - 1 });
}
