//! aarch64 images: `EM_AARCH64` with `R_AARCH64_RELATIVE`, accepted only where the loader is
//! asked for aarch64 ([`Machine::Aarch64`]), and each machine's relocation refused on the other.

mod common;

use common::*;
use elf::{Image, Limits, Machine, Place, Problem, R_AARCH64_RELATIVE};

const AARCH64: Limits = Limits { machine: Machine::Aarch64, max_span: 256 << 20, max_align: 2 << 20 };
const X86_64: Limits = Limits { machine: Machine::X86_64, max_span: 256 << 20, max_align: 2 << 20 };

/// The sample as an aarch64 image: `mov w0, #0; ret`, then `brk #0` padding; the same
/// relocations with the aarch64 type.
fn aarch64_sample() -> Sample {
    let mut code: Vec<u8> = [0x5280_0000u32, 0xd65f_03c0].iter().flat_map(|w| w.to_le_bytes()).collect();
    while code.len() < 0x40 {
        code.extend_from_slice(&0xd420_0000u32.to_le_bytes());
    }
    let mut sample = Sample { code, ..Sample::default() };
    for rela in &mut sample.relas {
        rela.1 = u64::from(R_AARCH64_RELATIVE);
    }
    sample
}

fn aarch64_writer() -> ElfWriter {
    let mut writer = aarch64_sample().writer();
    writer.machine = 183;
    writer
}

#[test]
fn an_aarch64_image_loads_as_aarch64_only() {
    let file = aarch64_writer().build();
    let image = Image::parse_with(&file, &AARCH64).unwrap();
    assert_eq!(image.relocations().len(), 3);
    let mut area = vec![0u8; image.span() as usize];
    image.load_into(&file, &mut area, 0x1_0000_0040_0000).unwrap();
    let at = PAYLOAD_AT as usize;
    assert_eq!(u64::from_le_bytes(area[at..at + 8].try_into().unwrap()), 0x1_0000_0040_0000 + CODE_AT);
    let error = Image::parse_with(&file, &X86_64).unwrap_err();
    assert_eq!(error.place, Place::HeaderField("e_machine"));
    assert!(error.to_string().contains("62 (EM_X86_64)"), "{error}");
}

#[test]
fn each_machine_refuses_the_other_machines_relocation() {
    // An aarch64 header with x86_64 relocations.
    let mut writer = Sample::default().writer();
    writer.machine = 183;
    let error = Image::parse_with(&writer.build(), &AARCH64).unwrap_err();
    assert_eq!(error.problem, Problem::UnsupportedRelocation { r_type: R_X86_64_RELATIVE });
    // An x86_64 header with aarch64 relocations.
    let mut writer = aarch64_sample().writer();
    writer.machine = 62;
    let error = Image::parse_with(&writer.build(), &X86_64).unwrap_err();
    assert_eq!(error.problem, Problem::UnsupportedRelocation { r_type: R_AARCH64_RELATIVE });
    assert!(error.to_string().contains("R_AARCH64_RELATIVE"), "{error}");
    // An x86_64 image asked for as aarch64.
    let error = Image::parse_with(&Sample::default().build(), &AARCH64).unwrap_err();
    assert!(error.to_string().contains("183 (EM_AARCH64)"), "{error}");
}

#[test]
fn aarch64_code_is_not_scanned_for_x86_instructions() {
    // WRPKRU's bytes (0f 01 ef) inside aarch64 code mean nothing there.
    let mut sample = aarch64_sample();
    sample.code[8..11].copy_from_slice(&[0x0f, 0x01, 0xef]);
    let mut writer = sample.writer();
    writer.machine = 183;
    Image::parse_with(&writer.build(), &AARCH64).unwrap();
}

#[test]
fn the_default_machine_is_the_build_target() {
    assert_eq!(Limits::default().machine, Machine::NATIVE);
    assert_eq!(Machine::NATIVE.name(), std::env::consts::ARCH);
}
