//! Native function images: any bytes are checked as a static-PIE x86_64 image or refused,
//! never a panic; an image that passes loads (relocations applied, every write bounds-checked)
//! into memory of its span, and the forbidden-instruction scan runs on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = elf::scan_executable(data);
    let Ok(image) = elf::Image::parse(data) else { return };
    let Ok(span) = usize::try_from(image.span()) else { return };
    if span <= 64 << 20 {
        let mut memory = vec![0u8; span];
        let _ = image.load_into(data, &mut memory, 0x10_0000);
    }
});
