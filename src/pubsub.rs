//! Pub/sub: who listens to which channel, pattern and shard channel, and
//! the mailboxes that carry messages to their connections.
//!
//! A publisher puts each message in the mailbox of every subscribed
//! connection (in its own publishing order) and wakes it; the connection
//! encodes what its mailbox holds into its replies, in its protocol, while
//! idle or between its own requests. A mailbox past the `pubsub` class's
//! hard output limit closes its connection rather than grow (Redis's
//! `client-output-buffer-limit pubsub`), as the output buffer does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::glob::glob_match;
use crate::protocol::Reply;

/// A message waiting for a connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A published message (`message`, `pmessage` or `smessage`), framed
    /// once for every receiver: a RESP2 array and a RESP3 push.
    Published(Frames),
    /// A command some client ran, for a MONITOR client (Redis's line).
    Monitor(String),
    /// Keys a tracking client read changed (None: every key, a flush);
    /// `redirected`: sent to the client another one redirects to.
    Invalidate { keys: Option<Vec<Bytes>>, redirected: bool },
    /// The client a tracking client redirects to is gone.
    RedirectBroken(u64),
}

impl Message {
    /// As a connection in RESP3 (`resp3`) or in RESP2, subscribed to
    /// something or not (`subscribed`), is sent it: a push in RESP3, an
    /// array in RESP2; None for what such a connection cannot take (an
    /// invalidation in RESP2 reaches only a subscribed client redirected to).
    pub fn reply(&self, resp3: bool, subscribed: bool) -> Option<Reply> {
        let bulk = |b: &Bytes| Reply::Bulk(b.clone());
        let word = |w: &'static str| Reply::Bulk(Bytes::from_static(w.as_bytes()));
        Some(Reply::Push(match self {
            Message::Monitor(line) => return Some(Reply::StatusOwned(line.clone())),
            Message::Published(frames) => return Some(Reply::Encoded(frames.of(resp3).clone())),
            Message::Invalidate { keys, redirected } => {
                let keys = keys.as_ref().map_or(Reply::Nil, |keys| Reply::Array(keys.iter().map(bulk).collect()));
                match (resp3, redirected & subscribed) {
                    (true, _) => vec![word("invalidate"), keys],
                    (false, true) => vec![word("message"), word("__redis__:invalidate"), keys],
                    (false, false) => return None,
                }
            }
            Message::RedirectBroken(id) if resp3 => vec![word("tracking-redir-broken"), Reply::Integer(*id as i64)],
            Message::RedirectBroken(_) => return None,
        }))
    }

    /// Bytes it holds, as a mailbox counts them.
    fn size(&self) -> usize {
        match self {
            Message::Published(frames) => frames.resp2.len(),
            Message::Monitor(line) => line.len() + 16,
            Message::Invalidate { keys, .. } => keys.iter().flatten().map(|k| k.len() + 16).sum::<usize>() + 32,
            Message::RedirectBroken(_) => 40,
        }
    }
}

/// A push of bulk strings as each protocol frames it.
#[derive(Clone, Debug, PartialEq)]
pub struct Frames {
    resp2: Bytes,
    resp3: Bytes,
}

impl Frames {
    fn of_push(parts: &[&[u8]]) -> Frames {
        let resp2 = Reply::bulk_array(parts.len(), parts.iter().copied());
        let Reply::Encoded(resp2) = resp2 else { unreachable!("bulk_array encodes") };
        // The same bytes but the aggregate's type: `>` for a push.
        let mut resp3 = resp2.to_vec();
        resp3[0] = b'>';
        Frames { resp2, resp3: Bytes::from(resp3) }
    }

    fn of(&self, resp3: bool) -> &Bytes {
        if resp3 {
            &self.resp3
        } else {
            &self.resp2
        }
    }
}

/// A connection's messages on their way to it.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Message>>,
    bytes: AtomicUsize,
    /// Wakes the connection (a permit is kept when it is not waiting).
    pub arrived: tokio::sync::Notify,
}

impl Mailbox {
    /// Puts a message in; false (and nothing put) when the mailbox already
    /// holds `limit` bytes or more (0: no limit): its connection must close.
    fn deliver(&self, message: Message, limit: usize) -> bool {
        let size = message.size();
        if limit > 0 && self.bytes.load(Ordering::Relaxed) + size > limit {
            return false;
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        let mut queue = self.queue.lock();
        queue.push_back(message);
        // Only the first message wakes the connection: it takes all that
        // came by the time it runs (a wake per message cost a thread wake
        // each under a stream of PUBLISH).
        if queue.len() == 1 {
            self.arrived.notify_one();
        }
        true
    }

    /// Puts a message in whatever it holds (the connection's output limit
    /// bounds it once taken).
    pub fn push(&self, message: Message) {
        self.deliver(message, 0);
    }

    /// Everything waiting, oldest first.
    pub fn take(&self) -> Vec<Message> {
        let taken: Vec<Message> = self.queue.lock().drain(..).collect();
        let size: usize = taken.iter().map(Message::size).sum();
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        taken
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A subscribed connection: where its messages go, and how to close it.
#[derive(Clone)]
pub struct Subscriber {
    pub id: u64,
    pub mailbox: Arc<Mailbox>,
    /// Closes the connection (CLIENT KILL's way).
    pub kill: Arc<dyn Fn() + Send + Sync>,
}

/// The three kinds of subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

type Listeners = HashMap<Bytes, BTreeMap<u64, Subscriber>>;

/// Every subscription of every connection.
#[derive(Default)]
pub struct PubSub {
    channels: RwLock<Listeners>,
    patterns: RwLock<Listeners>,
    shard_channels: RwLock<Listeners>,
    /// The `pubsub` class's hard output limit (0: none), which mailboxes
    /// are held to.
    pub mailbox_limit: AtomicU64,
    /// Client-side caching (CLIENT TRACKING).
    pub tracking: crate::tracking::Tracking,
    /// MONITOR clients, and how many (read by every command).
    monitors: Mutex<BTreeMap<u64, Subscriber>>,
    monitor_count: AtomicUsize,
}

impl PubSub {
    /// Registries whose mailboxes hold up to `mailbox_limit` bytes (0:
    /// no limit).
    pub fn new(mailbox_limit: u64) -> PubSub {
        PubSub { mailbox_limit: AtomicU64::new(mailbox_limit), ..PubSub::default() }
    }

    fn listeners(&self, kind: Kind) -> &RwLock<Listeners> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    pub fn subscribe(&self, kind: Kind, name: &Bytes, subscriber: &Subscriber) {
        let mut listeners = self.listeners(kind).write();
        listeners.entry(name.clone()).or_default().insert(subscriber.id, subscriber.clone());
    }

    pub fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) {
        let mut listeners = self.listeners(kind).write();
        if let Some(subscribers) = listeners.get_mut(name) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                listeners.remove(name);
            }
        }
    }

