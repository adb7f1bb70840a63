//! Server-wide counters for INFO stats and errorstats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub total_error_replies: AtomicU64,
    /// Error replies by their code (`ERR`, `WRONGTYPE` ...).
    pub errorstats: Mutex<BTreeMap<String, u64>>,
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
    }
}
