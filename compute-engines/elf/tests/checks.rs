//! Every refusal of `Image::parse`, one broken field at a time, with the message it gives.

mod common;

use common::*;
use elf::{ElfError, ForbiddenInstruction, Image, Limits, Place, Problem};

fn refused(file: &[u8]) -> ElfError {
    match Image::parse(file) {
        Ok(image) => panic!("accepted: {image:?}"),
        Err(error) => error,
    }
}

fn refused_writer(writer: &ElfWriter) -> ElfError {
    refused(&writer.build())
}

/// The sample with one program header changed.
fn with_phdr(index: usize, change: impl FnOnce(&mut Phdr)) -> ElfWriter {
    let mut writer = Sample::default().writer();
    change(&mut writer.phdrs[index]);
    writer
}

fn with_dynamic(entries: Vec<(i64, u64)>) -> Vec<u8> {
    Sample { dynamic: Some(entries), ..Sample::default() }.build()
}

fn with_relas(relas: Vec<(u64, u64, i64)>) -> Vec<u8> {
    Sample { relas, ..Sample::default() }.build()
}

#[test]
fn sample_is_valid() {
    let image = Image::parse(&Sample::default().build()).unwrap();
    assert_eq!(image.segments().len(), 3);
    assert_eq!(image.relocations().len(), 3);
}

// ---- ELF header ----

#[test]
fn too_short() {
    for len in [0, 1, 4, 63] {
        let file = Sample::default().build();
        let error = refused(&file[..len]);
        assert_eq!(error.problem, Problem::TooShort { len });
        assert_eq!(error.to_string(), format!("ELF header: file is {len} bytes, shorter than the 64-byte ELF header"));
    }
}

#[test]
fn bad_magic() {
    let mut writer = Sample::default().writer();
    writer.ident[1] = b'X';
    assert_eq!(refused_writer(&writer).problem, Problem::BadMagic);
    let mut file = vec![0u8; 100];
    file[..4].copy_from_slice(b"\0asm");
    assert_eq!(refused(&file).problem, Problem::BadMagic);
}

fn header_field(error: &ElfError) -> &'static str {
    match error.place {
        Place::HeaderField(field) => field,
        other => panic!("not a header field: {other:?} ({error})"),
    }
}

#[test]
fn ident_fields() {
    for (index, value, field) in
        [(4, 1, "EI_CLASS"), (5, 2, "EI_DATA"), (6, 0, "EI_VERSION"), (7, 9, "EI_OSABI"), (8, 1, "EI_ABIVERSION")]
    {
        let mut writer = Sample::default().writer();
        writer.ident[index] = value;
        let error = refused_writer(&writer);
        assert_eq!(header_field(&error), field, "{error}");
        assert!(matches!(error.problem, Problem::Unexpected { found, .. } if found == u64::from(value)), "{error}");
    }
    let error = {
        let mut writer = Sample::default().writer();
        writer.ident[4] = 1;
        refused_writer(&writer)
    };
    assert_eq!(error.to_string(), "ELF header EI_CLASS: EI_CLASS is 0x1, expected 2 (ELFCLASS64)");
}

#[test]
fn gnu_os_abi_is_accepted() {
    let mut writer = Sample::default().writer();
    writer.ident[7] = 3;
    Image::parse(&writer.build()).unwrap();
}

#[test]
fn fixed_address_executable_is_refused_with_a_reason() {
    let mut writer = Sample::default().writer();
    writer.e_type = 2;
    let error = refused_writer(&writer);
    assert_eq!(error.place, Place::HeaderField("e_type"));
    assert_eq!(error.problem, Problem::FixedAddressExecutable);
    let message = error.to_string();
    assert!(
        message.contains("ET_EXEC") && message.contains("per-sandbox base") && message.contains("pie"),
        "{message}"
    );
}

