//! Test harness: starts the real `strata-server` binary on a free port with a
//! temporary data directory, waits for PING, and kills it when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running strata-server.
pub struct TestServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// Environment variables the process gets (`FAILPOINTS` ...).
    env: Vec<(String, String)>,
    _tempdir: Option<tempfile::TempDir>,
}

/// A free port never handed out before in this process: tests run in
/// parallel, and two servers given the same port would answer each other's
/// PING.
pub fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut used = USED.lock().unwrap();
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts with a config file first, then `extra` flags.
    pub fn start_with_config(config: &Path, extra: &[&str]) -> TestServer {
        let mut args = vec![config.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_with(&args)
    }

    pub fn start_with(extra: &[&str]) -> TestServer {
        Self::start_with_env(&[], extra)
    }

    /// Starts with these environment variables set, then `extra` flags.
    pub fn start_with_env(env: &[(&str, &str)], extra: &[&str]) -> TestServer {
        let tempdir = tempfile::tempdir().unwrap();
        let dir = tempdir.path().to_path_buf();
        let mut server = TestServer {
            port: free_port(),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            _tempdir: Some(tempdir),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.spawn_without_waiting();
        self.wait_ready();
    }

    /// Starts the process on the same data and returns at once (tests that
    /// watch it load).
    pub fn spawn_without_waiting(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata-server"));
        // A config file, if any, must come first.
        let mut extra = self.extra.as_slice();
        if let Some(file) = extra.first().filter(|a| !a.starts_with("--")) {
            command.arg(file);
            extra = &extra[1..];
        }
        let child = command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--loglevel")
            .arg("warning")
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start strata-server");
        self.child = Some(child);
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("strata-server exited early: {status}");
            }
            if let Ok(mut conn) = Conn::try_connect(self.port) {
                // A connection reset or closed before the answer counts as
                // not ready (seen rarely while a server starts).
                if conn.writer.write_all(&encode(&[b"PING"])).is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                match conn.read() {
                    Some(Value::Status(pong)) if pong == "PONG" => return,
                    Some(Value::Error(e)) if e.starts_with("NOAUTH") => return,
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("strata-server did not answer PING");
    }

    pub fn conn(&self) -> Conn {
        Conn::try_connect(self.port).expect("connect")
    }

    /// Stops with SIGTERM (graceful) and starts again on the same data.
    pub fn restart(&mut self) {
        self.stop_graceful();
        self.spawn();
    }

    /// Stops with SIGKILL (a crash) and starts again on the same data.
    pub fn crash_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.spawn();
    }

    /// Kills the server with SIGKILL (a crash) and leaves it down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sets the environment of the next start (`restart`, `crash_restart`).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }

    /// Starts the server again on the same data after `kill`.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Starts the server on the same data expecting it to refuse to start;
    /// returns what it printed on stderr.
    pub fn start_expecting_failure(&mut self) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_strata-server"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run strata-server");
        assert!(!output.status.success(), "strata-server started on damaged data");
        String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout)
    }

    pub fn stop_graceful(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_sigterm(child.id());
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.kill().unwrap();
            panic!("strata-server did not stop on SIGTERM");
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the process to exit by itself (after SHUTDOWN).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        child.wait().unwrap()
    }
}

fn unsafe_sigterm(pid: u32) {
    Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill -TERM");
}

impl TestServer {
    /// Sends `signal` (`STOP`, `CONT` ...) to the running server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls until `done` holds; panics with `what` once `within` has passed.
pub fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real redis-server on a free port without persistence, to compare
/// with; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// None when redis-server is not installed (`bash .ci/test` installs it).
    pub fn start() -> Option<RedisServer> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let server = RedisServer { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Conn::try_connect(port).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub fn conn(&self) -> Conn {
        Conn::try_connect(self.port).expect("connect to redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Value>),
    Other(String),
}

impl Value {
    pub fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }
}

/// A blocking RESP client.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn try_connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Sends bytes; None when the server is gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> Option<()> {
        self.writer.write_all(bytes).ok()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call_bytes(&args)
    }

    pub fn call_bytes(&mut self, args: &[&[u8]]) -> Value {
        self.send_raw(&encode(args));
        self.read().expect("reply")
    }

    /// A field of INFO (every section), as text.
    pub fn info_field(&mut self, name: &str) -> String {
        let Value::Bulk(text) = self.call(&["INFO", "everything"]) else { panic!("INFO answers a bulk string") };
        let text = String::from_utf8(text).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")).map(str::to_string))
            .unwrap_or_else(|| panic!("{name} not in INFO"))
    }

    /// Reads one reply; None when the server closed the connection.
    pub fn read(&mut self) -> Option<Value> {
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line[1..line.len().saturating_sub(2)]).to_string();
        Some(match line[0] {
            b'+' => Value::Status(text),
            b'-' => Value::Error(text),
            b':' => Value::Int(text.parse().unwrap()),
            b'$' => {
                let len: i64 = text.parse().unwrap();
                if len < 0 {
                    Value::Nil
                } else {
                    let mut data = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut data).ok()?;
                    data.truncate(len as usize);
                    Value::Bulk(data)
                }
            }
            b'*' => {
                let len: i64 = text.parse().unwrap();
                if len < 0 {
                    Value::Nil
                } else {
                    Value::Array((0..len).map(|_| self.read().unwrap()).collect())
                }
            }
            _ => Value::Other(String::from_utf8_lossy(&line).to_string()),
        })
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// Whole-dataset dumps, to compare two servers or one across a restart.

