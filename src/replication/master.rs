//! The master's side of a replica's link: once a connection has sent
//! PSYNC (or SYNC) it is handed here, off the connection threads, to a
//! thread of its own that writes the stream (a snapshot, then records as
//! the log writes them, and a time mark every second as a heartbeat) and a
//! second one that reads the replica's `REPLCONF ACK`s.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engines::log::{encode_frame_encoded, encode_mark_frame, LogReader};

use super::{render, AttachedReplica, STRATA_CAPA};
use crate::client::ClientShared;
use crate::protocol::encode_request;
use crate::server::Server;

/// What a replica asked for, and what it said of itself during the
/// handshake.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    /// PSYNC's replication id and offset (the first sequence it wants);
    /// None for SYNC (always a full sync).
    pub psync: Option<(String, i64)>,
    /// `REPLCONF ip-address` (`replica-announce-ip`), shown instead of the
    /// connection's address.
    pub announced_ip: Option<String>,
    pub listening_port: u16,
    pub capabilities: Vec<String>,
}

/// Heartbeats: a time mark this often when there is nothing to send.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Serves a replica on `socket` until it goes, CLIENT KILL ends it, or
/// this node's history changes. `client` is its connection in CLIENT LIST.
pub fn serve(server: Arc<Server>, socket: std::net::TcpStream, client: Arc<ClientShared>, request: SyncRequest) {
    let client_id = client.id;
    let ip = match &request.announced_ip {
        Some(ip) => ip.clone(),
        None => socket.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
    };
    // A replica that stops reading, or stops acknowledging, for
    // `repl-timeout` is let go (it reconnects and continues).
    let timeout = std::time::Duration::from_secs(server.config.read().number("repl-timeout").max(1) as u64);
    let _ = socket.set_write_timeout(Some(timeout));
    let replica = Arc::new(AttachedReplica {
        client_id,
        ip,
        port: request.listening_port,
        state: parking_lot::Mutex::new("wait_bgsave"),
        ack_seq: Default::default(),
        ack_ms: Default::default(),
        dropped: Default::default(),
        plain: (!request.capabilities.iter().any(|c| c == STRATA_CAPA)).then(Default::default),
    });
    let replication = &server.replication;
    server.keyspace.durability.repl_backlog_active.store(true, Ordering::Relaxed);
    replication.attach(replica.clone());
    let result = (|| {
        let reader = socket.try_clone()?;
        let acks = {
            let (server, replica) = (server.clone(), replica.clone());
            std::thread::Builder::new()
                .name("strata-repl-acks".into())
                .spawn(move || read_acks(&server, reader, &replica))?
        };
        let streamed = stream(&server, &socket, &client, &replica, &request, timeout);
        replica.dropped.store(true, Ordering::Release);
        let _ = socket.shutdown(std::net::Shutdown::Both);
        let _ = acks.join();
        streamed
    })();
    if let Err(e) = result {
        tracing::info!(replica = client_id, "replica link ended: {e}");
    }
    replication.detach(client_id);
    server.clients.remove(client_id);
}

/// Continues the replica from its log position if this node's log holds
/// what follows it, else sends a snapshot first; then records forever.
fn stream(
    server: &Server,
    mut socket: &TcpStream,
    client: &ClientShared,
    replica: &AttachedReplica,
    request: &SyncRequest,
    timeout: Duration,
) -> std::io::Result<()> {
    if replica.plain.is_some() {
        return stream_plain(server, socket, client, replica, request, timeout);
    }
    let keyspace = &server.keyspace;
    let replication = &server.replication;
    let ids = replication.ids();
    let continued = request.psync.as_ref().and_then(|(replid, first)| {
        let have = u64::try_from(*first - 1).ok()?;
        if !ids.continues(replid, have) || have > keyspace.log.last_seq() {
            return None;
        }
        keyspace.log.reader(have).ok()
    });
    let mut reader = match continued {
        Some(reader) => {
            replication.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            socket.write_all(format!("+CONTINUE {}\r\n", ids.replid).as_bytes())?;
            reader
        }
        None => {
            if request.psync.as_ref().is_some_and(|(replid, _)| replid != "?") {
                replication.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            }
            replication.sync_full.fetch_add(1, Ordering::Relaxed);
            full_sync(server, socket, replica, &ids.replid)?
        }
    };
    go_online(replica);
    let mut out = Vec::with_capacity(1 << 16);
    let mut last_sent = Instant::now();
    while still_linked(server, client, replica) {
        out.clear();
        while out.len() < 1 << 20 {
            match reader.next_record().map_err(std::io::Error::other)? {
                Some(record) => encode_frame_encoded(record.seq, &record.rocks, &record.mem_encoded, &mut out),
                None => break,
            }
        }
        check_acknowledging(replica, timeout)?;
        if out.is_empty() && last_sent.elapsed() >= HEARTBEAT {
            encode_mark_frame(strata_engines::now_ms(), &mut out);
        }
        if !out.is_empty() {
            if let Some(error) = strata_engines::faults::injected_error("repl-stream-send") {
                return Err(error);
            }
            socket.write_all(&out)?;
            server.stats.net_repl_output_bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
            last_sent = Instant::now();
            continue;
        }
        reader.wait(Duration::from_millis(100));
    }
    Ok(())
}

