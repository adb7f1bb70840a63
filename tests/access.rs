//! Who gets served: protected mode (clients from other hosts), the
//! Dockerfile's command line, AUTH and `maxclients` while loading.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Conn, RedisServer, TestServer, Value};

/// Redis 7.0's refusal, as redis-server 7.0 sends it.
const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// A non-loopback address of this machine, on an interface made for the
/// test (root and iproute2 needed) and deleted when this is dropped.
/// Connections from it to 127.0.0.1 come from a peer that is not loopback.
struct TestInterface {
    name: String,
    addr: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

impl TestInterface {
    fn create() -> Result<TestInterface, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("st{}x{n}", pid % 1_000_000);
        let addr = Ipv4Addr::new(10, 254, (pid % 251) as u8, n as u8 + 1);
        // A dummy interface where the kernel has them, else a veth pair.
        ip(&["link", "add", &name, "type", "dummy"])
            .or_else(|_| ip(&["link", "add", &name, "type", "veth", "peer", "name", &format!("{name}p")]))?;
        let interface = TestInterface { name, addr };
        ip(&["addr", "add", &format!("{addr}/32"), "dev", &interface.name])?;
        ip(&["link", "set", &interface.name, "up"])?;
        Ok(interface)
    }

    /// A client connection to `port` on 127.0.0.1 from this address.
    fn connect(&self, port: u16) -> TcpStream {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((self.addr, 0).into()).unwrap();
            socket.connect((Ipv4Addr::LOCALHOST, port).into()).await.expect("connect from the test interface")
        });
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream
    }
}

impl Drop for TestInterface {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// The test interface, or None after saying why the test cannot make one.
fn test_interface() -> Option<TestInterface> {
    match TestInterface::create() {
        Ok(interface) => Some(interface),
        Err(why) => {
            eprintln!("SKIPPED: no non-loopback address can be made here ({why}); needs root and iproute2");
            None
        }
    }
}

/// Everything the server sends until it closes the connection.
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read until closed");
    String::from_utf8(bytes).unwrap()
}

/// Sends PING and reads the first reply line.
fn ping(stream: &mut TcpStream) -> String {
    stream.write_all(b"PING\r\n").unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn protected_mode_refuses_clients_from_other_hosts_while_no_password_is_set() {
    let Some(interface) = test_interface() else { return };
    let server = TestServer::start();
    let mut conn = server.conn();
    assert_eq!(
        conn.call(&["CONFIG", "GET", "protected-mode"]),
        Value::Array(vec![Value::bulk("protected-mode"), Value::bulk("yes")])
    );
    assert_eq!(read_until_closed(&mut interface.connect(server.port)), DENIED);
    assert_eq!(conn.info_field("rejected_connections"), "1");
    // Loopback clients are still served.
    assert_eq!(conn.call(&["PING"]), Value::Status("PONG".into()));

    assert_eq!(conn.call(&["CONFIG", "SET", "protected-mode", "no"]), Value::Status("OK".into()));
    assert_eq!(ping(&mut interface.connect(server.port)), "+PONG\r\n");

    // With a password, other hosts may connect and must AUTH.
    assert_eq!(conn.call(&["CONFIG", "SET", "protected-mode", "yes"]), Value::Status("OK".into()));
    assert_eq!(conn.call(&["CONFIG", "SET", "requirepass", "s3cret"]), Value::Status("OK".into()));
    assert_eq!(ping(&mut interface.connect(server.port)), "-NOAUTH Authentication required.\r\n");
}

/// The refusal is byte for byte redis-server's (when it is installed).
#[test]
fn protected_mode_refusal_is_redis_servers() {
    let Some(interface) = test_interface() else { return };
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let refusal = read_until_closed(&mut interface.connect(redis.port));
    assert_eq!(refusal, DENIED);
}

/// The words of one exec-form instruction (`CMD ["a", "b"]`) of the
/// Dockerfile's last stage.
fn dockerfile_instruction(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let line = text
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("the Dockerfile has no {name}"));
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{name} is not in exec form: {e}"))
}

