//! Human-readable byte sizes for log lines.

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
}