#[test]
fn other_header_fields() {
    type Change = fn(&mut ElfWriter);
    let cases: [(Change, &str, u64); 9] = [
        (|w| w.e_type = 1, "e_type", 1),
        (|w| w.machine = 3, "e_machine", 3),
        (|w| w.machine = 183, "e_machine", 183),
        (|w| w.version = 0, "e_version", 0),
        (|w| w.flags = 1, "e_flags", 1),
        (|w| w.ehsize = 52, "e_ehsize", 52),
        (|w| w.phentsize = 32, "e_phentsize", 32),
        (|w| w.phnum = Some(0), "e_phnum", 0),
        (|w| w.phnum = Some(0xffff), "e_phnum", 0xffff),
    ];
    for (change, field, value) in cases {
        let mut writer = Sample::default().writer();
        change(&mut writer);
        let error = refused_writer(&writer);
        assert_eq!(header_field(&error), field, "{error}");
        assert!(matches!(error.problem, Problem::Unexpected { found, .. } if found == value), "{error}");
    }
}

#[test]
fn program_header_table_outside_file() {
    for phoff in [0x2200u64, 0x21f0, u64::MAX, u64::MAX - 55] {
        // Patched after writing, so the writer does not put the headers there.
        let mut file = Sample::default().build();
        file[32..40].copy_from_slice(&phoff.to_le_bytes());
        let error = refused(&file);
        assert_eq!(error.place, Place::HeaderField("e_phoff"), "{error}");
        assert!(matches!(error.problem, Problem::OutsideFile { what: "program header table", .. }), "{error}");
    }
    // One program header too many for the file.
    let mut writer = Sample::default().writer();
    writer.phnum = Some(200);
    assert!(matches!(refused_writer(&writer).problem, Problem::OutsideFile { .. }));
}

// ---- program headers ----

#[test]
fn writable_and_executable_segment() {
    let error = refused_writer(&with_phdr(PH_CODE, |ph| ph.flags = R | W | X));
    assert_eq!(error.to_string(), "program header 1: segment is writable and executable");
    let error = refused_writer(&with_phdr(PH_DATA, |ph| ph.flags = W | X));
    assert_eq!(error.place, Place::ProgramHeader(PH_DATA));
    assert_eq!(error.problem, Problem::WritableAndExecutable);
}

#[test]
fn unknown_segment_flags() {
    let error = refused_writer(&with_phdr(PH_DATA, |ph| ph.flags = R | W | 0x0010_0000));
    assert_eq!(error.place, Place::ProgramHeader(PH_DATA));
    assert_eq!(error.problem, Problem::UnknownSegmentFlags { flags: 0x0010_0006 });
}

#[test]
fn segment_outside_file() {
    for (offset, filesz) in [(0x2000, 0x201), (0x5000, 1), (u64::MAX, 2), (1, u64::MAX)] {
        let error = refused_writer(&with_phdr(PH_DATA, |ph| {
            ph.offset = offset;
            ph.filesz = filesz;
            ph.memsz = filesz;
        }));
        assert_eq!(error.place, Place::ProgramHeader(PH_DATA), "{error}");
        assert!(
            matches!(error.problem, Problem::OutsideFile { what: "segment", offset: o, size, file_len: 0x2200 } if o == offset && size == filesz),
            "{error}"
        );
    }
    // Non-load segments are held to the file too.
    let error = refused_writer(&with_phdr(PH_DYNAMIC, |ph| ph.filesz = 0x1000));
    assert_eq!(error.place, Place::ProgramHeader(PH_DYNAMIC));
    assert!(error.to_string().contains("ends past the end of the file"), "{error}");
}

#[test]
fn file_size_over_memory_size() {
    let error = refused_writer(&with_phdr(PH_CODE, |ph| ph.memsz = 0x20));
    assert_eq!(error.problem, Problem::FileSizeOverMemorySize { file_size: 0x40, memory_size: 0x20 });
    assert_eq!(error.to_string(), "program header 1: p_filesz 0x40 is larger than p_memsz 0x20");
}

#[test]
fn alignment() {
    for align in [3, 0x1001, 0x40_0000] {
        let error = refused_writer(&with_phdr(PH_CODE, |ph| ph.align = align));
        assert_eq!(error.problem, Problem::BadAlignment { align }, "{error}");
    }
    for align in [0, 1, 8, 0x1000] {
        Image::parse(&with_phdr(PH_CODE, |ph| ph.align = align).build()).unwrap();
    }
    // vaddr and offset must agree modulo the alignment.
    let error = refused_writer(&with_phdr(PH_CODE, |ph| ph.vaddr = 0x1008));
    assert_eq!(error.problem, Problem::Misaligned { vaddr: 0x1008, offset: 0x1000, align: 0x1000 });
    // ...but not when the segment has no alignment constraint.
    let mut writer = with_phdr(PH_CODE, |ph| {
        ph.vaddr = 0x1008;
        ph.align = 1;
    });
    writer.entry = 0x1008;
    Image::parse(&writer.build()).unwrap();
}

