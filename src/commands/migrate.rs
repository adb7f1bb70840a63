//! MIGRATE: keys move to another server as RESTORE commands carrying
//! DUMP payloads, and are deleted here once the target has taken them.
//! As in Redis the command holds its keys (here: their locks) while it
//! talks to the target, so nobody changes a key between its dump and its
//! delete; the connection to each target is kept for reuse.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::args::parse_int;
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::notify;
use crate::protocol::{encode_request, Reply};
use crate::rdb;

pub fn register(table: &mut CommandTable) {
    table.register("migrate", migrate);
}

/// Redis keeps at most this many target connections, each for this long
/// after its last use.
const CACHED_SOCKETS: usize = 64;
const SOCKET_IDLE: Duration = Duration::from_secs(10);
/// The request goes out in pieces of this size, as Redis writes it.
const WRITE_PIECE: usize = 64 * 1024;

/// Connections to MIGRATE targets by "host:port". A MIGRATE takes its
/// connection out while it uses it, so MIGRATEs to other targets run at
/// the same time.
#[derive(Default)]
pub struct MigrateSockets {
    idle: Mutex<HashMap<String, TargetLink>>,
}

struct TargetLink {
    reader: BufReader<TcpStream>,
    /// The database the target connection has selected (None: unknown).
    db: Option<i64>,
    last_use: Instant,
}

impl MigrateSockets {
    fn take(&self, target: &str) -> Option<TargetLink> {
        self.idle.lock().remove(target).filter(|link| link.last_use.elapsed() <= SOCKET_IDLE)
    }

    fn put_back(&self, target: String, mut link: TargetLink) {
        link.last_use = Instant::now();
        let mut idle = self.idle.lock();
        if idle.len() >= CACHED_SOCKETS && !idle.contains_key(&target) {
            let evicted = idle.keys().next().cloned();
            evicted.map(|name| idle.remove(&name));
        }
        idle.insert(target, link);
    }

    /// Closes connections unused for longer than Redis keeps them (cron).
    pub fn close_idle(&self) {
        self.idle.lock().retain(|_, link| link.last_use.elapsed() <= SOCKET_IDLE);
    }
}

struct Options {
    copy: bool,
    replace: bool,
    /// AUTH password or AUTH2 username password.
    auth: Option<(Option<Bytes>, Bytes)>,
    /// Where the keys are in argv.
    keys: std::ops::Range<usize>,
}

fn parse_options(argv: &[Bytes]) -> Result<Options, CmdError> {
    let mut options = Options { copy: false, replace: false, auth: None, keys: 3..4 };
    let mut i = 6;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let arg = &argv[i];
        if arg.eq_ignore_ascii_case(b"COPY") {
            options.copy = true;
        } else if arg.eq_ignore_ascii_case(b"REPLACE") {
            options.replace = true;
        } else if arg.eq_ignore_ascii_case(b"AUTH") && more >= 1 {
            options.auth = Some((None, argv[i + 1].clone()));
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"AUTH2") && more >= 2 {
            options.auth = Some((Some(argv[i + 1].clone()), argv[i + 2].clone()));
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"KEYS") {
            if !argv[3].is_empty() {
                return Err(CmdError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            options.keys = i + 1..argv.len();
            return Ok(options);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(options)
}

/// How talking to the target failed.
enum LinkError {
    Connect,
    Write,
    /// A read failed; `timed_out` rules out a retry, as in Redis.
    Read {
        timed_out: bool,
    },
}

impl LinkError {
    fn reply(&self) -> CmdError {
        CmdError::Custom(match self {
            LinkError::Connect => "IOERR error or timeout connecting to the client".into(),
            LinkError::Write => "IOERR error or timeout writing to target instance".into(),
            LinkError::Read { .. } => "IOERR error or timeout reading to target instance".into(),
        })
    }
}

fn connect(host: &str, port: &str, timeout: Duration) -> Result<TargetLink, LinkError> {
    let port: u16 = port.parse().map_err(|_| LinkError::Connect)?;
    let addrs = (host, port).to_socket_addrs().map_err(|_| LinkError::Connect)?;
    let mut failure = LinkError::Connect;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(TargetLink { reader: BufReader::new(stream), db: None, last_use: Instant::now() });
            }
            // Redis connects without blocking: a refusal shows when it
            // writes the request, and it says so.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => failure = LinkError::Write,
            Err(_) => {}
        }
    }
    Err(failure)
}

fn read_line(link: &mut TargetLink) -> Result<Vec<u8>, LinkError> {
    let mut line = Vec::new();
    match link.reader.read_until(b'\n', &mut line) {
        Ok(0) => Err(LinkError::Read { timed_out: false }),
        Ok(_) => {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            Ok(line)
        }
        Err(e) => Err(LinkError::Read { timed_out: matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) }),
    }
}

/// One key as it goes out: its name, milliseconds to live (0: none) and
/// DUMP payload.
struct Outgoing {
    key: Bytes,
    ttl_ms: u64,
    payload: Vec<u8>,
}

/// What the target said: the first error (AUTH's, SELECT's, then the
/// RESTOREs'), and which keys it restored.
struct Answer {
    error: Option<Vec<u8>>,
    restored: Vec<usize>,
}

