//! Replication commands: REPLICAOF (SLAVEOF), ROLE, and the replica's
//! handshake on the master's side (REPLCONF, PSYNC, SYNC). PSYNC and SYNC
//! hand the connection to the replication module (`replication::master`).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::parse_int;
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;
use crate::replication::master::SyncRequest;
use crate::replication::MasterAddr;

pub fn register(table: &mut CommandTable) {
    table.register("replicaof", replicaof);
    table.register("slaveof", replicaof);
    table.register("role", role);
    table.register("replconf", replconf);
    table.register("psync", psync);
    table.register("sync", sync);
    table.register("wait", wait);
}

/// `WAIT numreplicas timeout`: blocks until `numreplicas` replicas have
/// acknowledged every record so far, or `timeout` ms pass (0: no limit);
/// answers how many did.
fn wait(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let server = ctx.server;
    if server.replication.is_replica() {
        return Err(CmdError::err(
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is \
             configured to be writable (which is not the default) writes to replicas are just local and are not \
             propagated.",
        ));
    }
    let wanted = parse_int(&argv[1])?;
    let timeout = parse_int(&argv[2])?;
    if timeout < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let seq = server.keyspace.log.last_seq();
    let acked = server.replication.acked_by(seq);
    let handle = tokio::runtime::Handle::try_current();
    let this = server.this.upgrade();
    let (Ok(handle), Some(this)) = (handle, this) else { return Ok(Reply::Integer(acked as i64)) };
    if acked as i64 >= wanted || ctx.client.in_exec {
        return Ok(Reply::Integer(acked as i64));
    }
    server.replication.request_acks();
    let call = server.keyspace.blocking.block(
        ctx.client.shared.clone(),
        ctx.client.db,
        argv,
        Vec::new(),
        None,
        Reply::Integer(acked as i64),
        false,
    );
    let waiter = call.waiter.clone();
    let deadline =
        (timeout > 0).then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    handle.spawn(async move {
        let replication = &this.replication;
        let blocking = &this.keyspace.blocking;
        let acked = loop {
            let acknowledged = replication.acked.notified();
            tokio::pin!(acknowledged);
            acknowledged.as_mut().enable();
            let acked = replication.acked_by(seq);
            if acked as i64 >= wanted {
                break acked;
            }
            // A client that went (or CLIENT UNBLOCK) needs no answer.
            if !blocking.is_waiting(&waiter) {
                return;
            }
            let next_look = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
            let until = deadline.map_or(next_look, |at| at.min(next_look));
            tokio::select! {
                _ = acknowledged => {}
                _ = tokio::time::sleep_until(until) => {
                    if deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
                        break replication.acked_by(seq);
                    }
                }
            }
        };
        if blocking.claim(&waiter) {
            blocking.serve(&waiter, Reply::Integer(acked as i64));
        }
    });
    ctx.client.blocked = Some(call);
    Ok(Reply::NoReply)
}

/// `REPLICAOF host port` / `REPLICAOF NO ONE`
fn replicaof(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let server = ctx.server;
    if server.cluster.is_some() {
        return Err(CmdError::err("REPLICAOF not allowed in cluster mode."));
    }
    if argv[1].eq_ignore_ascii_case(b"no") && argv[2].eq_ignore_ascii_case(b"one") {
        if server.replication.is_replica() {
            server.follow(None);
            tracing::info!("MASTER MODE enabled (user request from client {})", ctx.client.shared.id);
        }
        return Ok(Reply::ok());
    }
    let port = parse_int(&argv[2])?;
    let port = u16::try_from(port).map_err(|_| CmdError::err("Invalid master port"))?;
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    let master = MasterAddr { host, port };
    if server.replication.master().as_ref() == Some(&master) {
        return Ok(Reply::Status("OK Already connected to specified master"));
    }
    tracing::info!(
        "REPLICAOF {}:{} enabled (user request from client {})",
        master.host,
        master.port,
        ctx.client.shared.id
    );
    server.follow(Some(master));
    Ok(Reply::ok())
}

/// `ROLE`: Redis's reply for a master (its offset and replicas) or a
/// replica (its master, link state and offset).
fn role(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let server = ctx.server;
    let offset = server.keyspace.log.last_seq() as i64;
    let text = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    Ok(match server.replication.master() {
        None => {
            let replicas = server
                .replication
                .replicas()
                .iter()
                .filter(|r| *r.state.lock() == "online")
                .map(|r| {
                    Reply::Array(vec![
                        text(&r.ip),
                        text(&r.port.to_string()),
                        text(&r.ack_seq.load(Ordering::Relaxed).to_string()),
                    ])
                })
                .collect();
            Reply::Array(vec![text("master"), Reply::Integer(offset), Reply::Array(replicas)])
        }
        Some(master) => {
            let state = *server.replication.link.state.lock();
            let offset = if state == "connected" { offset } else { -1 };
            Reply::Array(vec![
                text("slave"),
                text(&master.host),
                Reply::Integer(master.port as i64),
                text(state),
                Reply::Integer(offset),
            ])
        }
    })
}

/// `REPLCONF option value [option value ...]`: what a replica says of
/// itself before PSYNC.
fn replconf(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in argv[1..].chunks_exact(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if option.eq_ignore_ascii_case(b"listening-port") {
            let port = parse_int(value)?;
            ctx.client.replica_port = u16::try_from(port).map_err(|_| CmdError::NotInteger)?;
        } else if option.eq_ignore_ascii_case(b"capa") {
            ctx.client.replica_capabilities.push(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else if option.eq_ignore_ascii_case(b"ip-address") {
            ctx.client.replica_address = Some(String::from_utf8_lossy(value).into_owned());
        } else if option.eq_ignore_ascii_case(b"rdb-only") || option.eq_ignore_ascii_case(b"rdb-filter-only") {
            // Accepted as Redis accepts them; Strata's stream is whole.
        } else if option.eq_ignore_ascii_case(b"ack") || option.eq_ignore_ascii_case(b"getack") {
            // Only meaningful on a replication link, where the link reads them.
            return Ok(Reply::NoReply);
        } else {
            return Err(CmdError::err(format!("Unrecognized REPLCONF option: {}", String::from_utf8_lossy(option))));
        }
    }
    Ok(Reply::ok())
}

/// `PSYNC replid offset`: the connection becomes a replica's link.
fn psync(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let offset = parse_int(&argv[2])?;
    hand_off(ctx, Some((String::from_utf8_lossy(&argv[1]).into_owned(), offset)))
}

/// `SYNC`: the old form, always a full sync.
fn sync(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    hand_off(ctx, None)
}

fn hand_off(ctx: &mut Ctx, psync: Option<(String, i64)>) -> CmdResult {
    let server = ctx.server;
    if server.replication.is_replica() && *server.replication.link.state.lock() != "connected" {
        return Err(CmdError::Custom("NOMASTERLINK Can't SYNC while not connected with my master".into()));
    }
    ctx.client.handoff = Some(SyncRequest {
        psync,
        announced_ip: ctx.client.replica_address.take(),
        listening_port: ctx.client.replica_port,
        capabilities: std::mem::take(&mut ctx.client.replica_capabilities),
    });
    Ok(Reply::NoReply)
}
