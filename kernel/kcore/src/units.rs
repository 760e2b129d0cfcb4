//! Human-readable byte sizes for log lines; a byte range split at block boundaries.

use core::fmt;

/// Formats a byte count with a binary unit (`12.5 MiB`), exact below 1 KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut unit = 0;
        let mut scaled = self.0;
        while scaled >= 1024 * 1024 && unit + 1 < UNITS.len() {
            scaled /= 1024;
            unit += 1;
        }
        // One decimal, computed in integers (the kernel target is soft-float).
        let tenths = (scaled * 10 + 512) / 1024;
        write!(f, "{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

/// Zeroes `bytes`: its `block`-aligned middle of whole blocks with `blocks` (the caller's
/// block-at-a-time writer: SSE or AVX stores, DC ZVA), the ends, and all of a slice too short
/// for one block, with `fill`.
pub fn zero_by_blocks(bytes: &mut [u8], block: usize, blocks: impl FnOnce(&mut [u8])) {
    match split_blocks(bytes, block, block) {
        Some((head, middle, tail)) => {
            head.fill(0);
            tail.fill(0);
            blocks(middle);
        }
        None => bytes.fill(0),
    }
}

/// `bytes` split into the part before its first `align`-aligned address, as many whole
/// `block`s as follow (`block` a multiple of `align`), and the rest: what a block-at-a-time
/// writer (SSE stores, DC ZVA) takes the middle of. `None` when no whole block fits.
pub fn split_blocks(bytes: &mut [u8], align: usize, block: usize) -> Option<(&mut [u8], &mut [u8], &mut [u8])> {
    let head = (bytes.as_ptr() as usize).wrapping_neg() % align;
    let blocks = bytes.len().checked_sub(head)? / block;
    if blocks == 0 {
        return None;
    }
    let (head, rest) = bytes.split_at_mut(head);
    let (middle, tail) = rest.split_at_mut(blocks * block);
    Some((head, middle, tail))
}

#[cfg(test)]
mod tests {
    use super::Bytes;
    use std::string::ToString;

    #[test]
    fn formats_binary_units() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(1024).to_string(), "1.0 KiB");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(128 << 20).to_string(), "128.0 MiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
    }

    #[test]
    fn splits_at_block_boundaries() {
        #[repr(align(64))]
        struct Aligned([u8; 512]);
        let mut buf = Aligned([0; 512]);
        for start in 0..70 {
            for len in [0, 1, 100, 127, 128, 300, 512 - start] {
                let bytes = &mut buf.0[start..start + len];
                let base = bytes.as_ptr() as usize;
                match super::split_blocks(bytes, 16, 128) {
                    Some((head, middle, tail)) => {
                        let at = middle.as_ptr() as usize;
                        assert!(at.is_multiple_of(16) && head.len() < 16 && at == base + head.len());
                        assert!(!middle.is_empty() && middle.len().is_multiple_of(128) && tail.len() < 128);
                        assert_eq!(head.len() + middle.len() + tail.len(), len);
                    }
                    None => assert!(len < (base.wrapping_neg() % 16) + 128, "{start} {len}"),
                }
            }
        }
    }

    #[test]
    fn zero_by_blocks_zeroes_exactly_the_slice() {
        let mut buffer = [0xa5u8; 200];
        for start in 0..40 {
            for len in 0..120 {
                buffer.fill(0xa5);
                let mut middle_len = 0;
                super::zero_by_blocks(&mut buffer[start..start + len], 32, |middle| {
                    assert_eq!(middle.as_ptr() as usize % 32, 0, "aligned");
                    assert_eq!(middle.len() % 32, 0, "whole blocks");
                    middle_len = middle.len();
                    middle.fill(0);
                });
                assert!(buffer[start..start + len].iter().all(|&b| b == 0), "{start}+{len}");
                assert!(buffer[..start].iter().chain(&buffer[start + len..]).all(|&b| b == 0xa5), "{start}+{len}");
                assert!(middle_len <= len);
            }
        }
    }
}
