//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN ...): clients waiting for data
//! on keys, served in FIFO order by the client whose write gave the data.
//!
//! A blocking handler that finds nothing to do calls `Blocking::block`
//! while it still holds the keys' shard locks, so no write can slip between
//! its check and its registration. A write that may feed waiters calls
//! `Blocking::signal`; after that command, `dispatch` serves the waiters of
//! the signalled keys by re-running each waiter's own command on its behalf
//! (in the waiter's database) and handing it the reply — as Redis's
//! `handleClientsBlockedOnKeys` does, so the data goes to the client that
//! has waited longest, before any other client's next command.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::client::ClientShared;
use crate::error::CmdError;
use crate::protocol::Reply;

/// How a waiter ends.
#[derive(Debug)]
pub enum Wake {
    /// Its command ran on its behalf; this is the reply.
    Served(Reply),
    /// CLIENT UNBLOCK: answer as on timeout, or with this error.
    Unblocked(Option<Reply>),
}

/// One blocked client.
pub struct Waiter {
    id: u64,
    pub client: Arc<ClientShared>,
    /// The logical database the command runs in.
    pub db: usize,
    /// The command to run again when a key gets data.
    pub argv: Vec<Bytes>,
    keys: Vec<Bytes>,
    /// Served on its own (XREAD): one waiter finding nothing does not stop
    /// the ones behind it from being tried.
    pub independent: bool,
    wake: Mutex<Option<oneshot::Sender<Wake>>>,
}

/// What the blocked connection waits on.
pub struct BlockedCall {
    pub waiter: Arc<Waiter>,
    pub wake: oneshot::Receiver<Wake>,
    /// None waits forever.
    pub deadline: Option<Instant>,
    /// The reply when the time runs out (nil array for BLPOP, nil for BLMOVE...).
    pub timeout_reply: Reply,
}

/// A key in a logical database.
type DbKey = (usize, Bytes);

/// Every blocked client, by the keys it waits on.
#[derive(Default)]
pub struct Blocking {
    next_id: AtomicU64,
    queues: Mutex<HashMap<DbKey, VecDeque<Arc<Waiter>>>>,
    by_client: Mutex<HashMap<u64, Arc<Waiter>>>,
    ready: Mutex<Vec<DbKey>>,
    /// Whether `ready` holds keys (changed with it, under its lock): every
    /// command asks, and reading a flag costs less than taking a lock.
    any_ready: AtomicBool,
    blocked: AtomicUsize,
}