#[test]
fn large_alignment_raises_image_alignment() {
    let mut writer = Sample::default().writer();
    for ph in &mut writer.phdrs[..3] {
        ph.align = 0x20_0000;
        // Keep vaddr ≡ offset (mod 2 MiB): both already equal.
    }
    let image = Image::parse(&writer.build()).unwrap();
    assert_eq!(image.align(), 0x20_0000);
}

#[test]
fn too_large() {
    let error = refused_writer(&with_phdr(PH_DATA, |ph| ph.memsz = 0x1000_0000));
    assert_eq!(error.problem, Problem::TooLarge { end: 0x1000_2000, limit: 256 << 20 });
    for memsz in [u64::MAX, u64::MAX - 0x2000, u64::MAX - 0x2fff] {
        let error = refused_writer(&with_phdr(PH_DATA, |ph| ph.memsz = memsz));
        assert!(matches!(error.problem, Problem::TooLarge { end, .. } if end >= u64::MAX - 0xfff), "{error}");
    }
    let error = refused_writer(&with_phdr(PH_DATA, |ph| ph.vaddr = u64::MAX - 0xfff));
    assert!(matches!(error.problem, Problem::TooLarge { .. } | Problem::Misaligned { .. }), "{error}");
    // A tighter limit from the engine.
    let limits = Limits { max_span: 0x3000, ..Limits::default() };
    let error = Image::parse_with(&Sample::default().build(), &limits).unwrap_err();
    assert_eq!(error.place, Place::ProgramHeader(PH_DATA));
    assert_eq!(error.problem, Problem::TooLarge { end: SPAN, limit: 0x3000 });
    let limits = Limits { max_span: SPAN, ..Limits::default() };
    Image::parse_with(&Sample::default().build(), &limits).unwrap();
}

#[test]
fn loads_out_of_order() {
    let mut writer = Sample::default().writer();
    writer.phdrs.swap(PH_CODE, PH_DATA);
    let error = refused_writer(&writer);
    assert_eq!(error.place, Place::ProgramHeader(2));
    assert_eq!(error.problem, Problem::OutOfOrder { vaddr: 0x1000, previous: 0x2000 });
}

#[test]
fn loads_sharing_a_page() {
    // The data segment moved down into the code's page (0x1000..0x2000).
    let error = refused_writer(&with_phdr(PH_DATA, |ph| {
        ph.vaddr = 0x1800;
        ph.offset = 0x1800;
        ph.filesz = 0;
        ph.align = 0x10;
    }));
    assert_eq!(error.place, Place::ProgramHeader(PH_DATA));
    assert_eq!(error.problem, Problem::SharedPage { other: PH_CODE, page: 0x1000 });
    assert_eq!(error.to_string(), "program header 2: segment shares the page at 0x1000 with program header 1");
    // Bytes do not overlap, but the pages do: the code ends at 0x1040 and data starts at 0x1f00.
    let error = refused_writer(&with_phdr(PH_DATA, |ph| {
        ph.vaddr = 0x1f00;
        ph.offset = 0x1f00;
        ph.filesz = 0;
        ph.align = 0x100;
    }));
    assert_eq!(error.problem, Problem::SharedPage { other: PH_CODE, page: 0x1000 });
    // Exact overlap.
    let error = refused_writer(&with_phdr(PH_DATA, |ph| *ph = Phdr::load(R, CODE_AT, CODE_AT, 0x10, 0x10)));
    assert!(matches!(error.problem, Problem::SharedPage { .. }), "{error}");
}

