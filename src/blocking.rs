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
    pub keys: Vec<Bytes>,
    /// Served on its own (XREAD): one waiter finding nothing does not stop
    /// the ones behind it from being tried.
    pub independent: bool,
    state: Mutex<WaiterState>,
}

/// Where a waiter is. With several io-threads two writers, or a writer
/// and the waiter's timeout, disconnect or CLIENT UNBLOCK, can reach one
/// waiter at once: it moves from state to state under its lock, so it gets
/// exactly one outcome and no writer takes data for a reply nobody gets.
enum WaiterState {
    /// In the queues; the sender delivers its outcome.
    Waiting(oneshot::Sender<Wake>),
    /// A writer is running its command on its behalf (`Blocking::claim`).
    /// The lock is not held meanwhile: the command takes shard locks, and
    /// EXEC may run CLIENT UNBLOCK with every shard locked.
    Claimed {
        sender: oneshot::Sender<Wake>,
        /// Its timeout, disconnect or CLIENT UNBLOCK came meanwhile: the
        /// outcome if the command finds nothing.
        ending: Option<Wake>,
        /// Another writer found it claimed: that writer's data may still
        /// be there when the command finds nothing.
        missed: bool,
    },
    /// It has its outcome, or its connection is gone.
    Done,
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
            state: Mutex::new(WaiterState::Waiting(sender)),
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

    /// Ends a wait from the waiter's side (timeout, disconnect, shutdown).
    /// True when it was waiting; false when it already has its outcome, or
    /// a writer is running its command: then the outcome arrives through
    /// the wake channel (the reply, or a timeout if it finds nothing).
    pub fn remove(&self, waiter: &Waiter) -> bool {
        let mut state = waiter.state.lock();
        match &mut *state {
            WaiterState::Waiting(_) => {
                *state = WaiterState::Done;
                drop(state);
                self.forget(waiter);
                true
            }
            WaiterState::Claimed { ending, .. } => {
                ending.get_or_insert(Wake::Unblocked(None));
                false
            }
            WaiterState::Done => false,
        }
    }

    /// Whether `waiter` still waits for its outcome.
    pub fn is_waiting(&self, waiter: &Waiter) -> bool {
        matches!(*waiter.state.lock(), WaiterState::Waiting(_))
    }

    /// Takes a waiter for a writer to run its command on its behalf. False
    /// when it already has its outcome or another writer holds it.
    pub fn claim(&self, waiter: &Waiter) -> bool {
        let mut state = waiter.state.lock();
        match std::mem::replace(&mut *state, WaiterState::Done) {
            WaiterState::Waiting(sender) => {
                *state = WaiterState::Claimed { sender, ending: None, missed: false };
                true
            }
            WaiterState::Claimed { sender, ending, .. } => {
                *state = WaiterState::Claimed { sender, ending, missed: true };
                false
            }
            WaiterState::Done => false,
        }
    }

    /// A claimed waiter's command ran: it gets the reply.
    pub fn serve(&self, waiter: &Waiter, reply: Reply) {
        let state = std::mem::replace(&mut *waiter.state.lock(), WaiterState::Done);
        if let WaiterState::Claimed { sender, .. } = state {
            self.forget(waiter);
            let _ = sender.send(Wake::Served(reply));
        }
    }

    /// A claimed waiter's command found nothing: it waits on, unless its
    /// wait ended meanwhile. If another writer found it claimed, its keys
    /// are signalled again so that writer's data is not left unserved.
    pub fn release(&self, waiter: &Waiter) {
        let mut state = waiter.state.lock();
        let WaiterState::Claimed { sender, ending, missed } = std::mem::replace(&mut *state, WaiterState::Done) else {
            return;
        };
        match ending {
            Some(outcome) => {
                drop(state);
                self.forget(waiter);
                let _ = sender.send(outcome);
            }
            None => {
                *state = WaiterState::Waiting(sender);
                drop(state);
                if missed {
                    for key in &waiter.keys {
                        self.signal(waiter.db, key);
                    }
                }
            }
        }
    }

    /// Takes a waiter that has its outcome out of every queue.
    fn forget(&self, waiter: &Waiter) {
        let mut by_client = self.by_client.lock();
        if by_client.get(&waiter.client.id).is_some_and(|w| w.id == waiter.id) {
            by_client.remove(&waiter.client.id);
        }
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

    /// CLIENT UNBLOCK: returns whether the client was blocked. A client a
    /// writer is serving right now gets the reply if its command finds
    /// data, and this outcome if not.
    pub fn unblock(&self, client_id: u64, error: bool) -> bool {
        let Some(waiter) = self.by_client.lock().get(&client_id).cloned() else {
            return false;
        };
        let outcome =
            Wake::Unblocked(error.then(|| Reply::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())));
        self.end(&waiter, outcome)
    }

    /// Cluster mode: ends with the error `moved` gives the waits of clients
    /// whose keys this node no longer serves (Redis's
    /// clusterRedirectBlockedClientIfNeeded: -MOVED, -CLUSTERDOWN).
    pub fn redirect(&self, moved: impl Fn(&Waiter) -> Option<Reply>) {
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let waiters: Vec<Arc<Waiter>> = self.by_client.lock().values().cloned().collect();
        for waiter in waiters.iter().filter(|w| !w.keys.is_empty()) {
            if let Some(error) = moved(waiter) {
                self.end(waiter, Wake::Unblocked(Some(error)));
            }
        }
    }

    /// Ends a wait with `outcome`; whether it was still waiting.
    fn end(&self, waiter: &Arc<Waiter>, outcome: Wake) -> bool {
        let mut state = waiter.state.lock();
        match std::mem::replace(&mut *state, WaiterState::Done) {
            WaiterState::Waiting(sender) => {
                drop(state);
                self.forget(waiter);
                let _ = sender.send(outcome);
                true
            }
            WaiterState::Claimed { sender, mut ending, missed } => {
                ending.get_or_insert(outcome);
                *state = WaiterState::Claimed { sender, ending, missed };
                true
            }
            WaiterState::Done => false,
        }
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
