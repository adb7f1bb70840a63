//! The Prometheus endpoint against the real binary: the exposition format
//! parses, the numbers follow what clients do, and bad HTTP never hurts the
//! server.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{free_port, TestServer, Value};
use rand::{Rng, SeedableRng};

fn start_with_metrics() -> (TestServer, u16) {
    let metrics_port = free_port();
    let server = TestServer::start_with(&["--metrics-port", &metrics_port.to_string()]);
    (server, metrics_port)
}

/// Sends raw bytes and reads until the server closes. A write error (the
/// server closed while we were still sending) is not a failure: what was
/// answered before is returned.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics port");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// An HTTP response: status code, headers (lower-case names), body.
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8(raw.to_vec()).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_string())
        })
        .collect::<HashMap<_, _>>();
    if let Some(length) = headers.get("content-length") {
        assert_eq!(length.parse::<usize>().unwrap(), body.len(), "content-length");
    }
    Response { status, headers, body: body.to_string() }
}

fn get(port: u16, path: &str) -> Response {
    parse_response(&exchange(port, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()))
}

/// Samples by `name{labels}` (labels as written), after checking the text
/// against the exposition format rules.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let response = get(port, "/metrics");
    assert_eq!(response.status, 200);
    let content_type = &response.headers["content-type"];
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    check_exposition(&response.body)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text.parse().unwrap_or_else(|_| panic!("bad sample value {text:?}")),
    }
}

/// `{a="x",b="y"}` into pairs, checking the syntax.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).expect("braces");
    if inner.is_empty() {
        return Vec::new();
    }
    inner
        .split(',')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or_else(|| panic!("bad label {pair:?}"));
            assert!(valid_name(name), "label name {name:?}");
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted label value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// Checks every rule of the text format that a scraper relies on and
/// returns the samples.
fn check_exposition(body: &str) -> BTreeMap<String, f64> {
    assert!(body.ends_with('\n'), "the text ends with a newline");
    let mut help = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = BTreeMap::new();
    // Histogram families: (le, cumulative count) in order, then the count.
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !text.is_empty(), "{line}");
            assert!(help.insert(name.to_string(), text.to_string()).is_none(), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(!samples.keys().any(|s: &String| s.starts_with(name)), "TYPE after samples: {line}");
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value = parse_value(value);
        let (name, labels) = match series.find('{') {
            Some(at) => (&series[..at], parse_labels(&series[at..])),
            None => (series, Vec::new()),
        };
        assert!(valid_name(name), "metric name {name:?}");
        assert!(name.starts_with("strata_"), "{name}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| types.get(*base).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        assert!(help.contains_key(family), "no HELP for {family}");
        let kind = types.get(family).unwrap_or_else(|| panic!("no TYPE for {family}"));
        match kind.as_str() {
            "counter" => {
                assert!(family.ends_with("_total"), "counter {family} ends with _total");
                assert!(value >= 0.0 && value.fract() == 0.0, "{line}");
            }
            "histogram" if name.ends_with("_bucket") => {
                let le = labels.iter().find(|(n, _)| n == "le").expect("le label");
                buckets.entry(family.to_string()).or_default().push((parse_value(&le.1), value));
            }
            _ => {}
        }
        assert!(samples.insert(series.to_string(), value).is_none(), "sample twice: {line}");
    }
    for (name, kind) in &types {
        assert!(help.contains_key(name), "TYPE without HELP: {name}");
        if kind != "histogram" {
            continue;
        }
        let rows = &buckets[name];
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{name} cumulative: {rows:?}");
        let last = rows.last().unwrap();
        assert_eq!(last.0, f64::INFINITY, "{name} ends with +Inf");
        assert_eq!(last.1, samples[&format!("{name}_count")], "{name} +Inf equals _count");
        assert!(samples.contains_key(&format!("{name}_sum")), "{name}_sum");
    }
    samples
}