#[test]
fn refused_segment_types() {
    for (p_type, what) in [
        (PT_INTERP, "dynamic linker"),
        (PT_TLS, "thread-local"),
        (5, "unknown"),
        (0x6000_0000, "unknown"),
        (0x6474_e560, "unknown"),
    ] {
        let mut writer = Sample::default().writer();
        writer.phdrs.push(Phdr::other(p_type, R));
        let error = refused_writer(&writer);
        assert_eq!(error.place, Place::ProgramHeader(6), "{error}");
        assert!(matches!(error.problem, Problem::UnsupportedSegment { p_type: t, .. } if t == p_type), "{error}");
        assert!(error.to_string().contains(what), "{error}");
    }
    let mut writer = Sample::default().writer();
    writer.phdrs.insert(0, Phdr::other(PT_INTERP, R));
    assert_eq!(
        refused_writer(&writer).to_string(),
        "program header 0: segment type 0x3 (PT_INTERP) not supported: \
         the image asks for a dynamic linker; there is none, link it static"
    );
}

#[test]
fn harmless_segment_types_are_accepted() {
    let mut writer = Sample::default().writer();
    writer.phdrs.push(Phdr { offset: 64, vaddr: 64, filesz: 56 * 9, memsz: 56 * 9, ..Phdr::other(PT_PHDR, R) });
    writer.phdrs.push(Phdr { offset: 0x20, filesz: 8, ..Phdr::other(PT_NOTE, R) });
    writer.phdrs.push(Phdr { offset: 0x20, filesz: 8, ..Phdr::other(PT_GNU_EH_FRAME, R) });
    // PT_NULL: values undefined, even wild ones.
    writer.phdrs.push(Phdr { offset: u64::MAX, filesz: u64::MAX, flags: u32::MAX, ..Phdr::other(PT_NULL, 0) });
    Image::parse(&writer.build()).unwrap();
}

#[test]
fn duplicates() {
    for (index, what) in [(PH_DYNAMIC, "PT_DYNAMIC"), (PH_RELRO, "PT_GNU_RELRO"), (PH_STACK, "PT_GNU_STACK")] {
        let mut writer = Sample::default().writer();
        writer.phdrs.push(writer.phdrs[index]);
        let error = refused_writer(&writer);
        assert_eq!(error.place, Place::ProgramHeader(6));
        assert_eq!(error.problem, Problem::Duplicate { what });
    }
}

#[test]
fn executable_stack() {
    let error = refused_writer(&with_phdr(PH_STACK, |ph| ph.flags = R | W | X));
    assert_eq!(error.to_string(), "program header 5: PT_GNU_STACK asks for an executable stack");
}

#[test]
fn no_load_segments() {
    let mut writer = Sample::default().writer();
    writer.phdrs.retain(|ph| ph.p_type != PT_LOAD);
    assert_eq!(refused_writer(&writer).problem, Problem::NoLoadSegments);
    let mut writer = Sample::default().writer();
    for ph in writer.phdrs.iter_mut().filter(|ph| ph.p_type == PT_LOAD) {
        ph.filesz = 0;
        ph.memsz = 0;
    }
    assert_eq!(refused_writer(&writer).problem, Problem::NoLoadSegments);
}

#[test]
fn empty_load_is_skipped() {
    let mut writer = Sample::default().writer();
    writer.phdrs.push(Phdr::load(R, 0, 0x10_0000, 0, 0));
    let image = Image::parse(&writer.build()).unwrap();
    assert_eq!(image.segments().len(), 3);
}

#[test]
fn entry_must_be_in_code() {
    for entry in [0, 0x400, 0x1040, 0x2000, 0x3fff, u64::MAX] {
        let mut writer = Sample::default().writer();
        writer.entry = entry;
        let error = refused_writer(&writer);
        assert_eq!(error.place, Place::HeaderField("e_entry"));
        assert_eq!(error.problem, Problem::EntryNotExecutable { entry });
    }
    let mut writer = Sample::default().writer();
    writer.entry = 0x103f;
    assert_eq!(Image::parse(&writer.build()).unwrap().entry(), 0x103f);
}

#[test]
fn relro_must_be_in_a_writable_segment() {
    for (vaddr, memsz) in [(0x1000, 0x40), (0x0, 0x10), (0x2000, 0x2001), (0x5000, 8), (u64::MAX, 2)] {
        let error = refused_writer(&with_phdr(PH_RELRO, |ph| {
            ph.vaddr = vaddr;
            ph.memsz = memsz;
        }));
        assert_eq!(error.place, Place::ProgramHeader(PH_RELRO));
        assert_eq!(error.problem, Problem::RelroNotWritable { vaddr, size: memsz }, "{error}");
    }
}