/// Sends AUTH, SELECT and the RESTOREs in one request and reads the
/// replies. A read error after some replies came back still answers what
/// was restored (those keys are deleted here), with the error.
fn exchange(
    link: &mut TargetLink,
    options: &Options,
    db: i64,
    restore_command: &str,
    keys: &[Outgoing],
    timeout: Duration,
) -> (Answer, Option<LinkError>) {
    let mut request = Vec::new();
    if let Some((user, password)) = &options.auth {
        match user {
            Some(user) => encode_request(&[&b"AUTH"[..], user, password], &mut request),
            None => encode_request(&[&b"AUTH"[..], password], &mut request),
        }
    }
    let select = link.db != Some(db);
    if select {
        encode_request(&[b"SELECT".to_vec(), db.to_string().into_bytes()], &mut request);
    }
    for key in keys {
        let ttl = key.ttl_ms.to_string();
        let mut args: Vec<&[u8]> = vec![restore_command.as_bytes(), &key.key, ttl.as_bytes(), &key.payload];
        if options.replace {
            args.push(b"REPLACE");
        }
        encode_request(&args, &mut request);
    }
    let mut answer = Answer { error: None, restored: Vec::new() };
    let stream = link.reader.get_mut();
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.set_read_timeout(Some(timeout));
    for piece in request.chunks(WRITE_PIECE) {
        if stream.write_all(piece).is_err() {
            return (answer, Some(LinkError::Write));
        }
    }
    let mut leading = Vec::new();
    for _ in 0..(options.auth.is_some() as usize + select as usize) {
        match read_line(link) {
            Ok(line) => leading.push(line),
            Err(e) => return (answer, Some(e)),
        }
    }
    let leading_error = leading.into_iter().find(|line| line.first() == Some(&b'-'));
    for index in 0..keys.len() {
        let line = match read_line(link) {
            Ok(line) => line,
            Err(e) => return (answer, Some(e)),
        };
        if let Some(error) = leading_error.clone().or_else(|| (line.first() == Some(&b'-')).then_some(line)) {
            answer.error.get_or_insert(error);
        } else {
            answer.restored.push(index);
        }
    }
    (answer, None)
}

/// `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
/// [AUTH password | AUTH2 username password] [KEYS key [key ...]]`
fn migrate(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let options = parse_options(argv)?;
    let timeout = parse_int(&argv[5])?;
    let db = parse_int(&argv[4])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    let port = String::from_utf8_lossy(&argv[2]).into_owned();
    let target = format!("{host}:{port}");
    let server = ctx.server;
    let restore_command = if server.cluster.is_some() { "RESTORE-ASKING" } else { "RESTORE" };
    ctx.run(|tx| {
        let mut keys = Vec::new();
        for key in &argv[options.keys.clone()] {
            let Some(value) = super::dump::value_of(tx, key)? else { continue };
            let expire_ms = tx.meta(key)?.map_or(0, |meta| meta.expire_ms);
            let ttl_ms = if expire_ms == 0 { 0 } else { expire_ms.saturating_sub(tx.now_ms()).max(1) };
            keys.push(Outgoing { key: key.clone(), ttl_ms, payload: rdb::dump(&value) });
        }
        if keys.is_empty() {
            return Ok(Reply::Status("NOKEY"));
        }
        // A cached connection the target has closed fails at once: one
        // more try on a new connection, unless the target may have
        // restored something already.
        let mut may_retry = true;
        let (answer, failure) = loop {
            let mut link = match server.migrate_sockets.take(&target) {
                Some(link) => link,
                None => connect(&host, &port, timeout).map_err(|e| e.reply())?,
            };
            let (answer, failure) = exchange(&mut link, &options, db, restore_command, &keys, timeout);
            let nothing_back = answer.error.is_none() && answer.restored.is_empty();
            match failure {
                None => {
                    link.db = if answer.error.is_some() { None } else { Some(db) };
                    server.migrate_sockets.put_back(target.clone(), link);
                }
                Some(LinkError::Read { timed_out: false } | LinkError::Write) if may_retry && nothing_back => {
                    may_retry = false;
                    continue;
                }
                Some(_) => {}
            }
            break (answer, failure);
        };
        if !options.copy {
            for &index in &answer.restored {
                let key = &keys[index].key;
                tx.delete(key)?;
                tx.notify(notify::GENERIC, "del", key);
            }
        }
        if let Some(error) = answer.error {
            let text = String::from_utf8_lossy(&error[1..]);
            return Err(CmdError::err(format!("Target instance replied with error: {text}")));
        }
        match failure {
            Some(failure) => Err(failure.reply()),
            None => Ok(Reply::ok()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn options_are_parsed_as_redis_parses_them() {
        let options =
            parse_options(&argv(&["MIGRATE", "h", "1", "", "0", "5", "COPY", "AUTH2", "u", "p", "KEYS", "a"]))
                .ok()
                .unwrap();
        assert!(options.copy && !options.replace);
        assert_eq!(options.auth, Some((Some(Bytes::from("u")), Bytes::from("p"))));
        assert_eq!(options.keys, 11..12);
        let missing_password = parse_options(&argv(&["MIGRATE", "h", "1", "k", "0", "5", "AUTH"]));
        assert!(matches!(missing_password, Err(CmdError::Syntax)));
        let keyed = parse_options(&argv(&["MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a"]));
        assert!(matches!(keyed, Err(CmdError::Custom(text)) if text.contains("empty string")));
        assert!(matches!(parse_options(&argv(&["MIGRATE", "h", "1", "k", "0", "5", "NOPE"])), Err(CmdError::Syntax)));
    }
}