/// A replica that is not Strata (a Redis replica, `redis-cli --replica`):
/// always a full sync, of an empty RDB followed by the data as commands
/// (`render`), then each record as commands, with a PING every
/// `repl-ping-replica-period`. Its byte offsets map to sequences through
/// the marks kept as records go out.
fn stream_plain(
    server: &Server,
    socket: &TcpStream,
    client: &ClientShared,
    replica: &AttachedReplica,
    request: &SyncRequest,
    timeout: Duration,
) -> std::io::Result<()> {
    let keyspace = &server.keyspace;
    let replication = &server.replication;
    let plain = replica.plain.as_ref().expect("a plain replica");
    replication.sync_full.fetch_add(1, Ordering::Relaxed);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, socket);
    let sent = with_sync_snapshot(server, replica, |dir, seq| {
        plain.base.store(seq, Ordering::Release);
        if request.psync.is_some() {
            out.write_all(format!("+FULLRESYNC {} {seq}\r\n", replication.ids().replid).as_bytes())?;
        }
        out.write_all(format!("${}\r\n", render::EMPTY_RDB.len()).as_bytes())?;
        out.write_all(render::EMPTY_RDB)?;
        let recovered = crate::recovery::recover(dir, &Default::default(), &Default::default(), Duration::ZERO)
            .map_err(std::io::Error::other)?;
        let store = strata_engines::keyspace::Store::new(recovered.engine, keyspace.databases())
            .map_err(std::io::Error::other)?;
        let mut bytes = 0u64;
        let renderer = render::render_snapshot(&store, &recovered.shards, &mut |chunk| {
            bytes += chunk.len() as u64;
            out.write_all(chunk)?;
            chunk.clear();
            Ok(())
        })
        .map_err(std::io::Error::other)?;
        out.flush()?;
        Ok((renderer, bytes))
    });
    let (mut reader, (mut renderer, mut sent)) = sent?;
    let mut out = out.into_inner().map_err(|e| e.into_error())?;
    server.stats.net_repl_output_bytes.fetch_add(sent, Ordering::Relaxed);
    go_online(replica);
    let ping_every = Duration::from_secs(server.config.read().number("repl-ping-replica-period").max(1) as u64);
    let engine = &keyspace.store.engine;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut last_sent = Instant::now();
    while still_linked(server, client, replica) {
        buf.clear();
        let mut last_seq = None;
        while buf.len() < 1 << 20 {
            match reader.next_record().map_err(std::io::Error::other)? {
                Some(record) => {
                    renderer.record(engine, &record, &mut buf).map_err(std::io::Error::other)?;
                    last_seq = Some(record.seq);
                }
                None => break,
            }
        }
        if buf.is_empty() && last_sent.elapsed() >= ping_every {
            encode_request(&["PING"], &mut buf);
        }
        if plain.getack.swap(false, Ordering::AcqRel) {
            encode_request(&["REPLCONF", "GETACK", "*"], &mut buf);
        }
        if !buf.is_empty() {
            out.write_all(&buf)?;
            sent += buf.len() as u64;
            server.stats.net_repl_output_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            if let Some(seq) = last_seq {
                plain.marks.lock().push_back((sent, seq));
            }
            last_sent = Instant::now();
            continue;
        }
        // redis-cli --replica acknowledges nothing: only real replicas,
        // which acknowledge every second, are held to repl-timeout.
        if plain.acked.load(Ordering::Relaxed) {
            check_acknowledging(replica, timeout)?;
        }
        reader.wait(Duration::from_millis(100));
    }
    Ok(())
}