// ---- dynamic section ----

fn base_dynamic() -> Vec<(i64, u64)> {
    Sample::default().dynamic_entries()
}

#[test]
fn needed_library() {
    let mut entries = vec![(DT_NEEDED, 1)];
    entries.extend(base_dynamic());
    let error = refused(&with_dynamic(entries));
    assert_eq!(error.place, Place::Dynamic(0));
    assert_eq!(
        error.to_string(),
        "dynamic entry 0: tag 0x1 (DT_NEEDED) not supported: \
         the image needs a shared library, and there is no dynamic linker; link it static"
    );
}

#[test]
fn refused_tags() {
    for (tag, value, words) in [
        (DT_TEXTREL, 0, "W^X"),
        (DT_REL, 0x400, "REL relocations"),
        (DT_RELR, 0x400, "pack-relative-relocs"),
        (DT_INIT, 0x1000, "initialization"),
        (DT_PLTRELSZ, 24, "PLT"),
        (DT_INIT_ARRAYSZ, 8, "initialization"),
        (DT_VERNEED, 0x300, "versions"),
        (0x7000_0001, 0, "unknown"),
        (-5, 0, "unknown"),
    ] {
        let mut entries = base_dynamic();
        entries.push((tag, value));
        let error = refused(&with_dynamic(entries));
        assert_eq!(error.place, Place::Dynamic(5), "{error}");
        assert!(matches!(error.problem, Problem::UnsupportedDynamicTag { tag: t, .. } if t == tag), "{error}");
        assert!(error.to_string().contains(words), "{error}");
    }
}

#[test]
fn zero_sized_tables_are_accepted() {
    let mut entries = base_dynamic();
    entries.extend([(DT_PLTRELSZ, 0), (DT_INIT_ARRAYSZ, 0), (3, 0x2000), (5, 0x300), (6, 0x300), (4, 0x300)]);
    Image::parse(&with_dynamic(entries)).unwrap();
}

#[test]
fn flags() {
    for (flags, words) in [(0x4, "DF_TEXTREL"), (0x10, "DF_STATIC_TLS"), (0x1c, "DF_TEXTREL")] {
        let mut entries = base_dynamic();
        entries.push((DT_FLAGS, flags));
        let error = refused(&with_dynamic(entries));
        assert_eq!(error.place, Place::Dynamic(5));
        assert!(error.to_string().contains(words), "{error}");
    }
    let mut entries = base_dynamic();
    entries.push((DT_FLAGS, 0x8)); // DF_BIND_NOW, as lld writes
    Image::parse(&with_dynamic(entries)).unwrap();
}

#[test]
fn duplicate_tag() {
    let mut entries = base_dynamic();
    entries.push((DT_RELA, RELA_AT));
    let error = refused(&with_dynamic(entries));
    assert_eq!(error.place, Place::Dynamic(5));
    assert_eq!(error.problem, Problem::DuplicateDynamicTag { tag: DT_RELA });
}

#[test]
fn missing_tags() {
    let without = |tag: i64| base_dynamic().into_iter().filter(|&(t, _)| t != tag).collect::<Vec<_>>();
    let error = refused(&with_dynamic(without(DT_RELASZ)));
    assert_eq!(error.problem, Problem::MissingDynamicTag { missing: DT_RELASZ });
    assert_eq!(error.place, Place::Dynamic(0));
    let error = refused(&with_dynamic(without(DT_RELA)));
    assert_eq!(error.problem, Problem::MissingDynamicTag { missing: DT_RELA });
    let error = refused(&with_dynamic(without(DT_RELAENT)));
    assert_eq!(error.problem, Problem::MissingDynamicTag { missing: DT_RELAENT });
    let error = refused(&with_dynamic(vec![(DT_RELAENT, 24)]));
    assert_eq!(error.problem, Problem::MissingDynamicTag { missing: DT_RELA });
    assert_eq!(error.to_string(), "dynamic entry 0: needs tag 0x7 (DT_RELA), which is missing");
}