/// No Docker engine here: the image's command line is run as is, with its
/// data directory in a temp dir and a free port.
#[test]
fn the_docker_images_command_line_starts_and_serves_other_hosts() {
    let entrypoint = dockerfile_instruction("ENTRYPOINT");
    assert_eq!(entrypoint, ["strata-server"], "the image runs the server it copies to /usr/local/bin");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> = dockerfile_instruction("CMD")
        .into_iter()
        .map(|arg| if arg == "/data" { data.path().display().to_string() } else { arg })
        .chain(["--port".to_string(), port.to_string()])
        .collect();
    let mut server = Command::new(env!("CARGO_BIN_EXE_strata-server"))
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .expect("start strata-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        if let Ok(conn) = Conn::try_connect(port) {
            break conn;
        }
        assert!(server.try_wait().unwrap().is_none(), "strata-server {args:?} exited");
        assert!(Instant::now() < deadline, "strata-server {args:?} never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let served = loop {
        match conn.call(&["SET", "k", "v"]) {
            Value::Error(e) if e.starts_with("LOADING") => std::thread::sleep(Duration::from_millis(20)),
            other => break other,
        }
    };
    assert_eq!(served, Value::Status("OK".into()));
    assert_eq!(
        conn.call(&["CONFIG", "GET", "dir"]),
        Value::Array(vec![Value::bulk("dir"), Value::bulk(&data.path().display().to_string())])
    );
    // A container's clients come from Docker's network, not its loopback.
    if let Some(interface) = test_interface() {
        assert_eq!(ping(&mut interface.connect(port)), "+PONG\r\n");
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// A server with 300 list records in its log, started again and still
/// replaying them (5 ms a record), with `conn`'s first connection made.
fn loading_server(flags: &[&str]) -> TestServer {
    let mut args = vec!["--key-load-delay", "5000"];
    args.extend_from_slice(flags);
    let mut server = TestServer::start_with(&args);
    let mut conn = server.conn();
    if let Some(password) = flags.iter().position(|f| *f == "--requirepass").map(|i| flags[i + 1]) {
        assert_eq!(conn.call(&["AUTH", password]), Value::Status("OK".into()));
    }
    for i in 0..300 {
        conn.call(&["RPUSH", "list", &i.to_string()]);
    }
    drop(conn);
    server.kill();
    server.spawn_without_waiting();
    server
}

fn connect_while_loading(server: &TestServer) -> Conn {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Conn::try_connect(server.port) {
            Ok(conn) => return conn,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("server never listened: {e}"),
        }
    }
}

/// Calls until the server answers something else than LOADING.
fn call_after_loading(conn: &mut Conn, args: &[&str]) -> Value {
    loop {
        match conn.call(args) {
            Value::Error(e) if e.starts_with("LOADING") => std::thread::sleep(Duration::from_millis(20)),
            other => return other,
        }
    }
}

#[test]
fn info_while_loading_needs_auth_when_a_password_is_set() {
    let server = loading_server(&["--requirepass", "s3cret"]);
    let mut conn = connect_while_loading(&server);
    let noauth = Value::Error("NOAUTH Authentication required.".into());
    let loading = Value::Error("LOADING Strata is loading the dataset in memory".into());
    // The progress is shown to no stranger.
    assert_eq!(conn.call(&["INFO"]), noauth);
    assert_eq!(conn.call(&["INFO", "persistence"]), noauth);
    assert_eq!(conn.call(&["LLEN", "list"]), loading);
    // AUTH is answered once loading is done.
    assert_eq!(conn.call(&["AUTH", "s3cret"]), loading);
    assert_eq!(call_after_loading(&mut conn, &["AUTH", "s3cret"]), Value::Status("OK".into()));
    assert_eq!(conn.call(&["LLEN", "list"]), Value::Int(300));
}

#[test]
fn connections_made_while_loading_count_against_maxclients() {
    let server = loading_server(&["--maxclients", "2"]);
    let loading = Value::Error("LOADING Strata is loading the dataset in memory".into());
    let mut first = connect_while_loading(&server);
    assert_eq!(first.call(&["PING"]), loading);
    let mut second = Conn::try_connect(server.port).unwrap();
    assert_eq!(second.call(&["PING"]), loading);
    let mut third = Conn::try_connect(server.port).unwrap();
    assert_eq!(third.read(), Some(Value::Error("ERR max number of clients reached".into())));
    assert_eq!(third.read(), None);
    // The two become ordinary clients and still count.
    assert_eq!(call_after_loading(&mut first, &["PING"]), Value::Status("PONG".into()));
    assert_eq!(call_after_loading(&mut second, &["PING"]), Value::Status("PONG".into()));
    let mut fourth = Conn::try_connect(server.port).unwrap();
    assert_eq!(fourth.read(), Some(Value::Error("ERR max number of clients reached".into())));
    assert_eq!(first.info_field("rejected_connections"), "2");
}
