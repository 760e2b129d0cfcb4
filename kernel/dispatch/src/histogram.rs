//! Latency histograms with fixed log2 buckets, rendered in the Prometheus text format.

use core::fmt;

/// Number of finite buckets: bucket `i` counts values `<= 2^i`, for `i` in `0..BUCKETS`
/// (upper bounds 1, 2, 4, …, 2^31); larger values only count in `+Inf`.
pub const BUCKETS: usize = 32;

/// A histogram of `u64` values (ticks, microseconds: the caller picks the unit and says it in
/// the metric name) with fixed log2 bucket bounds `le = 1, 2, 4, …, 2^31, +Inf`.
///
/// A value `v` falls in the first bucket whose bound is `>= v` (Prometheus `le` semantics), so
/// 0 and 1 go to `le="1"`, 3 and 4 to `le="4"`, `2^31 + 1` only to `+Inf`. The sum saturates at
/// `u64::MAX` rather than wrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    overflow: u64,
    sum: u64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self { counts: [0; BUCKETS], overflow: 0, sum: 0, count: 0 }
    }

    /// The upper bound of finite bucket `i` (`2^i`), `None` past the last.
    pub fn bound(i: usize) -> Option<u64> {
        (i < BUCKETS).then(|| 1u64 << i)
    }

    /// The index of the finite bucket `value` falls in, `None` for `+Inf` only.
    pub fn bucket_of(value: u64) -> Option<usize> {
        let i = if value <= 1 { 0 } else { (u64::BITS - (value - 1).leading_zeros()) as usize };
        (i < BUCKETS).then_some(i)
    }

    /// Counts one observation.
    pub fn record(&mut self, value: u64) {
        match Self::bucket_of(value).and_then(|i| self.counts.get_mut(i)) {
            Some(c) => *c = c.saturating_add(1),
            None => self.overflow = self.overflow.saturating_add(1),
        }
        self.sum = self.sum.saturating_add(value);
        self.count = self.count.saturating_add(1);
    }

    /// Adds another histogram's observations to this one (e.g. all cores together).
    pub fn merge(&mut self, other: &Histogram) {
        for (c, o) in self.counts.iter_mut().zip(other.counts.iter()) {
            *c = c.saturating_add(*o);
        }
        self.overflow = self.overflow.saturating_add(other.overflow);
        self.sum = self.sum.saturating_add(other.sum);
        self.count = self.count.saturating_add(other.count);
    }

    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observed values (saturating).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Cumulative count of observations `<= 2^i` (the `le` bucket value), `None` past the last
    /// finite bucket.
    pub fn cumulative(&self, i: usize) -> Option<u64> {
        let upto = self.counts.get(..=i)?;
        Some(upto.iter().fold(0u64, |a, c| a.saturating_add(*c)))
    }

    /// Writes the `# HELP` and `# TYPE` lines of a histogram family (once per metric name).
    pub fn render_header(name: &str, help: &str, out: &mut impl fmt::Write) -> fmt::Result {
        writeln!(out, "# HELP {name} {help}")?;
        writeln!(out, "# TYPE {name} histogram")
    }

    /// Writes the series lines: `{name}_bucket{labels,le="…"}` for every finite bound and
    /// `+Inf` (cumulative), then `{name}_sum` and `{name}_count`. `labels` is either empty or
    /// already-formatted label pairs without braces, e.g. `core="1"`.
    pub fn render(&self, name: &str, labels: &str, out: &mut impl fmt::Write) -> fmt::Result {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(*c);
            let le = 1u64 << i;
            writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}")?;
        }
        writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count)?;
        if labels.is_empty() {
            writeln!(out, "{name}_sum {}", self.sum)?;
            writeln!(out, "{name}_count {}", self.count)
        } else {
            writeln!(out, "{name}_sum{{{labels}}} {}", self.sum)?;
            writeln!(out, "{name}_count{{{labels}}} {}", self.count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn bucket_edges() {
        assert_eq!(Histogram::bucket_of(0), Some(0));
        assert_eq!(Histogram::bucket_of(1), Some(0));
        assert_eq!(Histogram::bucket_of(2), Some(1));
        assert_eq!(Histogram::bucket_of(3), Some(2));
        assert_eq!(Histogram::bucket_of(4), Some(2));
        assert_eq!(Histogram::bucket_of(5), Some(3));
        assert_eq!(Histogram::bucket_of(1 << 31), Some(31));
        assert_eq!(Histogram::bucket_of((1 << 31) + 1), None);
        assert_eq!(Histogram::bucket_of(u64::MAX), None);
        assert_eq!(Histogram::bound(0), Some(1));
        assert_eq!(Histogram::bound(31), Some(1 << 31));
        assert_eq!(Histogram::bound(32), None);
        for i in 1..BUCKETS {
            let b = 1u64 << i;
            assert_eq!(Histogram::bucket_of(b), Some(i));
            assert_eq!(Histogram::bucket_of(b + 1), (i + 1 < BUCKETS).then_some(i + 1));
        }
    }

    #[test]
    fn renders_prometheus_lines() {
        let mut h = Histogram::new();
        for v in [0, 1, 3, 4, 100, u64::MAX] {
            h.record(v);
        }
        let mut out = String::new();
        Histogram::render_header("pappus_run_ticks", "Run time.", &mut out).unwrap();
        h.render("pappus_run_ticks", "core=\"1\"", &mut out).unwrap();
        let lines: alloc::vec::Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "# HELP pappus_run_ticks Run time.");
        assert_eq!(lines[1], "# TYPE pappus_run_ticks histogram");
        assert_eq!(lines[2], "pappus_run_ticks_bucket{core=\"1\",le=\"1\"} 2");
        assert_eq!(lines[3], "pappus_run_ticks_bucket{core=\"1\",le=\"2\"} 2");
        assert_eq!(lines[4], "pappus_run_ticks_bucket{core=\"1\",le=\"4\"} 4");
        assert_eq!(lines[9], "pappus_run_ticks_bucket{core=\"1\",le=\"128\"} 5");
        assert_eq!(lines[33], "pappus_run_ticks_bucket{core=\"1\",le=\"2147483648\"} 5");
        assert_eq!(lines[34], "pappus_run_ticks_bucket{core=\"1\",le=\"+Inf\"} 6");
        assert_eq!(lines[35], alloc::format!("pappus_run_ticks_sum{{core=\"1\"}} {}", u64::MAX));
        assert_eq!(lines[36], "pappus_run_ticks_count{core=\"1\"} 6");
        assert_eq!(lines.len(), 37);

        let mut plain = String::new();
        Histogram::new().render("x", "", &mut plain).unwrap();
        assert!(plain.starts_with("x_bucket{le=\"1\"} 0\n"));
        assert!(plain.ends_with("x_bucket{le=\"+Inf\"} 0\nx_sum 0\nx_count 0\n"));
    }

    #[test]
    fn merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(2);
        b.record(2);
        b.record(1 << 40);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.cumulative(1), Some(2));
        assert_eq!(a.cumulative(31), Some(2));
        assert_eq!(a.cumulative(32), None);
    }
}
