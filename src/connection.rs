//! One client connection: read requests, run them in order, write all the
//! replies of a pipeline with one write. Protocol only; commands run in
//! `commands::dispatch`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Client;
use crate::commands::dispatch;
use crate::protocol::{parse_request, ParseOutcome, Reply, ReplyEncoder, RequestLimits};
use crate::server::Server;

const READ_CHUNK: usize = 16 * 1024;

pub async fn serve(server: Arc<Server>, socket: TcpStream, addr: SocketAddr) {
    let local = socket.local_addr().unwrap_or(addr);
    let shared = server.clients.add(addr, local);
    let authenticated = server.config.read().requirepass().is_none();
    let mut client = Client::new(shared.clone(), authenticated);
    if let Err(e) = session(&server, socket, &mut client).await {
        tracing::debug!(client = client.shared.id, error = %e, "connection closed");
    }
    server.clients.remove(shared.id);
}

async fn session(server: &Server, mut socket: TcpStream, client: &mut Client) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    let mut shutdown = server.shutdown_signal();
    // The parser says how many bytes a partial request needs; no point
    // parsing again before they are here.
    let mut need = 0usize;
    loop {
        let timeout = server.config.read().timeout_secs();
        let idle = async {
            if timeout == 0 {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(timeout)).await
            }
        };
        input.reserve(READ_CHUNK);
        let read = tokio::select! {
            read = socket.read_buf(&mut input) => read?,
            _ = shutdown.changed() => return Ok(()),
            _ = client.shared.kill_notify.notified() => return Ok(()),
            _ = idle => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
        server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
        if input.len() < need {
            continue;
        }
        let query_limit =
            server.config.read().get("client-query-buffer-limit").and_then(|v| v.parse().ok()).unwrap_or(1usize << 30);
        if input.len() > query_limit {
            tracing::warn!(client = client.shared.id, "closing client that reached max query buffer length");
            return Ok(());
        }
        need = 0;
        let mut close = false;
        let limits = RequestLimits {
            max_bulk_len: server.config.read().proto_max_bulk_len(),
            authenticated: client.authenticated,
        };
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
                    client.shared.last_active_ms.store(server.uptime_ms(), Ordering::Relaxed);
                    let reply = dispatch(server, client, &argv);
                    *client.shared.last_command.lock() = client.last_command.clone();
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
        if !output.is_empty() {
            server.stats.net_output_bytes.fetch_add(output.len() as u64, Ordering::Relaxed);
            socket.write_all(&output).await?;
            output.clear();
        }
        if close {
            let _ = socket.shutdown().await;
            return Ok(());
        }
    }
}