#[test]
fn scrape_parses_and_follows_the_server() {
    let (server, port) = start_with_metrics();
    let before = scrape(port);
    for name in [
        "strata_commands_processed_total",
        "strata_connections_received_total",
        "strata_connected_clients",
        "strata_blocked_clients",
        "strata_used_memory_bytes",
        "strata_expired_keys_total",
        "strata_uptime_seconds",
        "strata_recovery_seconds",
        "strata_recovery_records_total",
        "strata_log_fsync_seconds_count",
        "strata_group_commit_records_count",
        "strata_log_written_bytes_total",
        "strata_log_sequence",
        "strata_checkpoint_seconds_count",
        "strata_checkpoint_size_bytes",
        "strata_checkpoints_total",
        "strata_checkpoint_failures_total",
    ] {
        assert!(before.contains_key(name), "missing {name}");
    }
    assert!(before["strata_used_memory_bytes"] > 0.0);
    assert!(before.contains_key(r#"strata_log_fsync_seconds_bucket{le="0.0001"}"#));
    assert!(before.contains_key(r#"strata_group_commit_records_bucket{le="1024"}"#));
    assert!(before.contains_key(r#"strata_checkpoint_seconds_bucket{le="30"}"#));

    let mut conn = server.conn();
    for i in 0..50 {
        assert_eq!(conn.call(&["SET", &format!("key:{i}"), "v"]), Value::Status("OK".into()));
    }
    conn.call(&["RPUSH", "list", "a", "b"]);
    conn.call(&["SET", "short", "v", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(conn.call(&["GET", "short"]), Value::Nil);
    assert_eq!(conn.call(&["SELECT", "3"]), Value::Status("OK".into()));
    conn.call(&["SADD", "set", "m"]);
    assert_eq!(conn.call(&["SELECT", "0"]), Value::Status("OK".into()));
    let Value::Int(dbsize) = conn.call(&["DBSIZE"]) else { panic!("DBSIZE") };

    // GET does not write back the expiry it sees; active expiry (10 times
    // a second) deletes and counts the key.
    common::wait_until(Duration::from_secs(10), "the expired key to be counted", || {
        scrape(port)["strata_expired_keys_total"] >= 1.0
    });
    let after = scrape(port);
    assert!(
        after["strata_commands_processed_total"] >= before["strata_commands_processed_total"] + 56.0,
        "{} -> {}",
        before["strata_commands_processed_total"],
        after["strata_commands_processed_total"]
    );
    assert_eq!(after[r#"strata_db_keys{db="0"}"#], dbsize as f64);
    assert_eq!(dbsize, 51);
    assert_eq!(after[r#"strata_db_keys{db="3"}"#], 1.0);
    assert!(!after.contains_key(r#"strata_db_keys{db="5"}"#), "empty databases are left out");
    assert!(after["strata_expired_keys_total"] >= 1.0);
    assert!(after["strata_connected_clients"] >= 1.0);
    assert!(after["strata_connections_received_total"] >= 2.0);
    assert!(after["strata_uptime_seconds"] >= before["strata_uptime_seconds"]);

    // A client blocked on a key shows, and goes when served.
    let mut blocked = server.conn();
    blocked.send_raw(&common::encode(&[b"BLPOP", b"nothing", b"0"]));
    common::wait_until(Duration::from_secs(10), "the blocked client to show", || {
        scrape(port)["strata_blocked_clients"] == 1.0
    });
    conn.call(&["RPUSH", "nothing", "x"]);
    assert!(matches!(blocked.read(), Some(Value::Array(_))));
    assert_eq!(scrape(port)["strata_blocked_clients"], 0.0);

    // HEAD gets the head alone.
    let head = String::from_utf8(exchange(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head}");
}

/// After each bad request, the endpoint and the server still answer.
fn still_serving(server: &TestServer, port: u16) {
    scrape(port);
    assert_eq!(server.conn().call(&["PING"]), Value::Status("PONG".into()));
}

fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn bad_requests_get_errors_and_change_nothing() {
    let (server, port) = start_with_metrics();
    assert_eq!(get(port, "/").status, 404);
    assert_eq!(get(port, "/metrics/x").status, 404);
    let post = parse_response(&exchange(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    assert_eq!(status_of(&exchange(port, b"DELETE /metrics HTTP/1.1\r\n\r\n")), Some(405));
    still_serving(&server, port);

    // A request line that is not HTTP is refused at once.
    assert_eq!(status_of(&exchange(port, b"*1\r\n$4\r\nPING\r\n")), Some(400));
    assert_eq!(status_of(&exchange(port, b"get /metrics HTTP/1.1\r\n\r\n")), Some(400));
    still_serving(&server, port);

    // Random bytes: an error status or a plain close, never a hang.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..20 {
        let len = rng.random_range(1..20_000);
        let garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let started = Instant::now();
        let answer = exchange(port, &garbage);
        assert!(answer.is_empty() || status_of(&answer).is_some_and(|s| s >= 400), "round {round}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(15), "round {round} took {:?}", started.elapsed());
    }
    still_serving(&server, port);

    // A head over the limit: 431 (or a reset while we were still sending).
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let answer = exchange(port, &huge);
    assert!(answer.is_empty() || status_of(&answer) == Some(431), "{:?}", String::from_utf8_lossy(&answer));
    still_serving(&server, port);
}

#[test]
fn slow_and_idle_peers_do_not_block_scrapes() {
    let (server, port) = start_with_metrics();
    // Half a request and idle sockets, held open while others scrape.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /met").unwrap();
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let started = Instant::now();
    scrape(port);
    assert!(started.elapsed() < Duration::from_secs(2), "scrape waited for the slow peers");
    still_serving(&server, port);

    // The slow peer is cut off after the head timeout.
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    assert_eq!(status_of(&answer), Some(408), "{:?}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(idle);
    still_serving(&server, port);
}

#[test]
fn metrics_port_from_config_file_and_off_by_default() {
    let plain = TestServer::start();
    let mut conn = plain.conn();
    assert_eq!(
        conn.call(&["CONFIG", "GET", "metrics-port"]),
        Value::Array(vec![Value::bulk("metrics-port"), Value::bulk("0")])
    );
    assert_eq!(
        conn.call(&["CONFIG", "SET", "metrics-port", "9999"]),
        Value::Error(
            "ERR CONFIG SET failed (possibly related to argument 'metrics-port') - can't set immutable config".into()
        )
    );

    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("strata.conf");
    let metrics_port = free_port();
    std::fs::write(&conf, format!("metrics-port {metrics_port}\n")).unwrap();
    let server = TestServer::start_with_config(&conf, &[]);
    assert_eq!(
        server.conn().call(&["CONFIG", "GET", "metrics-port"]),
        Value::Array(vec![Value::bulk("metrics-port"), Value::bulk(&metrics_port.to_string())])
    );
    scrape(metrics_port);
}
