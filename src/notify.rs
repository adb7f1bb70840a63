//! Keyspace notifications (`notify-keyspace-events`): commands report
//! what they did to each key (`Tx::notify`), and once their transaction
//! commits, while it still holds its keys, each event is published on
//! `__keyspace@<db>__:<key>` (the event's name as the message) and on
//! `__keyevent@<db>__:<event>` (the key as the message), as the classes
//! configured ask. Events of a key therefore follow its commits' order.

use bytes::Bytes;

use crate::pubsub::PubSub;

/// Event classes and where they go, as Redis numbers them.
pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 13;
pub const NEW: u32 = 1 << 14;
/// `A`: every class but key misses and new keys.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The flags a `notify-keyspace-events` value sets, or None for a
/// character that names no class.
pub fn parse_flags(text: &str) -> Option<u32> {
    text.chars().try_fold(0, |flags, c| {
        Some(
            flags
                | match c {
                    'A' => ALL,
                    'g' => GENERIC,
                    '$' => STRING,
                    'l' => LIST,
                    's' => SET,
                    'h' => HASH,
                    'z' => ZSET,
                    'x' => EXPIRED,
                    'e' => EVICTED,
                    'K' => KEYSPACE,
                    'E' => KEYEVENT,
                    't' => STREAM,
                    'm' => KEY_MISS,
                    'd' => MODULE,
                    'n' => NEW,
                    _ => return None,
                },
        )
    })
}

/// The value kept for `flags`: what CONFIG GET shows, and `n` where that
/// hides it (after `A`), so that it reads back as the same flags.
pub fn stored_flags(flags: u32) -> String {
    let mut out = format_flags(flags);
    if flags & ALL == ALL && flags & NEW != 0 {
        out.push('n');
    }
    out
}

/// The value CONFIG GET shows for `flags`, in Redis's order (as Redis's,
/// it shows no `n` after `A`).
pub fn format_flags(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        let classes = [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ];
        out.extend(classes.iter().filter(|(class, _)| flags & class != 0).map(|(_, c)| c));
    }
    out.extend(
        [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')].iter().filter(|(f, _)| flags & f != 0).map(|(_, c)| c),
    );
    out
}

/// What a command did to a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub class: u32,
    pub event: &'static str,
    /// The logical database.
    pub db: usize,
    pub key: Bytes,
}

/// Publishes committed events as `flags` asks.
pub fn publish(pubsub: &PubSub, flags: u32, events: &[KeyEvent]) {
    for event in events.iter().filter(|e| flags & e.class != 0) {
        let name = Bytes::from_static(event.event.as_bytes());
        if flags & KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{}__:", event.db).into_bytes();
            channel.extend_from_slice(&event.key);
            pubsub.publish(&Bytes::from(channel), &name);
        }
        if flags & KEYEVENT != 0 {
            let channel = Bytes::from(format!("__keyevent@{}__:{}", event.db, event.event));
            pubsub.publish(&channel, &event.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_show_as_redis_does() {
        assert_eq!(format_flags(parse_flags("KEA").unwrap()), "AKE");
        assert_eq!(format_flags(parse_flags("Ex").unwrap()), "xE");
        assert_eq!(format_flags(parse_flags("zl$gK").unwrap()), "g$lzK");
        // As Redis shows it: `A` hides `n`.
        assert_eq!(format_flags(parse_flags("Anm").unwrap()), "Am");
        assert_eq!(format_flags(parse_flags("").unwrap()), "");
        assert_eq!(parse_flags("Kq"), None);
        assert_eq!(format_flags(parse_flags("g$lshzxetd").unwrap()), "A");
        let flags = parse_flags("KEAn").unwrap();
        assert_eq!(parse_flags(&stored_flags(flags)), Some(flags), "kept whole");
    }
}
