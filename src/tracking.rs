//! Client-side caching (CLIENT TRACKING): the server remembers which keys
//! each tracking client read and tells it when one changes (Redis's
//! `invalidate` push, or a `__redis__:invalidate` message to the client
//! it redirects to), or, in BCAST mode, tells it of every change to keys
//! under its prefixes. Invalidations travel through the clients'
//! mailboxes (`crate::pubsub`), after the reply of the command that made
//! the change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use std::sync::{Arc, Weak};

use crate::client::ClientShared;
use crate::pubsub::Message;

thread_local! {
    /// The client whose command runs on this thread (0: none), for NOLOOP.
    static RUNNING: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `command` as client `id`'s: the keys it changes are its own.
pub fn running_as<R>(id: u64, command: impl FnOnce() -> R) -> R {
    let outer = RUNNING.replace(id);
    let result = command();
    RUNNING.set(outer);
    result
}

/// The client whose command runs on this thread, if any.
pub fn running() -> Option<u64> {
    Some(RUNNING.get()).filter(|&id| id != 0)
}

/// A tracking client's mode (CLIENT TRACKING ON's options).
#[derive(Clone)]
pub struct Mode {
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Bytes>,
}

struct Tracker {
    mode: Mode,
    client: Arc<ClientShared>,
    /// The client invalidations go to instead (REDIRECT), while it lives.
    redirect_to: Option<Weak<ClientShared>>,
}

#[derive(Default)]
struct State {
    /// Key → the clients that read it since it last changed.
    keys: HashMap<Bytes, BTreeSet<u64>>,
    /// Every tracking client.
    clients: BTreeMap<u64, Tracker>,
}

/// The tracking table, bounded by `tracking-table-max-keys`.
#[derive(Default)]
pub struct Tracking {
    state: Mutex<State>,
    /// Tracking clients (every command checks it first).
    active: AtomicUsize,
    /// Clients remembered across keys (INFO's `tracking_total_items`).
    items: AtomicUsize,
    pub max_keys: AtomicU64,
}

impl Tracking {
    /// INFO's `tracking_clients`.
    pub fn client_count(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Turns tracking on for `client` (`redirect_to`: the client of
    /// `mode.redirect`, which exists now).
    pub fn enable(&self, client: Arc<ClientShared>, mode: Mode, redirect_to: Option<&Arc<ClientShared>>) {
        client.tracking.show(&mode);
        let redirect_to = redirect_to.map(Arc::downgrade);
        let mut state = self.state.lock();
        state.clients.insert(client.id, Tracker { mode, client, redirect_to });
        self.active.store(state.clients.len(), Ordering::Relaxed);
    }

    pub fn disable(&self, client: &ClientShared) {
        client.tracking.hide();
        let mut state = self.state.lock();
        state.clients.remove(&client.id);
        self.active.store(state.clients.len(), Ordering::Relaxed);
    }

    /// The client's mode, if it tracks.
    pub fn mode(&self, id: u64) -> Option<Mode> {
        self.state.lock().clients.get(&id).map(|t| t.mode.clone())
    }

    /// Remembers that client `id` read `keys` (default mode only).
    pub fn remember(&self, id: u64, keys: &[&[u8]]) {
        let mut state = self.state.lock();
        for key in keys {
            let readers = state.keys.entry(Bytes::copy_from_slice(key)).or_default();
            if readers.insert(id) {
                self.items.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Over the limit: keys are forgotten, their readers told, as if
        // they changed (Redis evicts at random too).
        let max = self.max_keys.load(Ordering::Relaxed) as usize;
        while max > 0 && state.keys.len() > max {
            let Some(key) = state.keys.keys().next().cloned() else { break };
            self.invalidate_key(&mut state, &key, None);
        }
    }

    /// Keys changed by client `by` (None: the server itself, as expiry):
    /// every client that read one is told, and BCAST clients of the
    /// prefixes they fall under.
    pub fn invalidate(&self, keys: &[Bytes], by: Option<u64>) {
        let mut state = self.state.lock();
        for key in keys {
            self.invalidate_key(&mut state, key, by);
        }
        for tracker in state.clients.values().filter(|t| t.mode.bcast) {
            let mut matching: Vec<Bytes> = keys
                .iter()
                .filter(|key| tracker.mode.prefixes.iter().any(|p| key.starts_with(p)))
                .filter(|_| !(tracker.mode.noloop && by == Some(tracker.client.id)))
                .cloned()
                .collect();
            matching.sort();
            matching.dedup();
            if !matching.is_empty() {
                send(tracker, Some(matching));
            }
        }
    }

    fn invalidate_key(&self, state: &mut State, key: &[u8], by: Option<u64>) {
        let Some(readers) = state.keys.remove(key) else { return };
        self.items.fetch_sub(readers.len(), Ordering::Relaxed);
        for id in readers {
            let Some(tracker) = state.clients.get(&id) else { continue };
            if tracker.mode.bcast || (tracker.mode.noloop && by == Some(id)) {
                continue;
            }
            send(tracker, Some(vec![Bytes::copy_from_slice(key)]));
        }
    }

    /// FLUSHDB and FLUSHALL: every tracking client is told everything
    /// changed (a null invalidation), and the table is emptied.
    pub fn flush(&self) {
        let mut state = self.state.lock();
        state.keys.clear();
        self.items.store(0, Ordering::Relaxed);
        for tracker in state.clients.values() {
            send(tracker, None);
        }
    }

    /// INFO's `tracking_total_keys`, `tracking_total_items` and
    /// `tracking_total_prefixes`.
    pub fn totals(&self) -> (usize, usize, usize) {
        let state = self.state.lock();
        let prefixes: BTreeSet<&Bytes> =
            state.clients.values().filter(|t| t.mode.bcast).flat_map(|t| &t.mode.prefixes).collect();
        (state.keys.len(), self.items.load(Ordering::Relaxed), prefixes.len())
    }
}

/// Sends an invalidation (None: of everything) to a tracking client, or to
/// the client it redirects to; a redirection to a client gone is reported
/// to the tracking client instead (RESP3), which shows it (flag `R`).
fn send(tracker: &Tracker, keys: Option<Vec<Bytes>>) {
    let Some(redirect_to) = &tracker.redirect_to else {
        tracker.client.mailbox.push(Message::Invalidate { keys, redirected: false });
        return;
    };
    match redirect_to.upgrade() {
        Some(target) => target.mailbox.push(Message::Invalidate { keys, redirected: true }),
        None => {
            tracker.client.tracking.broken.store(true, Ordering::Relaxed);
            tracker.client.mailbox.push(Message::RedirectBroken(tracker.mode.redirect));
        }
    }
}

/// What CLIENT LIST shows of a client's tracking (flags `t`, `B`, `R`,
/// `redir=`).
#[derive(Default)]
pub struct Shown {
    pub on: std::sync::atomic::AtomicBool,
    pub bcast: std::sync::atomic::AtomicBool,
    pub broken: std::sync::atomic::AtomicBool,
    pub redirect: AtomicU64,
}

impl Shown {
    fn show(&self, mode: &Mode) {
        self.on.store(true, Ordering::Relaxed);
        self.bcast.store(mode.bcast, Ordering::Relaxed);
        self.broken.store(false, Ordering::Relaxed);
        self.redirect.store(mode.redirect, Ordering::Relaxed);
    }

    fn hide(&self) {
        self.on.store(false, Ordering::Relaxed);
        self.bcast.store(false, Ordering::Relaxed);
        self.broken.store(false, Ordering::Relaxed);
    }

    /// CLIENT LIST's `redir`: the client redirected to, 0 for none, -1
    /// when not tracking.
    pub fn redirect_field(&self) -> i64 {
        match self.on.load(Ordering::Relaxed) {
            true => self.redirect.load(Ordering::Relaxed) as i64,
            false => -1,
        }
    }
}
