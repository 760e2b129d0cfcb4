//! A real function image, built by rustc and rust-lld for x86_64-unknown-none as static PIE
//! (`fixtures/tiny_fn.rs`, committed as `fixtures/tiny_fn.elf`): the loader must accept what
//! the toolchain produces, and loading must make its pointers right.

use std::path::Path;
use std::process::Command;

use elf::{Image, Perms};

const FIXTURE: &[u8] = include_bytes!("fixtures/tiny_fn.elf");
const BASE: u64 = 0x5555_0000_0000;

fn word(memory: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(memory[at as usize..at as usize + 8].try_into().unwrap())
}

/// Parses, loads and follows the relocated pointers of a build of `tiny_fn.rs`.
fn check_tiny_fn(file: &[u8]) {
    let image = Image::parse(file).unwrap_or_else(|error| panic!("rustc's output refused: {error}"));
    let code: Vec<_> = image.segments().iter().filter(|s| s.perms.execute).collect();
    assert_eq!(code.len(), 1);
    assert_eq!(code[0].perms, Perms { read: true, write: false, execute: true });
    let code_range = code[0].offset..code[0].offset + code[0].memory_size;
    assert!(code_range.contains(&image.entry()));
    assert!(image.relro().is_some());
    // lld: read-only headers and tables, code, RELRO data, bss; each on its own pages.
    assert_eq!(image.segments().len(), 4);
    assert_eq!(image.relocations().len(), 5);

    let mut memory = vec![0xeeu8; image.span() as usize];
    image.load_into(file, &mut memory, BASE).unwrap();

    // Every relocated word now holds an address inside the loaded image.
    let mut words = Vec::new();
    let mut functions = 0;
    for relocation in image.relocations() {
        let value = word(&memory, relocation.offset);
        assert_eq!(value, relocation.value(BASE));
        let target = value.checked_sub(BASE).expect("points into the image");
        assert!(target < image.span());
        if code_range.contains(&target) {
            functions += 1;
        } else {
            // A `&str`: pointer, then length.
            let len = word(&memory, relocation.offset + 8) as usize;
            words.push(String::from_utf8(memory[target as usize..target as usize + len].to_vec()).unwrap());
        }
    }
    assert_eq!(functions, 2, "the OPS table");
    assert_eq!(words, ["alpha", "beta", "gamma"]);
    // The bss counter is zero.
    let bss = image.segments().last().unwrap();
    assert!(bss.perms.write && bss.file_bytes.is_empty());
    assert!(memory[bss.offset as usize..(bss.offset + bss.memory_size) as usize].iter().all(|&b| b == 0));
}

#[test]
fn committed_fixture_loads() {
    check_tiny_fn(FIXTURE);
}

/// Rebuilds the fixture from source with the project's toolchain, when it has the target, so
/// the loader is checked against the current compiler and linker, not only a frozen file.
#[test]
fn fixture_rebuilt_from_source_loads() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc).args(["--print", "target-libdir", "--target", "x86_64-unknown-none"]).output();
    // The target is there when its library directory holds a `libcore-*.rlib`.
    let has_target = libdir.is_ok_and(|out| {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        out.status.success()
            && std::fs::read_dir(dir).is_ok_and(|mut entries| {
                entries.any(|entry| entry.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
            })
    });
    if !has_target {
        eprintln!("skipped: {rustc} has no x86_64-unknown-none target (rustup target add x86_64-unknown-none)");
        return;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_fn.rs");
    let output = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny_fn.elf");
    let status = Command::new(&rustc)
        .args(["--edition", "2024", "--crate-type", "bin", "--target", "x86_64-unknown-none"])
        .args(["-C", "relocation-model=pie", "-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols"])
        .arg("-o")
        .arg(&output)
        .arg(&source)
        .status()
        .expect("run rustc");
    assert!(status.success(), "rustc failed on the fixture");
    let built = std::fs::read(&output).unwrap();
    check_tiny_fn(&built);
    if built != FIXTURE {
        eprintln!("note: the rebuilt fixture differs from the committed one (another toolchain?)");
    }
}
