//! One client connection: read requests, run them in order, write all the
//! replies of a pipeline with one write. Protocol only; commands run in
//! `commands::dispatch`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;

use crate::blocking::{BlockedCall, Wake};
use crate::client::Client;
use crate::commands::dispatch;
use crate::config::SessionSettings;
use crate::protocol::{parse_request, ParseOutcome, Reply, ReplyEncoder, RequestLimits};
use crate::server::Server;

const READ_CHUNK: usize = 16 * 1024;

/// Serves one client; `input` holds bytes already read from it (requests
/// that arrived while the server was loading).
pub async fn serve(server: Arc<Server>, socket: TcpStream, addr: SocketAddr, input: BytesMut) {
    let local = socket.local_addr().unwrap_or(addr);
    let shared = server.clients.add(addr, local);
    let authenticated = server.config.read().requirepass().is_none();
    let mut client = Client::new(shared.clone(), authenticated);
    if let Err(e) = session(&server, socket, &mut client, input).await {
        tracing::debug!(client = client.shared.id, error = %e, "connection closed");
    }
    crate::commands::client_closed(&server, &mut client);
    server.clients.remove(shared.id);
}

async fn session(
    server: &Server,
    mut socket: TcpStream,
    client: &mut Client,
    mut input: BytesMut,
) -> std::io::Result<()> {
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    let mut shutdown = server.shutdown_signal();
    // The parser says how many bytes a partial request needs; no point
    // parsing again before they are here.
    let mut need = 0usize;
    // Registered once, and the only waiter (`wait_blocked` polls it too):
    // CLIENT KILL's one notification always reaches it.
    let shared = client.shared.clone();
    let killed = shared.kill_notify.notified();
    tokio::pin!(killed);
    loop {
        // The settings a batch of requests uses, under one config lock.
        let SessionSettings { timeout_secs: timeout, query_limit, max_bulk_len } = server.config.read().session();
        let idle = async {
            if timeout == 0 {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(timeout)).await
            }
        };
        input.reserve(READ_CHUNK);
        // The read first, and the rest only when it waits: they were
        // polled on every read (kill and shutdown are also checked
        // between requests, below).
        let read = tokio::select! {
            biased;
            read = socket.read_buf(&mut input) => read?,
            _ = shutdown.changed() => return Ok(()),
            _ = &mut killed => return Ok(()),
            _ = idle => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
        server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
        // As Redis's `lastinteraction`: set per read, not per command, from
        // the clock cached once per cron tick.
        client.shared.last_active_ms.store(server.ticked_uptime_ms(), Ordering::Relaxed);
        // Checked on every read, as Redis does, also while a big argument
        // is still arriving.
        if input.len() > query_limit {
            tracing::warn!(client = client.shared.id, "closing client that reached max query buffer length");
            return Ok(());
        }
        if input.len() < need {
            continue;
        }
        need = 0;
        let mut close = false;
        let limits = RequestLimits { max_bulk_len, authenticated: client.authenticated };
        let encoder_for = |client: &Client| ReplyEncoder { resp3: client.resp3 };
        loop {
            if client.shared.killed.load(Ordering::Relaxed) || server.is_shutting_down() {
                close = true;
                break;
            }
            match parse_request(&mut input, &limits) {
                Ok(ParseOutcome::Request(argv)) => {
                    if argv.is_empty() {
                        continue;
                    }
                    let mut reply = dispatch(server, client, &argv);
                    if let Some(call) = client.blocked.take() {
                        // Replies of the pipeline so far go out before waiting.
                        flush(server, &mut socket, &mut output).await?;
                        match wait_blocked(server, &mut socket, &mut input, killed.as_mut(), call).await {
                            Some(outcome) => reply = outcome,
                            None => return Ok(()),
                        }
                    }
                    encoder_for(client).encode(&reply, &mut output);
                    if client.close_after_reply {
                        close = true;
                        break;
                    }
                }
                Ok(ParseOutcome::Incomplete { need: n }) => {
                    need = n;
                    break;
                }
                Err(e) => {
                    // Redis answers the protocol error, then closes.
                    tracing::debug!(client = client.shared.id, error = %e, "protocol error");
                    server.stats.record_error_text("ERR");
                    encoder_for(client).encode(&Reply::Error(format!("ERR {e}")), &mut output);
                    close = true;
                    break;
                }
            }
        }
        flush(server, &mut socket, &mut output).await?;
        if close {
            let _ = socket.shutdown().await;
            return Ok(());
        }
    }
}

/// Makes the batch's writes durable (group commit), then sends its replies.
async fn flush(server: &Server, socket: &mut TcpStream, output: &mut BytesMut) -> std::io::Result<()> {
    // Every batch waits, not only writers: a reply must not show data
    // that a crash could still take back.
    if let Err(e) = server.keyspace.make_durable().await {
        // The writes may not be durable: do not acknowledge them.
        tracing::error!(error = %e, "writing the log failed");
        return Err(std::io::Error::other(e.to_string()));
    }
    if !output.is_empty() {
        server.stats.net_output_bytes.fetch_add(output.len() as u64, Ordering::Relaxed);
        socket.write_all(output).await?;
        output.clear();
    }
    Ok(())
}

/// Waits for a blocked command's outcome: served by another client's
/// write, timed out, or unblocked. Input that arrives meanwhile is kept for
/// after (Redis does not run a blocked client's next commands either).
/// None when the connection must close (disconnect, CLIENT KILL, shutdown).
async fn wait_blocked(
    server: &Server,
    socket: &mut TcpStream,
    input: &mut BytesMut,
    mut killed: Pin<&mut Notified<'_>>,
    call: BlockedCall,
) -> Option<Reply> {
    let BlockedCall { waiter, mut wake, deadline, timeout_reply } = call;
    let blocking = &server.keyspace.blocking;
    let timer = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timer);
    let mut timed_out = false;
    let mut shutdown = server.shutdown_signal();
    loop {
        input.reserve(READ_CHUNK);
        tokio::select! {
            outcome = &mut wake => {
                return Some(match outcome {
                    Ok(Wake::Served(reply)) => reply,
                    Ok(Wake::Unblocked(Some(error))) => error,
                    Ok(Wake::Unblocked(None)) | Err(_) => timeout_reply,
                });
            }
            _ = &mut timer, if !timed_out => {
                timed_out = true;
                if blocking.remove(&waiter) {
                    return Some(timeout_reply);
                }
                // Being served right now: the reply is on its way.
            }
            read = socket.read_buf(input) => {
                if matches!(read, Ok(0) | Err(_)) {
                    blocking.remove(&waiter);
                    return None;
                }
            }
            _ = &mut killed => {
                blocking.remove(&waiter);
                return None;
            }
            _ = shutdown.changed() => {
                blocking.remove(&waiter);
                return None;
            }
        }
    }
}
