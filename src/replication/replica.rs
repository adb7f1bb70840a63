//! The replica's side: a thread that connects to the master, speaks
//! Redis's handshake (PING, AUTH, REPLCONF listening-port and capa, PSYNC),
//! loads a full sync's snapshot when the master sends one, then applies
//! the master's records as they come and acknowledges them
//! (`REPLCONF ACK <seq>`). It reconnects after any failure, once a second,
//! until REPLICAOF changes the master (the epoch moves on).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strata_engines::log::{decode_stream_frame, FsyncPolicy, StreamFrame};

use super::{MasterAddr, STRATA_CAPA};
use crate::loading::LoadingProgress;
use crate::protocol::encode_request;
use crate::server::Server;

/// How often the link looks at its epoch and sends an ACK when idle.
const TICK: Duration = Duration::from_secs(1);

/// Starts the link thread for replication epoch `epoch`.
pub fn start(server: Arc<Server>, epoch: u64) {
    let spawned = std::thread::Builder::new().name("strata-replica".into()).spawn(move || run(&server, epoch));
    if let Err(e) = spawned {
        tracing::error!("starting the replication link: {e}");
    }
}

fn current(server: &Server, epoch: u64) -> bool {
    server.replication.epoch.load(Ordering::Acquire) == epoch && !server.is_shutting_down()
}

