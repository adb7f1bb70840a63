//! Lock-free metric primitives and the durability metric set.
//!
//! The write-ahead log, recovery and checkpoints update these on their hot
//! paths, so every update is a few relaxed atomic operations: no locks, no
//! allocation. The server's `/metrics` endpoint reads them and renders the
//! Prometheus text format (src/metrics.rs); this crate knows nothing of it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A count that only goes up (Prometheus counter).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (Prometheus gauge): an f64 kept as its bit
/// pattern in an atomic, since there is no atomic float.
#[derive(Debug)]
pub struct Gauge(AtomicU64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(AtomicU64::new(0f64.to_bits()))
    }
}

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Adds `delta` (negative to subtract); concurrent adds are not lost.
    pub fn add(&self, delta: f64) {
        add_f64(&self.0, delta);
    }
}

/// Adds to an f64 stored as bits with a compare-and-swap loop.
fn add_f64(cell: &AtomicU64, delta: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + delta).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// A distribution over fixed buckets (Prometheus histogram). Each bucket
/// counts the observations that fall in it alone; the cumulative counts
/// Prometheus wants are summed when read, so `observe` touches one bucket.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, ascending; the implicit last bucket is +Inf.
    bounds: Vec<f64>,
    /// One more than `bounds`: the last counts what is above every bound.
    buckets: Vec<AtomicU64>,
    /// f64 bits.
    sum: AtomicU64,
}