/// The replica has its data: records follow, and acknowledgements count.
fn go_online(replica: &AttachedReplica) {
    *replica.state.lock() = "online";
    replica.ack_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
}

/// Whether the link goes on: not dropped, killed or shut down.
fn still_linked(server: &Server, client: &ClientShared, replica: &AttachedReplica) -> bool {
    !replica.dropped.load(Ordering::Acquire) && !client.killed.load(Ordering::Acquire) && !server.is_shutting_down()
}

/// An error once the replica has acknowledged nothing for `timeout`.
fn check_acknowledging(replica: &AttachedReplica, timeout: Duration) -> std::io::Result<()> {
    let silent_ms = strata_engines::now_ms().saturating_sub(replica.ack_ms.load(Ordering::Relaxed));
    if silent_ms > timeout.as_millis() as u64 {
        return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no acknowledgement within repl-timeout"));
    }
    Ok(())
}

/// `+FULLRESYNC`, then a strict snapshot in Redis's `$EOF:<mark>`
/// framing; the reader of the records after it.
fn full_sync(
    server: &Server,
    mut socket: &TcpStream,
    replica: &AttachedReplica,
    replid: &str,
) -> std::io::Result<LogReader> {
    let (reader, ()) = with_sync_snapshot(server, replica, |dir, seq| {
        socket.write_all(format!("+FULLRESYNC {replid} {seq}\r\n").as_bytes())?;
        let mark = super::new_replid();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, socket);
        out.write_all(format!("$EOF:{mark}\r\n").as_bytes())?;
        let sent = super::transfer::send(dir, seq, &mut out)?;
        out.write_all(mark.as_bytes())?;
        out.flush()?;
        server.stats.net_repl_output_bytes.fetch_add(sent, Ordering::Relaxed);
        tracing::info!(replica = replica.client_id, seq, bytes = sent, "full sync sent");
        Ok(())
    })?;
    Ok(reader)
}

/// Takes a strict snapshot for `replica`'s full sync in a folder of its
/// own, gives `send` the folder and the snapshot's sequence, and removes
/// it; the reader of the records after the snapshot, and what `send` gave.
fn with_sync_snapshot<T>(
    server: &Server,
    replica: &AttachedReplica,
    send: impl FnOnce(&std::path::Path, u64) -> std::io::Result<T>,
) -> std::io::Result<(LogReader, T)> {
    let keyspace = &server.keyspace;
    let dir = crate::commands::snapshot::snapshots_dir(keyspace.data_dir()).join(format!("sync-{}", replica.client_id));
    let _ = std::fs::remove_dir_all(&dir);
    // The records after the snapshot stay while it is taken.
    let pin = keyspace.log.pin(keyspace.log.last_seq());
    let result = (|| {
        let manifest =
            crate::snapshot::take(keyspace, &dir, crate::snapshot::Level::Strict).map_err(std::io::Error::other)?;
        let reader = keyspace.log.reader(manifest.seq).map_err(std::io::Error::other)?;
        drop(pin);
        *replica.state.lock() = "send_bulk";
        Ok((reader, send(&dir, manifest.seq)?))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Reads `REPLCONF ACK <seq>` lines (RESP arrays) from the replica.
fn read_acks(server: &Server, socket: TcpStream, replica: &AttachedReplica) {
    let mut input = BufReader::new(socket);
    let mut line = String::new();
    let mut args: Vec<String> = Vec::new();
    let mut expected = 0usize;
    while !replica.dropped.load(Ordering::Acquire) {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_end();
        if let Some(count) = text.strip_prefix('*') {
            expected = count.parse().unwrap_or(0);
            args.clear();
            continue;
        }
        if text.starts_with('$') {
            continue;
        }
        args.push(text.to_string());
        if args.len() < expected {
            continue;
        }
        if let [command, sub, seq] = &args[..] {
            if command.eq_ignore_ascii_case("replconf") && sub.eq_ignore_ascii_case("ack") {
                if let Ok(mut seq) = seq.parse::<u64>() {
                    if let Some(plain) = &replica.plain {
                        seq = plain.seq_at(seq);
                    }
                    replica.ack_seq.fetch_max(seq, Ordering::AcqRel);
                    replica.ack_ms.store(strata_engines::now_ms(), Ordering::Relaxed);
                    server.replication.notify_acked();
                }
            }
        }
        args.clear();
    }
    replica.dropped.store(true, Ordering::Release);
}
