//! Server-wide counters for INFO stats and errorstats.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::CmdError;

/// Counters with Redis's INFO names.
#[derive(Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Replication streams' bytes: from the master (a replica's), to the
    /// replicas (a master's).
    pub net_repl_input_bytes: AtomicU64,
    pub net_repl_output_bytes: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub total_error_replies: AtomicU64,
    /// Error replies by their code (`ERR`, `WRONGTYPE` ...).
    pub errorstats: Mutex<BTreeMap<String, u64>>,
    /// (when, commands_processed) samples behind instantaneous_ops_per_sec.
    ops_samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Stats {
    pub fn record_error(&self, error: &CmdError) {
        self.record_error_text(&error.to_string());
    }

    pub fn record_error_text(&self, text: &str) {
        self.total_error_replies.fetch_add(1, Ordering::Relaxed);
        let code = text.split(' ').next().unwrap_or("ERR").to_string();
        *self.errorstats.lock().entry(code).or_insert(0) += 1;
    }

    pub fn hit(&self, found: bool) {
        if found {
            self.keyspace_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.keyspace_misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Commands per second over roughly the last second. Samples are taken
    /// when INFO asks (no timer needed): the rate is measured from the
    /// newest sample at least a second old, or the oldest one there is.
    pub fn ops_per_sec(&self, now: Instant) -> u64 {
        let total = self.commands_processed.load(Ordering::Relaxed);
        let mut samples = self.ops_samples.lock();
        while samples.len() >= 2 && now.duration_since(samples[1].0) >= Duration::from_secs(1) {
            samples.pop_front();
        }
        let rate = match samples.front() {
            Some(&(when, count)) if now > when => {
                let elapsed = now.duration_since(when).as_secs_f64();
                (total.saturating_sub(count) as f64 / elapsed).round() as u64
            }
            _ => 0,
        };
        if samples.back().is_none_or(|&(when, _)| now.duration_since(when) >= Duration::from_millis(100)) {
            samples.push_back((now, total));
        }
        rate
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for counter in [
            &self.connections_received,
            &self.rejected_connections,
            &self.commands_processed,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.total_error_replies,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.errorstats.lock().clear();
        self.ops_samples.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_per_sec_measures_from_an_older_sample() {
        let stats = Stats::default();
        let start = Instant::now();
        assert_eq!(stats.ops_per_sec(start), 0);
        stats.commands_processed.store(500, Ordering::Relaxed);
        assert_eq!(stats.ops_per_sec(start + Duration::from_millis(500)), 1000);
        stats.commands_processed.store(800, Ordering::Relaxed);
        // The first sample is now 2 s old; the one at 0.5 s is the base.
        assert_eq!(stats.ops_per_sec(start + Duration::from_millis(2000)), 200);
        stats.reset();
        assert_eq!(stats.ops_per_sec(start + Duration::from_millis(2100)), 0);
    }

    #[test]
    fn errors_are_counted_by_code() {
        let stats = Stats::default();
        stats.record_error(&CmdError::WrongType);
        stats.record_error(&CmdError::Syntax);
        stats.record_error(&CmdError::NotInteger);
        assert_eq!(stats.total_error_replies.load(Ordering::Relaxed), 3);
        let table = stats.errorstats.lock();
        assert_eq!(table.get("ERR"), Some(&2));
        assert_eq!(table.get("WRONGTYPE"), Some(&1));
    }
}
