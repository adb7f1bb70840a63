//! The server's log as an operator reads it from a file.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Conn, Value};

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("strata.log");
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_strata-server"))
        .args(["--port", &port.to_string(), "--loglevel", "notice", "--dir"])
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start strata-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut conn) = Conn::try_connect(port) {
            if conn.call(&["PING"]) == Value::Status("PONG".into()) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "strata-server did not answer PING");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").arg("-TERM").arg(server.id().to_string()).status().unwrap();
    assert!(server.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("Ready to accept connections"), "{log}");
    assert!(log.contains("Strata is now ready to exit, bye bye..."), "{log}");
    assert!(!log.contains("\x1b["), "colour codes in the log file:\n{log:?}");
}