/// A consistent-enough reading of a histogram: `cumulative[i]` counts the
/// observations `<= bounds[i]`, and `count` (the +Inf bucket) is the sum of
/// every bucket, so the last bucket always equals the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    /// Bounds must be finite and strictly ascending (a programming error
    /// otherwise, caught by the first test that builds the histogram).
    pub fn new(bounds: &[f64]) -> Histogram {
        assert!(bounds.iter().all(|b| b.is_finite()), "histogram bounds must be finite");
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "histogram bounds must ascend");
        Histogram {
            bounds: bounds.to_vec(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one value. NaN is ignored: it belongs in no bucket and would
    /// poison the sum.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        // Buckets are few (about ten): a linear scan beats a binary search.
        let index = self.bounds.iter().position(|&bound| value <= bound).unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, value);
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for bucket in &self.buckets[..self.bounds.len()] {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            bounds: self.bounds.clone(),
            cumulative,
            count,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

/// Bucket bounds of `log_fsync_seconds`: 100 µs to 1 s.
pub const FSYNC_SECONDS_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];
/// Bucket bounds of `group_commit_records`: powers of two up to 1024.
pub const GROUP_COMMIT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// Bucket bounds of `checkpoint_seconds`: 1 ms to 30 s.
pub const CHECKPOINT_SECONDS_BUCKETS: &[f64] = &[0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0];

/// What the write-ahead log, recovery and checkpoints report about
/// themselves. One instance per server, shared by `Arc`.
#[derive(Debug)]
pub struct DurabilityMetrics {
    /// Duration of the last startup recovery.
    pub recovery_seconds: Gauge,
    /// Log records replayed at startup.
    pub recovery_records: Counter,
    /// Duration of each log fsync.
    pub log_fsync_seconds: Histogram,
    /// Records per group-commit batch (records sharing one write and fsync).
    pub group_commit_records: Histogram,
    pub log_bytes_written: Counter,
    /// The sequence number of the last record appended to the log.
    pub log_sequence: Gauge,
    /// Duration of each checkpoint.
    pub checkpoint_seconds: Histogram,
    /// Size of the last checkpoint.
    pub checkpoint_bytes: Gauge,
    /// Checkpoints completed.
    pub checkpoints: Counter,
    pub checkpoint_failures: Counter,
    /// Log segments copied into the archive (`log-archive-repo`), and
    /// archiving passes that failed.
    pub log_archived_segments: Counter,
    pub log_archive_failures: Counter,
}

impl Default for DurabilityMetrics {
    fn default() -> Self {
        DurabilityMetrics {
            recovery_seconds: Gauge::default(),
            recovery_records: Counter::default(),
            log_fsync_seconds: Histogram::new(FSYNC_SECONDS_BUCKETS),
            group_commit_records: Histogram::new(GROUP_COMMIT_BUCKETS),
            log_bytes_written: Counter::default(),
            log_sequence: Gauge::default(),
            checkpoint_seconds: Histogram::new(CHECKPOINT_SECONDS_BUCKETS),
            checkpoint_bytes: Gauge::default(),
            checkpoints: Counter::default(),
            checkpoint_failures: Counter::default(),
            log_archived_segments: Counter::default(),
            log_archive_failures: Counter::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counter_counts() {
        let counter = Counter::default();
        assert_eq!(counter.get(), 0);
        counter.inc();
        counter.inc_by(41);
        assert_eq!(counter.get(), 42);
    }

    #[test]
    fn gauge_keeps_floats_and_adds() {
        let gauge = Gauge::default();
        assert_eq!(gauge.get(), 0.0);
        gauge.set(-2.5);
        assert_eq!(gauge.get(), -2.5);
        gauge.add(4.0);
        assert_eq!(gauge.get(), 1.5);
        gauge.set(f64::INFINITY);
        assert_eq!(gauge.get(), f64::INFINITY);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::new(&[1.0, 5.0, 10.0]);
        for value in [0.5, 1.0, 3.0, 7.0, 10.0, 11.0, 1e9, f64::NAN] {
            histogram.observe(value);
        }
        let snap = histogram.snapshot();
        // <=1: 0.5, 1.0; <=5: +3.0; <=10: +7.0, 10.0; +Inf: +11, 1e9.
        assert_eq!(snap.cumulative, vec![2, 3, 5]);
        assert_eq!(snap.count, 7);
        assert_eq!(histogram.count(), 7);
        assert_eq!(snap.sum, 0.5 + 1.0 + 3.0 + 7.0 + 10.0 + 11.0 + 1e9);
        assert_eq!(snap.bounds, vec![1.0, 5.0, 10.0]);
    }

    #[test]
    #[should_panic(expected = "ascend")]
    fn histogram_rejects_unsorted_bounds() {
        Histogram::new(&[1.0, 1.0]);
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        const THREADS: u64 = 8;
        const EACH: u64 = 10_000;
        let counter = Arc::new(Counter::default());
        let gauge = Arc::new(Gauge::default());
        let histogram = Arc::new(Histogram::new(&[0.5, 1.5]));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (counter, gauge, histogram) = (counter.clone(), gauge.clone(), histogram.clone());
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        counter.inc();
                        gauge.add(1.0);
                        // Odd threads observe 1 (middle bucket), even 2 (+Inf).
                        histogram.observe(if t % 2 == 1 { 1.0 } else { 2.0 });
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(counter.get(), THREADS * EACH);
        assert_eq!(gauge.get(), (THREADS * EACH) as f64);
        let snap = histogram.snapshot();
        assert_eq!(snap.cumulative, vec![0, THREADS / 2 * EACH]);
        assert_eq!(snap.count, THREADS * EACH);
        assert_eq!(snap.sum, (THREADS / 2 * EACH) as f64 * 3.0);
    }

    #[test]
    fn durability_metrics_have_the_documented_buckets() {
        let metrics = DurabilityMetrics::default();
        assert_eq!(metrics.log_fsync_seconds.bounds().len(), 10);
        assert_eq!(metrics.group_commit_records.bounds().last(), Some(&1024.0));
        assert_eq!(metrics.checkpoint_seconds.bounds().last(), Some(&30.0));
        metrics.group_commit_records.observe(3.0);
        assert_eq!(metrics.group_commit_records.snapshot().cumulative[..3], [0, 0, 1]);
    }
}