pub fn text(v: &Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).to_string(),
        Value::Status(s) | Value::Error(s) | Value::Other(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Nil => "(nil)".into(),
        Value::Array(items) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(",")),
    }
}

/// Every key of the selected database with its type, TTL flag and whole
/// value, in a form that compares across restarts.
pub fn dump(conn: &mut Conn) -> Vec<String> {
    let Value::Array(keys) = conn.call(&["KEYS", "*"]) else { panic!("KEYS") };
    let mut keys: Vec<String> = keys.iter().map(text).collect();
    keys.sort();
    keys.iter()
        .filter_map(|key| {
            let kind = text(&conn.call(&["TYPE", key]));
            let value = match kind.as_str() {
                // Expired since KEYS listed it.
                "none" => return None,
                "string" => text(&conn.call(&["GET", key])),
                "hash" => sorted(conn.call(&["HGETALL", key])),
                "list" => text(&conn.call(&["LRANGE", key, "0", "-1"])),
                "set" => sorted(conn.call(&["SMEMBERS", key])),
                "zset" => text(&conn.call(&["ZRANGE", key, "0", "-1", "WITHSCORES"])),
                "stream" => {
                    let entries = text(&conn.call(&["XRANGE", key, "-", "+"]));
                    let groups = text(&conn.call(&["XPENDING", key, "g"]));
                    format!("{entries} pending={groups}")
                }
                other => panic!("unexpected type {other} of {key}"),
            };
            let ttl = matches!(conn.call(&["PTTL", key]), Value::Int(t) if t > 0);
            Some(format!("{key} {kind} ttl={ttl} {value}"))
        })
        .collect()
}

pub fn sorted(v: Value) -> String {
    let Value::Array(items) = v else { panic!("array") };
    let mut items: Vec<String> = items.iter().map(text).collect();
    items.sort();
    items.join(",")
}

/// Databases 0 to 3 of `server` (`dump_port`).
pub fn dump_all(server: &TestServer) -> Vec<String> {
    dump_port(server.port)
}

/// Databases 0 to 3 of the server on `port`, each key with its type, TTL
/// flag and value.
pub fn dump_port(port: u16) -> Vec<String> {
    let mut conn = Conn::try_connect(port).expect("connect");
    let mut out = Vec::new();
    for db in 0..4 {
        conn.call(&["SELECT", &db.to_string()]);
        out.extend(dump(&mut conn).into_iter().map(|line| format!("db{db} {line}")));
    }
    out
}

pub fn write_every_type(conn: &mut Conn, round: usize) {
    for i in 0..50 {
        let n = (round * 100 + i).to_string();
        conn.call(&["SET", &format!("s{n}"), &n]);
        conn.call(&["HSET", "h", &format!("f{n}"), &n]);
        conn.call(&["RPUSH", "l", &n]);
        conn.call(&["SADD", "set", &n]);
        conn.call(&["ZADD", "z", &n, &format!("m{n}")]);
        conn.call(&["XADD", "x", "*", "n", &n]);
    }
    conn.call(&["INCRBYFLOAT", "float", "0.1"]);
    conn.call(&["LPOP", "l"]);
    conn.call(&["SPOP", "set"]);
    conn.call(&["ZPOPMIN", "z"]);
    conn.call(&["EXPIRE", "l", "1000"]);
    conn.call(&["SET", "gone", "v", "PX", "1"]);
    conn.call(&["XGROUP", "CREATE", "x", "g", "0", "MKSTREAM"]);
    conn.call(&["XREADGROUP", "GROUP", "g", "c", "COUNT", "3", "STREAMS", "x", ">"]);
    // A transaction across engines.
    conn.call(&["MULTI"]);
    conn.call(&["SET", "tx:string", &round.to_string()]);
    conn.call(&["RPUSH", "tx:list", &round.to_string()]);
    conn.call(&["ZINCRBY", "tx:zset", "1", "m"]);
    assert!(matches!(conn.call(&["EXEC"]), Value::Array(_)));
    // Other databases, SWAPDB and FLUSHDB.
    conn.call(&["SELECT", "2"]);
    conn.call(&["RPUSH", "other", &round.to_string()]);
    conn.call(&["SET", "other:s", "x"]);
    conn.call(&["SELECT", "3"]);
    conn.call(&["SADD", "doomed", "x"]);
    conn.call(&["FLUSHDB"]);
    conn.call(&["SADD", "kept", &round.to_string()]);
    conn.call(&["SWAPDB", "1", "2"]);
    conn.call(&["SELECT", "0"]);
    // `gone` (PX 1) must be gone before anything is compared: a dump
    // within its millisecond would list it and a later one would not.
    std::thread::sleep(std::time::Duration::from_millis(10));
}
