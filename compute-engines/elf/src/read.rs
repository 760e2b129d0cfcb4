//! Bounds-checked little-endian reads. Every byte this crate takes from an image goes through
//! here, so an offset or size taken from the file can never index past its end: a read that
//! does not fit is `None`, never a panic.

use core::ops::Range;

/// `len` bytes at `offset` of a `file_len`-byte file, as a slice range, if they fit.
pub(crate) fn file_range(file_len: usize, offset: u64, len: u64) -> Option<Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= file_len).then_some(start..end)
}

fn array_at<const N: usize>(data: &[u8], offset: u64) -> Option<[u8; N]> {
    let start = usize::try_from(offset).ok()?;
    data.get(start..start.checked_add(N)?)?.try_into().ok()
}

pub(crate) fn u8_at(data: &[u8], offset: u64) -> Option<u8> {
    data.get(usize::try_from(offset).ok()?).copied()
}

pub(crate) fn u16_at(data: &[u8], offset: u64) -> Option<u16> {
    array_at(data, offset).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(data: &[u8], offset: u64) -> Option<u32> {
    array_at(data, offset).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(data: &[u8], offset: u64) -> Option<u64> {
    array_at(data, offset).map(u64::from_le_bytes)
}

/// `value` rounded down to a page boundary.
pub(crate) const fn page_floor(value: u64) -> u64 {
    value & !(crate::PAGE_SIZE - 1)
}

/// `value` rounded up to a page boundary, `None` past 2^64.
pub(crate) fn page_ceil(value: u64) -> Option<u64> {
    value.checked_add(crate::PAGE_SIZE - 1).map(page_floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_that_do_not_fit_are_none() {
        assert_eq!(file_range(10, 0, 10), Some(0..10));
        assert_eq!(file_range(10, 10, 0), Some(10..10));
        assert_eq!(file_range(10, 11, 0), None);
        assert_eq!(file_range(10, 5, 6), None);
        assert_eq!(file_range(10, u64::MAX, 1), None);
        assert_eq!(file_range(10, 1, u64::MAX), None);
    }

    #[test]
    fn reads_stop_at_the_end() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u64_at(&data, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(u64_at(&data, 2), None);
        assert_eq!(u32_at(&data, u64::MAX), None);
        assert_eq!(u16_at(&data, 8), None);
        assert_eq!(u8_at(&data, 8), Some(9));
        assert_eq!(u8_at(&data, 9), None);
    }

    #[test]
    fn pages() {
        assert_eq!(page_floor(0x1fff), 0x1000);
        assert_eq!(page_ceil(0x1001), Some(0x2000));
        assert_eq!(page_ceil(0x2000), Some(0x2000));
        assert_eq!(page_ceil(u64::MAX - 0xffe), None);
        assert_eq!(page_ceil(u64::MAX - 0xfff), Some(u64::MAX - 0xfff));
    }
}