    /// PUBLISH: to the channel's subscribers, then to those of every
    /// matching pattern; how many received it.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let mut receivers = self.to_subscribers(Kind::Channel, channel, &[b"message", channel, payload]);
        for (pattern, subscribers) in self.patterns.read().iter() {
            if glob_match(pattern, channel, false) {
                let frames = Frames::of_push(&[b"pmessage", pattern, channel, payload]);
                for subscriber in subscribers.values() {
                    receivers += self.deliver(subscriber, Message::Published(frames.clone()));
                }
            }
        }
        receivers
    }

    /// SPUBLISH: to the shard channel's subscribers.
    pub fn spublish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        self.to_subscribers(Kind::Shard, channel, &[b"smessage", channel, payload])
    }

    /// The push of `parts` to each subscriber of a channel or shard
    /// channel; how many.
    fn to_subscribers(&self, kind: Kind, channel: &Bytes, parts: &[&[u8]]) -> usize {
        let listeners = self.listeners(kind).read();
        let Some(subscribers) = listeners.get(channel) else { return 0 };
        let frames = Frames::of_push(parts);
        subscribers.values().map(|subscriber| self.deliver(subscriber, Message::Published(frames.clone()))).sum()
    }

    /// Counts a message as received, as Redis does, also when the mailbox
    /// is full and its connection is closed for it.
    fn deliver(&self, subscriber: &Subscriber, message: Message) -> usize {
        let limit = self.mailbox_limit.load(Ordering::Relaxed) as usize;
        if !subscriber.mailbox.deliver(message, limit) {
            tracing::warn!(client = subscriber.id, "client closed for overcoming of output buffer limits");
            (subscriber.kill)();
        }
        1
    }

    /// Makes a client a MONITOR; false if it is one already.
    pub fn add_monitor(&self, subscriber: Subscriber) -> bool {
        let mut monitors = self.monitors.lock();
        let added = monitors.insert(subscriber.id, subscriber).is_none();
        self.monitor_count.store(monitors.len(), Ordering::Relaxed);
        added
    }

    pub fn remove_monitor(&self, id: u64) {
        let mut monitors = self.monitors.lock();
        monitors.remove(&id);
        self.monitor_count.store(monitors.len(), Ordering::Relaxed);
    }

    pub fn has_monitors(&self) -> bool {
        self.monitor_count.load(Ordering::Relaxed) > 0
    }

    /// Shows a command to every MONITOR client: `db` and `peer` (the
    /// client's address) as Redis shows them.
    pub fn feed_monitors(&self, db: usize, peer: &str, argv: &[Bytes]) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut line = format!("{}.{:06} [{db} {peer}]", now.as_secs(), now.subsec_micros());
        for arg in argv {
            line.push(' ');
            line.push_str(&repr(arg));
        }
        for monitor in self.monitors.lock().values() {
            self.deliver(monitor, Message::Monitor(line.clone()));
        }
    }

    /// Channels (or shard channels) with a subscriber, matching `pattern`.
    pub fn active(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let listeners = self.listeners(kind).read();
        let matching = |name: &&Bytes| pattern.is_none_or(|p| glob_match(p, name, false));
        listeners.keys().filter(matching).cloned().collect()
    }

    /// How many channels, patterns or shard channels have a subscriber
    /// (PUBSUB NUMPAT counts patterns).
    pub fn active_count(&self, kind: Kind) -> usize {
        self.listeners(kind).read().len()
    }

    /// Subscribers of a channel (or shard channel).
    pub fn count(&self, kind: Kind, name: &[u8]) -> usize {
        self.listeners(kind).read().get(name).map_or(0, BTreeMap::len)
    }
}

/// `bytes` quoted as Redis's `sdscatrepr` quotes them.
pub fn repr(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_quotes_as_redis_does() {
        assert_eq!(repr(b"set"), "\"set\"");
        assert_eq!(repr(b"a b\"c\\\r\n\t\x07\x08\x00\xff"), "\"a b\\\"c\\\\\\r\\n\\t\\a\\b\\x00\\xff\"");
    }
}