#[test]
fn relocation_table_fields() {
    let set = |tag: i64, value: u64| {
        base_dynamic().into_iter().map(|(t, v)| if t == tag { (t, value) } else { (t, v) }).collect::<Vec<_>>()
    };
    let error = refused(&with_dynamic(set(DT_RELAENT, 16)));
    assert_eq!(error.place, Place::Dynamic(2));
    assert!(matches!(error.problem, Problem::Unexpected { field: "DT_RELAENT", found: 16, .. }));
    let error = refused(&with_dynamic(set(DT_RELASZ, 70)));
    assert!(matches!(error.problem, Problem::Unexpected { field: "DT_RELASZ", found: 70, .. }));
    let error = refused(&with_dynamic(set(DT_RELACOUNT, 4)));
    assert!(matches!(error.problem, Problem::Unexpected { field: "DT_RELACOUNT", found: 4, .. }));
    // Fewer RELATIVE ones counted than present is what linkers write when other types follow.
    Image::parse(&with_dynamic(set(DT_RELACOUNT, 2))).unwrap();
}

#[test]
fn relocation_table_must_be_in_file_bytes() {
    for (rela, size) in
        [(0x2200, 24), (0x3000, 24), (0x10_0000, 24), (0x3ff8, 24), (RELA_AT, 0x1000), (u64::MAX - 8, 24)]
    {
        let entries = vec![(DT_RELA, rela), (DT_RELASZ, size - size % 24), (DT_RELAENT, 24)];
        let error = refused(&with_dynamic(entries));
        assert_eq!(error.place, Place::Dynamic(0), "{error}");
        assert!(matches!(error.problem, Problem::NotInFile { what: "DT_RELA table", .. }), "{error}");
    }
}

#[test]
fn no_dynamic_section_means_no_relocations() {
    let mut writer = Sample::default().writer();
    writer.phdrs.remove(PH_DYNAMIC);
    let image = Image::parse(&writer.build()).unwrap();
    assert!(image.relocations().is_empty());
    // And an empty dynamic section is fine too.
    let image = Image::parse(&with_dynamic(vec![])).unwrap();
    assert!(image.relocations().is_empty());
}

#[test]
fn dynamic_without_terminator() {
    let mut writer = Sample::default().writer();
    // Cut the segment before its DT_NULL.
    writer.phdrs[PH_DYNAMIC].filesz -= 16;
    let error = refused_writer(&writer);
    assert_eq!(error.place, Place::ProgramHeader(PH_DYNAMIC));
    assert_eq!(error.problem, Problem::NoDynamicTerminator);
    writer.phdrs[PH_DYNAMIC].filesz = 7;
    assert_eq!(refused_writer(&writer).problem, Problem::NoDynamicTerminator);
}

// ---- relocations ----

#[test]
fn unsupported_relocation_type() {
    let mut relas = Sample::default().relas;
    relas[1].1 = info(1);
    let error = refused(&with_relas(relas));
    assert_eq!(error.place, Place::Relocation { index: 1, offset: PAYLOAD_AT + 8 });
    assert_eq!(error.problem, Problem::UnsupportedRelocation { r_type: 1 });
    assert_eq!(error.to_string(), "relocation 1 at 0x2108: type 1 (R_X86_64_64) not supported");
    for (r_type, name) in [
        (0, "R_X86_64_NONE"),
        (6, "R_X86_64_GLOB_DAT"),
        (37, "R_X86_64_IRELATIVE"),
        (39, "unknown"),
        (0xdead, "unknown"),
    ] {
        let mut relas = Sample::default().relas;
        relas[2].1 = info(r_type);
        let error = refused(&with_relas(relas));
        assert_eq!(error.problem, Problem::UnsupportedRelocation { r_type });
        assert!(error.to_string().ends_with(&format!("type {r_type} ({name}) not supported")), "{error}");
    }
}

#[test]
fn relocation_symbol_is_ignored_for_relative() {
    let mut relas = Sample::default().relas;
    relas[0].1 = (7 << 32) | u64::from(R_X86_64_RELATIVE);
    Image::parse(&with_relas(relas)).unwrap();
}

