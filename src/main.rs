//! `strata-server [config-file] [--name value ...]`: any parameter of the config
//! file as a flag (`--port 7000`, `--metrics-port 9121` for Prometheus).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use strata::config::Config;
use strata::memory_usage::CountingAllocator;

/// Counts heap bytes for INFO's used_memory and the maxmemory limit.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("strata-server v={}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR ***\n{e}");
            std::process::exit(1);
        }
    };
    // Redis's log levels, unless RUST_LOG says otherwise.
    let level = match config.loglevel() {
        "debug" => "debug",
        "verbose" => "debug",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    // openraft narrates every vote and append at info: only its warnings
    // belong in a server log.
    let quiet_raft = if level == "debug" { String::new() } else { ",openraft=warn".to_string() };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level}{quiet_raft}")));
    // Colours only on a terminal: a log file or journal gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // A command that panics is answered with an error and taken back
    // (`commands::execute`); the log says where, through tracing.
    std::panic::set_hook(Box::new(|panic| tracing::error!("{panic}")));
    // Fault injection, in builds with the `failpoints` feature (tests).
    let _failpoints = fail::FailScenario::setup();

    // Loading, accepting, the cron and the metrics endpoint: connections
    // run on threads of their own (`Server::serve_connection`).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(strata::loading::start(config));
    if let Err(e) = result {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}