fn run(server: &Server, epoch: u64) {
    let link = &server.replication.link;
    while current(server, epoch) {
        let Some(master) = server.replication.master() else { return };
        *link.state.lock() = "connecting";
        if let Err(e) = follow(server, &master, epoch) {
            tracing::warn!(master = %format!("{}:{}", master.host, master.port), "replication link: {e}");
        }
        *link.state.lock() = "connect";
        let _ = link.down_since_ms.compare_exchange(0, strata_engines::now_ms(), Ordering::AcqRel, Ordering::Relaxed);
        let retry_at = Instant::now() + TICK;
        while current(server, epoch) && Instant::now() < retry_at {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A failed link: why, in a log line.
type LinkResult<T> = Result<T, String>;

/// The link's socket: requests out, replies and the stream in.
struct Link {
    input: BufReader<TcpStream>,
    output: TcpStream,
}

impl Link {
    fn call(&mut self, args: &[&str]) -> LinkResult<String> {
        let mut request = Vec::new();
        encode_request(args, &mut request);
        self.output.write_all(&request).map_err(|e| format!("sending {}: {e}", args[0]))?;
        self.line()
    }

    fn line(&mut self) -> LinkResult<String> {
        let mut line = String::new();
        match self.input.read_line(&mut line) {
            Ok(0) => Err("the master closed the connection".into()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(format!("reading from the master: {e}")),
        }
    }
}

/// One connection to the master, from the handshake until it fails.
fn follow(server: &Server, master: &MasterAddr, epoch: u64) -> LinkResult<()> {
    let (config_timeout, port, announced_ip, auth) = {
        let config = server.config.read();
        let timeout = config.get("repl-timeout").and_then(|t| t.parse().ok()).unwrap_or(60u64);
        let auth = config.get("masterauth").filter(|p| !p.is_empty()).map(str::to_string);
        let port = match config.number("replica-announce-port") {
            0 => server.port.load(Ordering::Relaxed),
            announced => announced as u16,
        };
        let ip = config.get("replica-announce-ip").filter(|ip| !ip.is_empty()).map(str::to_string);
        (Duration::from_secs(timeout.max(1)), port, ip, auth)
    };
    let address = (master.host.as_str(), master.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving the master: {e}"))?
        .next()
        .ok_or("the master's address resolves to nothing")?;
    let socket = TcpStream::connect_timeout(&address, config_timeout).map_err(|e| format!("connecting: {e}"))?;
    let _ = socket.set_nodelay(true);
    socket.set_read_timeout(Some(config_timeout)).map_err(|e| e.to_string())?;
    let mut link = Link { input: BufReader::new(socket.try_clone().map_err(|e| e.to_string())?), output: socket };
    let pong = link.call(&["PING"])?;
    // Redis's rule: an authentication error here is no failure (AUTH follows).
    if !(pong.starts_with('+') || pong.starts_with("-NOAUTH") || pong.starts_with("-NOPERM")) {
        return Err(format!("the master answered PING with {pong}"));
    }
    if let Some(password) = &auth {
        let reply = link.call(&["AUTH", password])?;
        if !reply.starts_with('+') {
            return Err(format!("authenticating with the master: {reply}"));
        }
    }
    let reply = link.call(&["REPLCONF", "listening-port", &port.to_string()])?;
    if !reply.starts_with('+') {
        return Err(format!("REPLCONF listening-port: {reply}"));
    }
    if let Some(ip) = &announced_ip {
        let reply = link.call(&["REPLCONF", "ip-address", ip])?;
        if !reply.starts_with('+') {
            return Err(format!("REPLCONF ip-address: {reply}"));
        }
    }
    let reply = link.call(&["REPLCONF", "capa", "eof", "capa", "psync2", "capa", STRATA_CAPA])?;
    if !reply.starts_with('+') {
        return Err(format!("REPLCONF capa: {reply}"));
    }
    let keyspace = &server.keyspace;
    let replication = &server.replication;
    let ids = replication.ids();
    let last = keyspace.log.last_seq();
    // A node with no history asks for everything, as a new Redis replica does.
    let (replid, first) = match last {
        0 => ("?".to_string(), "-1".to_string()),
        _ => (ids.replid.clone(), (last + 1).to_string()),
    };
    let reply = link.call(&["PSYNC", &replid, &first])?;
    let words: Vec<&str> = reply.split_whitespace().collect();
    match words[..] {
        ["+FULLRESYNC", replid, _] => {
            *replication.link.state.lock() = "sync";
            let seq = full_sync(server, &mut link, epoch)?;
            replication.set_ids(|ids| {
                *ids = super::ReplIds { replid: replid.to_string(), replid2: "0".repeat(40), second_repl_offset: -1 };
            });
            tracing::info!(seq, "full sync from the master loaded");
        }
        ["+CONTINUE"] => {}
        ["+CONTINUE", replid] => {
            if replid != ids.replid {
                replication.set_ids(|ids| ids.shift(replid.to_string(), last));
            }
        }
        _ => return Err(format!("the master answered PSYNC with {reply}")),
    }
    let link_state = &replication.link;
    *link_state.state.lock() = "connected";
    link_state.down_since_ms.store(0, Ordering::Release);
    link_state.last_io_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
    link.output.set_read_timeout(Some(TICK)).map_err(|e| e.to_string())?;
    apply_stream(server, &mut link, epoch, config_timeout)
}

/// Reads a full sync's snapshot into a `sync-<epoch>` folder of the data
/// directory and loads it; the sequence it holds.
fn full_sync(server: &Server, link: &mut Link, epoch: u64) -> LinkResult<u64> {
    let header = link.line()?;
    let mark = header
        .strip_prefix("$EOF:")
        .filter(|m| m.len() == 40)
        .ok_or_else(|| format!("the master sent {header:?} where a snapshot was expected (not a Strata master?)"))?;
    let mark = mark.to_string();
    // Per epoch: the link of an older REPLICAOF may still be receiving.
    let dir = server.keyspace.data_dir().join(format!("sync-{epoch}"));
    let _ = std::fs::remove_dir_all(&dir);
    let link_state = &server.replication.link;
    link_state.sync_started_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
    let received = super::transfer::receive(&mut link.input, &dir, |read| {
        link_state.sync_read_bytes.store(read, Ordering::Relaxed);
        link_state.last_io_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
    });
    let result = (|| {
        let seq = received.map_err(|e| format!("receiving the snapshot: {e}"))?;
        let mut end = vec![0u8; 40];
        link.input.read_exact(&mut end).map_err(|e| format!("reading the snapshot's end: {e}"))?;
        if end != mark.as_bytes() {
            return Err("the snapshot's end mark does not match".to_string());
        }
        if !current(server, epoch) {
            return Err("REPLICAOF changed the master during the sync".to_string());
        }
        // Replicas of this node hold what is about to be replaced.
        server.replication.drop_replicas();
        let loaded = server
            .keyspace
            .load_synced(&dir, &LoadingProgress::default())
            .map_err(|e| format!("loading the snapshot: {e}"))?;
        if loaded != seq {
            return Err(format!("the snapshot holds sequence {loaded}, the master said {seq}"));
        }
        Ok(seq)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Applies the master's records as they arrive, acknowledging them.
fn apply_stream(server: &Server, link: &mut Link, epoch: u64, timeout: Duration) -> LinkResult<()> {
    let keyspace = &server.keyspace;
    let link_state = &server.replication.link;
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut acked = 0u64;
    let mut last_ack = Instant::now();
    let mut last_read = Instant::now();
    while current(server, epoch) {
        buf.reserve(1 << 16);
        let start = buf.len();
        buf.resize(buf.capacity(), 0);
        let read = match link.input.read(&mut buf[start..]) {
            Ok(0) => return Err("the master closed the connection".into()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => 0,
            Err(e) => return Err(format!("reading from the master: {e}")),
        };
        buf.truncate(start + read);
        if read > 0 {
            last_read = Instant::now();
            link_state.last_io_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
            server.stats.net_repl_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
        } else if last_read.elapsed() > timeout {
            return Err("timeout: nothing from the master within repl-timeout".into());
        }
        let mut frames: Bytes = buf.split().freeze();
        loop {
            match decode_stream_frame(&frames) {
                Ok(Some((frame, len))) => {
                    if let StreamFrame::Record(record) = frame {
                        keyspace.apply_replicated(&record).map_err(|e| format!("applying a record: {e}"))?;
                    }
                    let _ = frames.split_to(len);
                }
                Ok(None) => break,
                Err(what) => return Err(format!("the master's stream is damaged: {what}")),
            }
        }
        buf.extend_from_slice(&frames);
        let last = keyspace.log.last_seq();
        if last != acked || last_ack.elapsed() >= TICK {
            // Acknowledged once this node's own log holds them as its
            // appendfsync says: a WAIT counts them as kept.
            keyspace.log.write_through(last).map_err(|e| e.to_string())?;
            if keyspace.log.policy() == FsyncPolicy::Always {
                keyspace.log.sync_now().map_err(|e| e.to_string())?;
            }
            let mut ack = Vec::new();
            encode_request(&["REPLCONF", "ACK", &last.to_string()], &mut ack);
            link.output.write_all(&ack).map_err(|e| format!("acknowledging: {e}"))?;
            acked = last;
            last_ack = Instant::now();
        }
    }
    Ok(())
}