#[test]
fn relocation_targets() {
    // Code, read-only headers, straddling the end of the data segment, past every segment, wrapping.
    for target in [CODE_AT, 0x1038, 0x10, RELA_AT, 0x37f9, 0x3800, 0x3ff8, 0x5000, u64::MAX - 3] {
        let mut relas = Sample::default().relas;
        relas[2].0 = target;
        let error = refused(&with_relas(relas));
        assert_eq!(error.place, Place::Relocation { index: 2, offset: target });
        assert_eq!(error.problem, Problem::RelocationTarget);
    }
    // Last 8 bytes of the writable segment (bss) are fine, and unaligned targets too.
    let mut relas = Sample::default().relas;
    relas[2].0 = 0x37f8;
    relas[1].0 = 0x2103;
    Image::parse(&with_relas(relas)).unwrap();
}

// ---- scan, as part of parse ----

#[test]
fn forbidden_instruction_in_code() {
    for (bytes, what) in [
        (&[0x0f, 0x01, 0xef][..], ForbiddenInstruction::Wrpkru),
        (&[0x48, 0x0f, 0xae, 0x2f][..], ForbiddenInstruction::Xrstor),
        (&[0x0f, 0xc7, 0x1e][..], ForbiddenInstruction::Xrstors),
    ] {
        let mut sample = Sample::default();
        sample.code[0x21..0x21 + bytes.len()].copy_from_slice(bytes);
        let error = refused(&sample.build());
        let at = CODE_AT + 0x21 + u64::from(bytes[0] != 0x0f);
        assert_eq!(error.place, Place::Code(at));
        assert_eq!(error.problem, Problem::Forbidden(what));
    }
    let mut sample = Sample::default();
    sample.code[0x3d..].copy_from_slice(&[0x0f, 0x01, 0xef]);
    assert_eq!(refused(&sample.build()).to_string(), "code at 0x103d: forbidden instruction WRPKRU (0F 01 EF)");
}

#[test]
fn forbidden_bytes_outside_code_are_fine() {
    let mut sample = Sample::default();
    sample.payload[0x40..0x43].copy_from_slice(&[0x0f, 0x01, 0xef]);
    Image::parse(&sample.build()).unwrap();
}

/// Two executable segments; the first one's bytes end at `first_end`, the second one starts at
/// `second_at`. The first ends in `0F 01` and the second starts with `EF`.
fn two_code_segments(first_end: u64, second_at: u64) -> Vec<u8> {
    let mut writer = ElfWriter { entry: 0x1000, ..ElfWriter::default() };
    let first_len = first_end - 0x1000;
    writer.phdrs = vec![
        Phdr::load(R, 0, 0, 0x200, 0x200),
        Phdr::load(R | X, 0x1000, 0x1000, first_len, first_len),
        Phdr::load(R | X, second_at, second_at, 0x10, 0x10),
    ];
    let mut first = vec![0x90; first_len as usize];
    first[first_len as usize - 2..].copy_from_slice(&[0x0f, 0x01]);
    let mut second = vec![0x90; 0x10];
    second[0] = 0xef;
    writer.blobs = vec![(0x1000, first), (second_at as usize, second)];
    writer.build()
}

#[test]
fn pattern_straddling_adjacent_code_segments() {
    let error = refused(&two_code_segments(0x2000, 0x2000));
    assert_eq!(error.place, Place::Code(0x1ffe));
    assert_eq!(error.problem, Problem::Forbidden(ForbiddenInstruction::Wrpkru));
    // A page between them: execution cannot cross it, so no instruction spans the two.
    Image::parse(&two_code_segments(0x2000, 0x3000)).unwrap();
    // The first ends mid-page: its page is zero-filled after it, which breaks the pattern.
    Image::parse(&two_code_segments(0x1ff0, 0x2000)).unwrap();
}

#[test]
fn pattern_straddling_into_the_zero_fill_is_impossible() {
    // Code that ends in 0F AE: the next byte in memory is zero fill (ModRM 0: reg 0, not XRSTOR).
    let mut sample = Sample::default();
    let n = sample.code.len();
    sample.code[n - 2..].copy_from_slice(&[0x0f, 0xae]);
    Image::parse(&sample.build()).unwrap();
}
