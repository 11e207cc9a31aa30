//! A latency histogram and the percentiles the reports show.

use std::time::Duration;

/// Latency percentiles of one load run, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: u64,
}

/// Sub-buckets per power of two: 2^8, so a bucket is at most 1/256 of its
/// values wide.
const SUB_BITS: u32 = 8;
const SUB: u64 = 1 << SUB_BITS;
/// Larger values (over 18 minutes in ns) are recorded as this.
const HIST_MAX: u64 = (1 << 40) - 1;

/// A latency histogram in nanoseconds, log-linear like HdrHistogram: exact
/// below 512 ns, and above that no bucket is wider than 1/256 of its values,
/// so a percentile is off by at most 0.4 %. Its size (66 KiB) does not grow
/// with the number of samples.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; bucket_of(HIST_MAX) + 1],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// The bucket `ns` falls in. Below 2·SUB one bucket per value; above, the
/// top SUB_BITS + 1 bits of the value pick it.
fn bucket_of(ns: u64) -> usize {
    let v = ns.min(HIST_MAX);
    if v < 2 * SUB {
        return v as usize;
    }
    let shift = (63 - v.leading_zeros()) - SUB_BITS;
    ((u64::from(shift) + 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The smallest and largest value of bucket `index`.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < 2 * SUB {
        return (i, i);
    }
    let shift = i / SUB - 1;
    let low = (SUB + i % SUB) << shift;
    (low, low + (1 << shift) - 1)
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        self.record_ns(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds one sample in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.sum += u128::from(ns);
        self.max = self.max.max(ns);
    }

    /// How many samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.5 for the median): the largest value of
    /// the bucket that holds the ⌈q·n⌉-th smallest sample, at most the
    /// largest sample; 0 without samples.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_bounds(index).1.min(self.max);
            }
        }
        self.max
    }

    /// The mean; 0 without samples.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.total)).unwrap_or(u64::MAX)
        }
    }

    /// The percentiles the report shows.
    pub fn summary(&self) -> Latency {
        Latency {
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: self.mean(),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lies_in_its_bucket_and_buckets_are_narrow() {
        let mut values: Vec<u64> = (0..5000).collect();
        let mut v = 5000u64;
        while v < HIST_MAX {
            values.extend([v - 1, v, v + 1, v + v / 3]);
            v = v * 17 / 10;
        }
        for v in values.into_iter().filter(|&v| v <= HIST_MAX) {
            let (low, high) = bucket_bounds(bucket_of(v));
            assert!(low <= v && v <= high, "{v} not in [{low}, {high}]");
            assert!(
                (high - low) as f64 <= low as f64 / SUB as f64,
                "bucket of {v} too wide"
            );
        }
        // Buckets follow each other without gaps.
        for index in 1..=bucket_of(HIST_MAX) {
            assert_eq!(bucket_bounds(index - 1).1 + 1, bucket_bounds(index).0);
        }
        assert_eq!(bucket_of(u64::MAX), bucket_of(HIST_MAX));
    }

    #[test]
    fn quantiles_of_small_values_are_exact() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.mean(), 0);
        for v in (1..=100).rev() {
            h.record_ns(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(0.999), 100);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!(h.mean(), 50);
    }

    #[test]
    fn quantiles_of_large_values_are_within_a_bucket() {
        let mut h = Histogram::default();
        // 990 answers at ~40 µs, 9 at ~2 ms, one stall of 1 s.
        for i in 0..990 {
            h.record(Duration::from_nanos(40_000 + i));
        }
        for _ in 0..9 {
            h.record(Duration::from_millis(2));
        }
        h.record(Duration::from_secs(1));
        let s = h.summary();
        let close = |got: u64, want: u64| {
            assert!(
                got >= want && (got - want) as f64 <= want as f64 / 256.0,
                "{got} vs {want}"
            );
        };
        close(s.p50, 40_499);
        close(s.p90, 40_899);
        close(s.p99, 40_989); // the 990th of 1000
        close(s.p999, 2_000_000);
        assert_eq!(s.max, 1_000_000_000);
        assert_eq!(
            s.mean,
            (990 * 40_000 + 989 * 990 / 2 + 18_000_000 + 1_000_000_000) / 1000
        );
    }
}
