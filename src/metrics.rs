//! The Prometheus endpoint: `GET /metrics` on `metrics-port` (off when 0)
//! answers the text exposition format 0.0.4 with the server's stats and the
//! durability metrics.
//!
//! The HTTP side is a minimal HTTP/1.1 responder: read one request head
//! (bounded in size and time), answer, close. Scrapers need nothing more,
//! and a garbage or stalled peer costs at most one task for a few seconds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use strata_engines::metrics::HistogramSnapshot;

use crate::server::{Server, StartError};

/// The largest request head read; a bigger one gets 431 and a close.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a peer has to send its whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a peer has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; connections beyond it are closed at once, so a
/// flood of idle sockets cannot pile up tasks.
const MAX_CONNECTIONS: usize = 64;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `metrics-port` on each `bind` address; none when the port is 0.
pub async fn bind(server: &Server) -> Result<Vec<TcpListener>, StartError> {
    let (addresses, port) = {
        let config = server.config.read();
        (config.bind(), config.metrics_port())
    };
    if port == 0 {
        return Ok(Vec::new());
    }
    let listeners = crate::server::bind_all(&addresses, port).await?;
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "Serving Prometheus metrics on /metrics");
        }
    }
    Ok(listeners)
}

/// Starts one accept loop per listener; they share the connection limit.
pub fn spawn(server: &Arc<Server>, listeners: Vec<TcpListener>) -> Vec<JoinHandle<()>> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    listeners.into_iter().map(|listener| tokio::spawn(accept_loop(server.clone(), listener, limit.clone()))).collect()
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, limit: Arc<Semaphore>) {
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Dropping the socket closes it: too many scrapes at once.
        let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
        let server = server.clone();
        tokio::spawn(async move {
            serve(&server, socket).await;
            drop(permit);
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /metrics` (`head_only` for HEAD).
    Metrics {
        head_only: bool,
    },
    BadRequest,
    NotFound,
    MethodNotAllowed,
}

/// Parses the request line (`METHOD SP target SP HTTP/1.x`); the headers
/// that follow do not matter here.
fn parse_request_line(line: &[u8]) -> Route {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    let token = |bytes: &[u8]| !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_uppercase());
    if !token(method) || !target.starts_with(b"/") || !version.starts_with(b"HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    if path != b"/metrics" {
        return Route::NotFound;
    }
    match method {
        b"GET" => Route::Metrics { head_only: false },
        b"HEAD" => Route::Metrics { head_only: true },
        _ => Route::MethodNotAllowed,
    }
}

/// How reading the request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete(Route),
    TooLarge,
    /// The peer closed or the read failed: nobody to answer.
    Gone,
}

/// Reads until the blank line that ends the head. A bad request line is
/// answered as soon as it is complete, without waiting for the rest.
async fn read_head(socket: &mut TcpStream) -> Head {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut request = None;
    loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(n) => n,
        };
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if request.is_none() {
            if let Some(end) = head.iter().position(|&b| b == b'\n') {
                let parsed = parse_request_line(&head[..end]);
                if parsed == Route::BadRequest {
                    return Head::Complete(parsed);
                }
                request = Some(parsed);
            }
        }
        if let Some(request) = request.take_if(|_| ends_head(&head[searched_from..])) {
            return Head::Complete(request);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Head::TooLarge;
        }
    }
}

/// Whether the bytes hold the blank line that ends a head (`\r\n\r\n`, or
/// bare `\n\n` from lenient clients).
fn ends_head(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n")
}

async fn serve(server: &Server, mut socket: TcpStream) {
    let response = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut socket)).await {
        Err(_) => response("408 Request Timeout", "text/plain", "request timeout\n", false),
        Ok(Head::Gone) => return,
        Ok(Head::TooLarge) => {
            response("431 Request Header Fields Too Large", "text/plain", "request head too large\n", false)
        }
        Ok(Head::Complete(request)) => match request {
            Route::Metrics { head_only } => response("200 OK", CONTENT_TYPE, &render(server), head_only),
            Route::BadRequest => response("400 Bad Request", "text/plain", "bad request\n", false),
            Route::NotFound => response("404 Not Found", "text/plain", "not found; try /metrics\n", false),
            Route::MethodNotAllowed => response("405 Method Not Allowed", "text/plain", "use GET\n", false),
        },
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        socket.write_all(&response).await?;
        socket.shutdown().await
    })
    .await;
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let allow = if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

// ---------------------------------------------------------------- rendering

/// The exposition text: server stats first, then the durability metrics.
pub fn render(server: &Server) -> String {
    let mut out = Exposition::default();
    let stats = &server.stats;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    out.counter("strata_commands_processed_total", "Commands processed.", load(&stats.commands_processed));
    out.counter("strata_connections_received_total", "Connections accepted.", load(&stats.connections_received));
    out.gauge("strata_connected_clients", "Clients connected now.", server.clients.len() as f64);
    out.gauge(
        "strata_blocked_clients",
        "Clients waiting in a blocking command.",
        server.keyspace.blocking.blocked_clients() as f64,
    );
    out.gauge(
        "strata_used_memory_bytes",
        "Heap bytes the server holds (memory engines, buffers; not RocksDB's caches).",
        crate::memory_usage::used_bytes() as f64,
    );
    // As INFO keyspace: databases holding keys, and db 0 always so the
    // family is never empty.
    out.header("strata_db_keys", "gauge", "Keys in a logical database, across engines.");
    for db in 0..server.keyspace.databases() {
        let keys = server.keyspace.key_counts(db).0;
        if keys > 0 || db == 0 {
            out.sample("strata_db_keys", &format!("{{db=\"{db}\"}}"), keys as f64);
        }
    }
    out.counter(
        "strata_expired_keys_total",
        "Keys deleted because their TTL passed.",
        load(&server.keyspace.expired_keys),
    );
    out.gauge("strata_uptime_seconds", "Seconds since the server started.", server.uptime_ms() as f64 / 1000.0);

    let d = &server.keyspace.log.metrics;
    out.gauge("strata_recovery_seconds", "Duration of the last startup recovery.", d.recovery_seconds.get());
    out.counter("strata_recovery_records_total", "Log records replayed at startup.", d.recovery_records.get());
    out.histogram("strata_log_fsync_seconds", "Duration of write-ahead log fsyncs.", &d.log_fsync_seconds.snapshot());
    out.histogram(
        "strata_group_commit_records",
        "Log records per group-commit batch.",
        &d.group_commit_records.snapshot(),
    );
    out.counter("strata_log_written_bytes_total", "Bytes written to the write-ahead log.", d.log_bytes_written.get());
    out.gauge("strata_log_sequence", "Sequence number of the last log record.", d.log_sequence.get());
    out.histogram("strata_checkpoint_seconds", "Duration of checkpoints.", &d.checkpoint_seconds.snapshot());
    out.gauge("strata_checkpoint_size_bytes", "Size of the last checkpoint.", d.checkpoint_bytes.get());
    out.counter("strata_checkpoints_total", "Checkpoints completed.", d.checkpoints.get());
    out.counter("strata_checkpoint_failures_total", "Checkpoints that failed.", d.checkpoint_failures.get());
    out.counter(
        "strata_log_archived_segments_total",
        "Log segments copied into the archive (log-archive-repo).",
        d.log_archived_segments.get(),
    );
    out.counter("strata_log_archive_failures_total", "Log archiving passes that failed.", d.log_archive_failures.get());
    out.text
}

/// Builds exposition text family by family.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line; `labels` is empty or `{name="value",...}`.
    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let _ = writeln!(self.text, "{name}{labels} {}", format_value(value));
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        self.sample(name, "", value);
    }

    fn histogram(&mut self, name: &str, help: &str, snap: &HistogramSnapshot) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, count) in snap.bounds.iter().zip(&snap.cumulative) {
            self.sample(&bucket, &format!("{{le=\"{}\"}}", format_value(*bound)), *count as f64);
        }
        self.sample(&bucket, "{le=\"+Inf\"}", snap.count as f64);
        self.sample(&format!("{name}_sum"), "", snap.sum);
        self.sample(&format!("{name}_count"), "", snap.count as f64);
    }
}

/// A sample value as Prometheus writes it: whole numbers without a
/// fraction, `+Inf`/`-Inf`/`NaN` spelled out, others shortest round-trip.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        (value as i64).to_string()
    } else {
        ryu::Buffer::new().format_finite(value).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(parse_request_line(b"GET /metrics HTTP/1.1\r"), Route::Metrics { head_only: false });
        assert_eq!(parse_request_line(b"GET /metrics?x=1 HTTP/1.0"), Route::Metrics { head_only: false });
        assert_eq!(parse_request_line(b"HEAD /metrics HTTP/1.1\r"), Route::Metrics { head_only: true });
        assert_eq!(parse_request_line(b"POST /metrics HTTP/1.1\r"), Route::MethodNotAllowed);
        assert_eq!(parse_request_line(b"GET / HTTP/1.1\r"), Route::NotFound);
        assert_eq!(parse_request_line(b"GET /metricsx HTTP/1.1\r"), Route::NotFound);
        assert_eq!(parse_request_line(b"get /metrics HTTP/1.1\r"), Route::BadRequest);
        assert_eq!(parse_request_line(b"GET /metrics\r"), Route::BadRequest);
        assert_eq!(parse_request_line(b"GET  /metrics HTTP/1.1\r"), Route::BadRequest);
        assert_eq!(parse_request_line(b"GET metrics HTTP/1.1\r"), Route::BadRequest);
        assert_eq!(parse_request_line(b"GET /metrics SPDY/3\r"), Route::BadRequest);
        assert_eq!(parse_request_line(b"\x00\xff\x10"), Route::BadRequest);
    }

    #[test]
    fn head_ends() {
        assert!(ends_head(b"Host: x\r\n\r\n"));
        assert!(ends_head(b"GET / HTTP/1.1\n\n"));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }

    #[test]
    fn values_format_as_prometheus_does() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(0.0001), "0.0001");
        assert_eq!(format_value(2.5), "2.5");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e20).parse::<f64>().unwrap(), 1e20);
    }

    #[test]
    fn histogram_exposition() {
        let histogram = strata_engines::metrics::Histogram::new(&[0.5, 1.0]);
        histogram.observe(0.25);
        histogram.observe(0.75);
        histogram.observe(4.0);
        let mut out = Exposition::default();
        out.histogram("x_seconds", "X.", &histogram.snapshot());
        assert_eq!(
            out.text,
            "# HELP x_seconds X.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.5\"} 1\nx_seconds_bucket{le=\"1\"} 2\nx_seconds_bucket{le=\"+Inf\"} 3\n\
             x_seconds_sum 5\nx_seconds_count 3\n"
        );
    }

    #[test]
    fn responses_carry_length_and_close() {
        let text = String::from_utf8(response("200 OK", CONTENT_TYPE, "abc\n", false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("Content-Length: 4\r\n") && text.ends_with("Connection: close\r\n\r\nabc\n"));
        let head = String::from_utf8(response("200 OK", CONTENT_TYPE, "abc\n", true)).unwrap();
        assert!(head.ends_with("\r\n\r\n") && head.contains("Content-Length: 4\r\n"));
        let text = String::from_utf8(response("405 Method Not Allowed", "text/plain", "", false)).unwrap();
        assert!(text.contains("Allow: GET, HEAD\r\n"));
    }
}