/// Redis's timeout argument of blocking commands: seconds as a float, at
/// most 0.001 s resolution, 0 = forever.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let seconds = crate::commands::args::parse_float_opt(arg).ok_or(CmdError::TimeoutNotFloat)?;
    // Redis: ms = ceil(seconds * 1000) as a long long; values too large
    // for it wrap negative, hence "negative" for huge timeouts too.
    let ms = (seconds * 1000.0).ceil();
    if ms < 0.0 || ms >= i64::MAX as f64 {
        return Err(CmdError::err("timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

impl Blocking {
    /// Number of blocked clients (INFO blocked_clients).
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Registers a client as waiting on `keys`. Call it with the keys'
    /// shards still locked.
    #[allow(clippy::too_many_arguments)] // One registration: every part describes the waiter.
    pub fn block(
        &self,
        client: Arc<ClientShared>,
        db: usize,
        argv: &[Bytes],
        keys: Vec<Bytes>,
        timeout: Option<Duration>,
        timeout_reply: Reply,
        independent: bool,
    ) -> BlockedCall {
        let (sender, receiver) = oneshot::channel();
        let waiter = Arc::new(Waiter {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client,
            db,
            argv: argv.to_vec(),
            keys,
            independent,
            wake: Mutex::new(Some(sender)),
        });
        {
            let mut queues = self.queues.lock();
            for key in &waiter.keys {
                queues.entry((db, key.clone())).or_default().push_back(waiter.clone());
            }
        }
        self.by_client.lock().insert(waiter.client.id, waiter.clone());
        self.blocked.fetch_add(1, Ordering::Relaxed);
        BlockedCall { waiter, wake: receiver, deadline: timeout.map(|t| Instant::now() + t), timeout_reply }
    }

    /// Removes a waiter from every queue (served, timed out, disconnected).
    /// Returns false if it was already gone.
    pub fn remove(&self, waiter: &Waiter) -> bool {
        let mut by_client = self.by_client.lock();
        match by_client.get(&waiter.client.id) {
            Some(w) if w.id == waiter.id => by_client.remove(&waiter.client.id),
            _ => return false,
        };
        drop(by_client);
        let mut queues = self.queues.lock();
        for key in &waiter.keys {
            if let Some(queue) = queues.get_mut(&(waiter.db, key.clone())) {
                queue.retain(|w| w.id != waiter.id);
                if queue.is_empty() {
                    queues.remove(&(waiter.db, key.clone()));
                }
            }
        }
        self.blocked.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Notes that `key` in logical database `db` may now feed waiters.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return;
        }
        if self.queues.lock().contains_key(&(db, Bytes::copy_from_slice(key))) {
            let mut ready = self.ready.lock();
            ready.push((db, Bytes::copy_from_slice(key)));
            self.any_ready.store(true, Ordering::Relaxed);
        }
    }

    /// Signals every key of a database (SWAPDB, FLUSHDB ...).
    pub fn signal_database(&self, db: usize) {
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let keys: Vec<_> = self.queues.lock().keys().filter(|(d, _)| *d == db).cloned().collect();
        let mut ready = self.ready.lock();
        ready.extend(keys);
        self.any_ready.store(true, Ordering::Relaxed);
    }

    /// The next signalled key, if any.
    pub fn next_ready(&self) -> Option<(usize, Bytes)> {
        if !self.any_ready.load(Ordering::Relaxed) {
            return None;
        }
        let mut ready = self.ready.lock();
        let next = ready.pop();
        if ready.is_empty() {
            self.any_ready.store(false, Ordering::Relaxed);
        }
        next
    }

    /// Every client waiting on a key, longest first.
    pub fn waiters(&self, db: usize, key: &Bytes) -> Vec<Arc<Waiter>> {
        self.queues.lock().get(&(db, key.clone())).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether the waiter is still waiting (not served, timed out or gone).
    pub fn is_blocked(&self, waiter: &Waiter) -> bool {
        self.by_client.lock().get(&waiter.client.id).is_some_and(|w| w.id == waiter.id)
    }

    /// Hands a waiter its outcome and forgets it.
    pub fn wake(&self, waiter: &Waiter, outcome: Wake) {
        if self.remove(waiter) {
            if let Some(sender) = waiter.wake.lock().take() {
                let _ = sender.send(outcome);
            }
        }
    }

    /// CLIENT UNBLOCK: returns whether the client was blocked.
    pub fn unblock(&self, client_id: u64, error: bool) -> bool {
        let Some(waiter) = self.by_client.lock().get(&client_id).cloned() else {
            return false;
        };
        let reply = error.then(|| Reply::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()));
        self.wake(&waiter, Wake::Unblocked(reply));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout(b"0").unwrap(), None);
        assert_eq!(parse_timeout(b"1.5").unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout(b"0.0001").unwrap(), Some(Duration::from_millis(1)));
        assert_eq!(parse_timeout(b"1e20").unwrap_err().to_string(), "ERR timeout is negative");
        assert_eq!(parse_timeout(b"-1").unwrap_err().to_string(), "ERR timeout is negative");
        assert_eq!(parse_timeout(b"abc").unwrap_err().to_string(), "ERR timeout is not a float or out of range");
        assert_eq!(parse_timeout(b"inf").unwrap_err().to_string(), "ERR timeout is negative");
    }
}
