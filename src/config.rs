//! Configuration with Redis's parameter names.
//!
//! Every parameter Redis 7 knows is accepted and remembered (its default is
//! Redis's, from `config-defaults.tsv`), so CONFIG GET/SET from existing tools
//! and config files work; Strata acts on the ones that apply to it. A name
//! Redis does not know is rejected as Redis rejects it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::protocol::split_inline_args;

/// Redis 7.0's parameters and defaults, dumped from a real redis-server by
/// `redis-tests/tools/dump_config_defaults.py`.
const REDIS_DEFAULTS: &str = include_str!("config-defaults.tsv");

/// Where Strata's defaults differ from Redis's: a newcomer's server keeps
/// its data under ./strata-data and listens on loopback only.
const STRATA_DEFAULTS: &[(&str, &str)] = &[("dir", "./strata-data"), ("bind", "127.0.0.1")];

/// Strata's own parameters, which Redis does not have, with their defaults.
/// `metrics-port`: the Prometheus endpoint's port on the `bind` addresses
/// (0 = off). `key-load-delay`: Redis's hidden test setting, microseconds
/// of delay per log record replayed at startup (tests watch LOADING).
/// `log-max-size`: bytes of log on disk past which write commands are
/// refused with MISCONF (0: no limit); the log grows that big only while
/// checkpoints or RocksDB flushes fail, which its truncation waits for.
/// `checkpoint-mtbf-hours`, `checkpoint-min-interval`,
/// `checkpoint-max-interval` (seconds): the memory checkpoints' interval is
/// the one that minimizes their cost plus the replay expected after a
/// crash, one crash per MTBF, within the bounds (`checkpoint_interval`).
/// `log-archive-repo`: a backup repository (`strata-backup --repo`) into
/// which every closed log segment is copied before it is deleted (empty:
/// off); `log-archive-timeout` (seconds, 0 = never): the open segment is
/// closed once it is that old, so the archive lags by at most that much.
const STRATA_PARAMS: &[(&str, &str)] = &[
    ("metrics-port", "0"),
    ("key-load-delay", "0"),
    ("log-max-size", "17179869184"),
    ("checkpoint-mtbf-hours", "24"),
    ("checkpoint-min-interval", "60"),
    ("checkpoint-max-interval", "3600"),
    ("log-archive-repo", ""),
    ("log-archive-timeout", "60"),
];

/// Redis's old names of parameters, and their names now: setting either
/// sets both (CONFIG GET shows both, CONFIG REWRITE writes the new one).
const ALIASES: &[(&str, &str)] = &[
    ("slaveof", "replicaof"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
    ("slave-priority", "replica-priority"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("cluster-slave-validity-factor", "cluster-replica-validity-factor"),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
];

/// The parameter's current name (itself unless it is an old one).
fn current_name(name: &str) -> &str {
    ALIASES.iter().find(|(old, _)| *old == name).map_or(name, |(_, new)| new)
}

/// Parameters that take a size with an optional unit (`1gb`, `512mb`).
const MEMORY_PARAMS: &[&str] = &[
    "maxmemory",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "maxmemory-clients",
    "active-defrag-ignore-bytes",
    "auto-aof-rewrite-min-size",
    "log-max-size",
    "repl-backlog-size",
];

/// Parameters Redis refuses to change at run time ("can't set immutable
/// config").
const IMMUTABLE_PARAMS: &[&str] = &[
    "aclfile",
    "always-show-logo",
    "aof_rewrite_cpulist",
    "appenddirname",
    "appendfilename",
    "bgsave_cpulist",
    "bio_cpulist",
    "cluster-config-file",
    "cluster-enabled",
    "cluster-port",
    "daemonize",
    "databases",
    "disable-thp",
    "enable-debug-command",
    "enable-module-command",
    "enable-protected-configs",
    "io-threads",
    "io-threads-do-reads",
    "logfile",
    "metrics-port",
    "pidfile",
    "rdbchecksum",
    "replicaof",
    "server_cpulist",
    "set-proc-title",
    "slaveof",
    "socket-mark-id",
    "supervised",
    "syslog-enabled",
    "syslog-facility",
    "syslog-ident",
    "tcp-backlog",
    "unixsocket",
    "unixsocketperm",
];

/// Parameters Redis protects unless `enable-protected-configs` allows it
/// (it is immutable and off by default, so they never change at run time).
const PROTECTED_PARAMS: &[&str] = &["dbfilename", "dir"];

/// Parameters that take one of a fixed set of words, in Redis's order (the
/// order its error text lists them in). `shutdown-on-*` take several.
const ENUM_PARAMS: &[(&str, &[&str])] = &[
    ("acl-pubsub-default", &["allchannels", "resetchannels"]),
    ("appendfsync", &["everysec", "always", "no"]),
    ("cluster-preferred-endpoint-type", &["ip", "hostname", "unknown-endpoint"]),
    ("loglevel", &["debug", "verbose", "notice", "warning"]),
    (
        "maxmemory-policy",
        &[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ],
    ),
    ("oom-score-adj", &["no", "yes", "relative", "absolute"]),
    ("propagation-error-behavior", &["ignore", "panic", "panic-on-replicas"]),
    ("repl-diskless-load", &["disabled", "on-empty-db", "swapdb"]),
    ("sanitize-dump-payload", &["no", "yes", "clients"]),
    ("shutdown-on-sigint", &["default", "save", "nosave", "now", "force"]),
    ("shutdown-on-sigterm", &["default", "save", "nosave", "now", "force"]),
    ("tls-auth-clients", &["no", "yes", "optional"]),
];

/// Why CONFIG SET may not change a parameter at all, in Redis's words.
pub fn unsettable_reason(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    if IMMUTABLE_PARAMS.contains(&name.as_str()) {
        Some("can't set immutable config")
    } else if PROTECTED_PARAMS.contains(&name.as_str()) {
        Some("can't set protected config")
    } else {
        None
    }
}

/// A parameter failed validation; the text is Redis's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    #[error("CONFIG SET failed (possibly related to argument '{0}') - {1}")]
    Invalid(String, String),
    #[error("Bad directive or wrong number of arguments in {0} line {1}: {2}")]
    BadLine(String, usize, String),
    #[error("{0}")]
    Io(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Integer,
    Memory,
    Text,
}

/// The server's configuration: every parameter by name, as CONFIG GET shows it.
#[derive(Clone, Debug)]
pub struct Config {
    values: BTreeMap<String, String>,
    /// The file the server was started with, if any.
    pub config_file: Option<PathBuf>,
    /// Parsed once per change: connections read these per batch of
    /// requests, and three lookups and parses by name were a tenth of a
    /// SET's instructions.
    session: SessionSettings,
}

/// The settings a connection applies to each batch of requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionSettings {
    /// `timeout`: seconds a client may idle (0: forever).
    pub timeout_secs: u64,
    /// `client-query-buffer-limit`, in bytes.
    pub query_limit: usize,
    /// `proto-max-bulk-len`.
    pub max_bulk_len: i64,
    /// `requirepass` is set: clients must authenticate.
    pub password_set: bool,
    /// `client-output-buffer-limit`.
    pub output_limits: OutputBufferLimits,
}

impl Config {
    /// `notify-keyspace-events` as flags (`crate::notify`).
    pub fn notify_flags(&self) -> u32 {
        self.get("notify-keyspace-events").and_then(crate::notify::parse_flags).unwrap_or(0)
    }
}

/// The classes of clients `client-output-buffer-limit` sets limits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    Normal,
    Replica,
    Pubsub,
}

impl ClientClass {
    const ALL: [ClientClass; 3] = [ClientClass::Normal, ClientClass::Replica, ClientClass::Pubsub];

    /// Redis's `getClientTypeByName`, without `master`, which has no limits
    /// of its own.
    fn by_name(name: &str) -> Option<ClientClass> {
        match name.to_ascii_lowercase().as_str() {
            "normal" => Some(ClientClass::Normal),
            "slave" | "replica" => Some(ClientClass::Replica),
            "pubsub" => Some(ClientClass::Pubsub),
            _ => None,
        }
    }

    /// The name CONFIG GET shows.
    fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::Pubsub => "pubsub",
        }
    }
}

/// One class's output buffer limits: over `hard` bytes, or over `soft`
/// bytes for longer than `soft_seconds`, the client is closed. 0 turns a
/// limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputBufferLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit`: the limits of each client class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputBufferLimits([OutputBufferLimit; 3]);

impl OutputBufferLimits {
    /// The limits of one class.
    pub fn of(&self, class: ClientClass) -> OutputBufferLimit {
        self.0[class as usize]
    }

    /// Applies `class hard soft soft_seconds ...` (any of the classes, in
    /// any order) as Redis's `setConfigClientOutputBufferLimitOption` does:
    /// all of it or, with Redis's message, none of it.
    fn apply(&mut self, text: &str) -> Result<(), &'static str> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.");
        }
        let mut updated = *self;
        for group in words.chunks(4) {
            let class = ClientClass::by_name(group[0])
                .ok_or("Invalid client class specified in buffer limit configuration.")?;
            let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            updated.0[class as usize] = OutputBufferLimit {
                hard: parse_memory(group[1]).ok_or(bad)?,
                soft: parse_memory(group[2]).ok_or(bad)?,
                soft_seconds: group[3].parse().map_err(|_| bad)?,
            };
        }
        *self = updated;
        Ok(())
    }

    /// The form CONFIG GET shows: every class, in bytes.
    fn text(&self) -> String {
        let classes = ClientClass::ALL.map(|class| {
            let limit = self.of(class);
            format!("{} {} {} {}", class.name(), limit.hard, limit.soft, limit.soft_seconds)
        });
        classes.join(" ")
    }

    fn from_config(values: &BTreeMap<String, String>) -> OutputBufferLimits {
        let mut limits = OutputBufferLimits([OutputBufferLimit::default(); 3]);
        let text = values.get(OUTPUT_BUFFER_LIMIT).map_or("", String::as_str);
        limits.apply(text).expect("stored in the form `apply` reads");
        limits
    }
}

/// The parameter whose value `OutputBufferLimits` parses.
const OUTPUT_BUFFER_LIMIT: &str = "client-output-buffer-limit";

impl Default for Config {
    fn default() -> Self {
        let mut values: BTreeMap<String, String> = REDIS_DEFAULTS
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        for (name, value) in STRATA_DEFAULTS.iter().chain(STRATA_PARAMS) {
            values.insert(name.to_string(), value.to_string());
        }
        Config { session: SessionSettings::parse(&values), values, config_file: None }
    }
}

/// A parameter's value as a number (0 when it is not one).
fn number_in(values: &BTreeMap<String, String>, name: &str) -> i64 {
    values.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl SessionSettings {
    fn parse(values: &BTreeMap<String, String>) -> SessionSettings {
        let number = |name| number_in(values, name);
        SessionSettings {
            timeout_secs: number("timeout").max(0) as u64,
            query_limit: usize::try_from(number("client-query-buffer-limit")).unwrap_or(0),
            max_bulk_len: number("proto-max-bulk-len"),
            password_set: values.get("requirepass").is_some_and(|p| !p.is_empty()),
            output_limits: OutputBufferLimits::from_config(values),
        }
    }
}

fn kind_of(name: &str, default: &str) -> Kind {
    if MEMORY_PARAMS.contains(&name) {
        Kind::Memory
    } else if default == "yes" || default == "no" {
        Kind::Bool
    } else if !default.is_empty() && default.parse::<i64>().is_ok() {
        Kind::Integer
    } else {
        Kind::Text
    }
}

/// Redis's `memtoull`: a number with an optional b/k/kb/m/mb/g/gb unit.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let digits_end = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(digits_end);
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

impl Config {
    /// Builds the configuration from `strata-server [config-file] [--name value ...]`.
    pub fn from_args(args: &[String]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut rest = args;
        if let Some(first) = rest.first() {
            if !first.starts_with("--") {
                config.load_file(PathBuf::from(first))?;
                rest = &rest[1..];
            }
        }
        let mut i = 0;
        while i < rest.len() {
            let name = rest[i]
                .strip_prefix("--")
                .ok_or_else(|| ConfigError::BadLine("arguments".into(), i + 1, rest[i].clone()))?;
            let mut values = Vec::new();
            i += 1;
            while i < rest.len() && !rest[i].starts_with("--") {
                values.push(rest[i].clone());
                i += 1;
            }
            config
                .set(name, &values.join(" "))
                .map_err(|e| ConfigError::BadLine("arguments".into(), i, e.to_string()))?;
        }
        Ok(config)
    }

    fn load_file(&mut self, path: PathBuf) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::Io(format!("can't open config file '{}': {e}", path.display())))?;
        let file = path.display().to_string();
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let bad = |why: String| ConfigError::BadLine(file.clone(), number + 1, why);
            let words = split_inline_args(trimmed.as_bytes()).ok_or_else(|| bad("unbalanced quotes".into()))?;
            let words: Vec<String> = words.into_iter().map(|w| String::from_utf8_lossy(&w).into_owned()).collect();
            let (name, values) = words.split_first().ok_or_else(|| bad(line.into()))?;
            self.set(name, &values.join(" ")).map_err(|e| bad(e.to_string()))?;
        }
        self.config_file = Some(path);
        Ok(())
    }

    /// Sets one parameter after validating it as Redis would.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let name = name.to_ascii_lowercase();
        let Some(default) = REDIS_DEFAULTS
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .chain(STRATA_PARAMS.iter().copied())
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d)
        else {
            return Err(ConfigError::Unknown(name));
        };
        let invalid = |why: &str| ConfigError::Invalid(name.clone(), why.to_string());
        let allowed = ENUM_PARAMS.iter().find(|(n, _)| *n == name).map(|(_, words)| *words);
        let normalized = match allowed {
            Some(words) => {
                let lower = value.to_ascii_lowercase();
                let chosen: Vec<&str> = lower.split_whitespace().collect();
                let multi = name.starts_with("shutdown-on-");
                if chosen.is_empty() || (!multi && chosen.len() > 1) || chosen.iter().any(|w| !words.contains(w)) {
                    return Err(invalid(&format!("argument(s) must be one of the following: {}", words.join(", "))));
                }
                chosen.join(" ")
            }
            None if name == "notify-keyspace-events" => match crate::notify::parse_flags(value) {
                Some(flags) => crate::notify::stored_flags(flags),
                None => return Err(invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")),
            },
            None if name == OUTPUT_BUFFER_LIMIT => {
                let mut limits = self.session.output_limits;
                limits.apply(value).map_err(invalid)?;
                limits.text()
            }
            None => Config::normalize(&name, default, value)?,
        };
        match name.as_str() {
            "databases" if !(1..=i32::MAX as i64).contains(&normalized.parse().unwrap_or(0)) => {
                return Err(invalid("argument must be between 1 and 2147483647 inclusive"))
            }
            "port" | "metrics-port" if !(0..=65535).contains(&normalized.parse().unwrap_or(-1)) => {
                return Err(invalid("argument must be between 0 and 65535 inclusive"))
            }
            "log-archive-timeout" if normalized.parse::<i64>().unwrap_or(-1) < 0 => {
                return Err(invalid("argument must be between 0 and 9223372036854775807 inclusive"))
            }
            "checkpoint-mtbf-hours" | "checkpoint-min-interval" | "checkpoint-max-interval"
                if !(1..=i32::MAX as i64).contains(&normalized.parse().unwrap_or(0)) =>
            {
                return Err(invalid("argument must be between 1 and 2147483647 inclusive"))
            }
            // A replica's log holds its master's records only: local writes
            // would take sequences the master's records need.
            "replica-read-only" | "slave-read-only" if normalized == "no" => {
                return Err(invalid("Strata replicas are always read-only"))
            }
            "maxclients" if normalized.parse::<i64>().unwrap_or(0) < 1 => {
                return Err(invalid("argument must be between 1 and 4294967295 inclusive"))
            }
            _ => {}
        }
        if let Some((old, new)) = ALIASES.iter().find(|(old, new)| *old == name || *new == name) {
            self.values.insert(old.to_string(), normalized.clone());
            self.values.insert(new.to_string(), normalized);
        } else {
            self.values.insert(name, normalized);
        }
        self.session = SessionSettings::parse(&self.values);
        Ok(())
    }

    pub fn session(&self) -> SessionSettings {
        self.session
    }

    /// A value in the form CONFIG GET shows, checked against the kind of
    /// value the parameter's default has.
    fn normalize(name: &str, default: &str, value: &str) -> Result<String, ConfigError> {
        let invalid = |why: &str| ConfigError::Invalid(name.to_string(), why.to_string());
        Ok(match kind_of(name, default) {
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                v @ ("yes" | "no") => v.to_string(),
                _ => return Err(invalid("argument must be 'yes' or 'no'")),
            },
            Kind::Integer => {
                value.parse::<i64>().map_err(|_| invalid("argument couldn't be parsed into an integer"))?.to_string()
            }
            Kind::Memory => parse_memory(value).ok_or_else(|| invalid("argument must be a memory value"))?.to_string(),
            Kind::Text => value.to_string(),
        })
    }

    /// CONFIG REWRITE: writes the running configuration back to the file
    /// the server was started with. Lines of parameters keep their place
    /// (with the current value), comments stay, repeated lines of one
    /// parameter collapse into one, and parameters that differ from the
    /// defaults but were not in the file are appended, as Redis does.
    pub fn rewrite(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.config_file else {
            return Err(ConfigError::Io("The server is running without a config file".into()));
        };
        let io = |e: std::io::Error| ConfigError::Io(format!("Rewriting config file: {e}"));
        let old = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut written = std::collections::BTreeSet::new();
        let mut out = String::new();
        for line in old.lines() {
            let directive = split_inline_args(line.trim().as_bytes())
                .and_then(|words| words.into_iter().next())
                .map(|w| String::from_utf8_lossy(&w).to_ascii_lowercase());
            match directive.map(|name| current_name(&name).to_string()) {
                Some(name) if !line.trim_start().starts_with('#') && self.values.contains_key(&name) => {
                    // A master's file names no master: Redis drops the lines.
                    let no_master = name == "replicaof" && self.values[&name].is_empty();
                    if written.insert(name.clone()) && !no_master {
                        out.push_str(&config_line(&name, &self.values[&name]));
                    }
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        let defaults = Config::default();
        let mut header = false;
        for (name, value) in &self.values {
            if written.contains(name) || defaults.values.get(name) == Some(value) || current_name(name) != name {
                continue;
            }
            if !header {
                out.push_str("# Generated by CONFIG REWRITE\n");
                header = true;
            }
            out.push_str(&config_line(name, value));
        }
        // Write a sibling file and rename it over the old one, so a crash
        // never leaves half a config file.
        let tmp = path.with_extension("rewrite-tmp");
        std::fs::write(&tmp, out).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every parameter whose name matches the glob, as CONFIG GET lists them.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&str, &str)> {
        self.values
            .iter()
            .filter(|(name, _)| crate::glob::glob_match(pattern, name.as_bytes(), true))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    pub fn number(&self, name: &str) -> i64 {
        number_in(&self.values, name)
    }

    /// `log-archive-repo` (None: archiving off) and `log-archive-timeout`.
    pub fn log_archive(&self) -> (Option<PathBuf>, std::time::Duration) {
        let repo = self.get("log-archive-repo").filter(|repo| !repo.is_empty()).map(PathBuf::from);
        (repo, std::time::Duration::from_secs(self.number("log-archive-timeout").max(0) as u64))
    }

    pub fn port(&self) -> u16 {
        self.number("port") as u16
    }

    /// The Prometheus endpoint's port; 0 = no endpoint.
    pub fn metrics_port(&self) -> u16 {
        self.number("metrics-port") as u16
    }

    pub fn bind(&self) -> Vec<String> {
        self.get("bind").unwrap_or("127.0.0.1").split_whitespace().map(str::to_string).collect()
    }

    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.get("dir").unwrap_or("./strata-data"))
    }

    pub fn databases(&self) -> usize {
        self.number("databases").max(1) as usize
    }

    /// Threads serving connections (Redis's default, 1: every client on
    /// one thread).
    pub fn io_threads(&self) -> usize {
        self.number("io-threads").clamp(1, 128) as usize
    }

    pub fn maxclients(&self) -> usize {
        self.number("maxclients").max(1) as usize
    }

    /// `protected-mode yes`: without a password, only loopback clients
    /// are served.
    pub fn protected_mode(&self) -> bool {
        self.get("protected-mode") == Some("yes")
    }

    pub fn requirepass(&self) -> Option<&str> {
        self.get("requirepass").filter(|p| !p.is_empty())
    }

    pub fn loglevel(&self) -> &str {
        self.get("loglevel").unwrap_or("notice")
    }

    pub fn hz(&self) -> u64 {
        self.number("hz").clamp(1, 500) as u64
    }
}

/// One `name value` line of a config file; values that the file parser
/// would split or unescape differently are quoted.
fn config_line(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && !value.contains("  ")
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && value.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\')));
    if plain {
        format!("{name} {value}\n")
    } else {
        let mut quoted = String::from("\"");
        for c in value.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                '\t' => quoted.push_str("\\t"),
                c if (c as u32) < 0x20 => quoted.push_str(&format!("\\x{:02x}", c as u32)),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        format!("{name} {quoted}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_redis_with_strata_overrides() {
        let config = Config::default();
        assert_eq!(config.port(), 6379);
        assert_eq!(config.databases(), 16);
        assert_eq!(config.get("dir"), Some("./strata-data"));
        assert_eq!(config.get("maxmemory-policy"), Some("noeviction"));
    }

    #[test]
    fn args_and_validation() {
        let args: Vec<String> =
            ["--port", "7001", "--save", "900", "1", "--maxmemory", "1mb"].iter().map(|s| s.to_string()).collect();
        let config = Config::from_args(&args).unwrap();
        assert_eq!(config.port(), 7001);
        assert_eq!(config.get("save"), Some("900 1"));
        assert_eq!(config.get("maxmemory"), Some("1048576"));
        assert_eq!(config.metrics_port(), 0);
        let config = Config::from_args(&["--metrics-port".to_string(), "9121".to_string()]).unwrap();
        assert_eq!(config.metrics_port(), 9121);
        assert_eq!(unsettable_reason("metrics-port"), Some("can't set immutable config"));
        let mut config = Config::default();
        assert!(config.set("metrics-port", "70000").is_err());
        assert!(config.set("metrics-port", "x").is_err());
        assert_eq!(config.set("nope", "1"), Err(ConfigError::Unknown("nope".into())));
        assert!(config.set("maxclients", "abc").is_err());
        assert!(config.set("appendonly", "maybe").is_err());
        assert!(config.set("appendfsync", "sometimes").is_err());
        config.set("lazyfree-lazy-eviction", "yes").unwrap();
        assert_eq!(config.get("lazyfree-lazy-eviction"), Some("yes"));
    }

    #[test]
    fn old_names_set_the_new_ones_and_replicas_stay_read_only() {
        let mut config = Config::default();
        config.set("min-slaves-to-write", "2").unwrap();
        assert_eq!((config.get("min-replicas-to-write"), config.get("min-slaves-to-write")), (Some("2"), Some("2")));
        config.set("replica-priority", "7").unwrap();
        assert_eq!(config.get("slave-priority"), Some("7"));
        for name in ["replica-read-only", "slave-read-only"] {
            let err = config.set(name, "no").unwrap_err().to_string();
            assert!(err.contains("always read-only"), "{err}");
        }
        assert_eq!(config.get("replica-read-only"), Some("yes"));
    }

    #[test]
    fn enums_and_unsettable() {
        let mut config = Config::default();
        let err = config.set("maxmemory-policy", "foo").unwrap_err().to_string();
        assert!(err.ends_with("must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"), "{err}");
        config.set("maxmemory-policy", "ALLKEYS-LRU").unwrap();
        assert_eq!(config.get("maxmemory-policy"), Some("allkeys-lru"));
        config.set("shutdown-on-sigterm", "nosave now").unwrap();
        assert!(config.set("loglevel", "debug notice").is_err());
        assert_eq!(unsettable_reason("Daemonize"), Some("can't set immutable config"));
        assert_eq!(unsettable_reason("dir"), Some("can't set protected config"));
        assert_eq!(unsettable_reason("hz"), None);
    }

    #[test]
    fn rewrite_keeps_comments_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.conf");
        std::fs::write(&path, "# my server\nport 7001\nsave 900 1\nsave 300 10\n").unwrap();
        let mut config = Config::from_args(&[path.display().to_string()]).unwrap();
        config.set("port", "7002").unwrap();
        config.set("requirepass", "a \"b\" c").unwrap();
        config.set("maxmemory", "1mb").unwrap();
        config.rewrite().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my server\nport 7002\nsave 300 10\n"), "{text}");
        let again = Config::from_args(&[path.display().to_string()]).unwrap();
        assert_eq!(again.get("requirepass"), Some("a \"b\" c"));
        assert_eq!(again.get("maxmemory"), Some("1048576"));
        assert_eq!(again.port(), 7002);
        assert!(Config::default().rewrite().is_err());
    }

    #[test]
    fn output_buffer_limits_read_and_show_as_in_redis() {
        let mut config = Config::default();
        let shown = |config: &Config| config.get("client-output-buffer-limit").unwrap().to_string();
        assert_eq!(shown(&config), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        config.set("client-output-buffer-limit", "normal 1mb 2MB 3").unwrap();
        config.set("client-output-buffer-limit", "REPLICA 1 1 1").unwrap();
        assert_eq!(shown(&config), "normal 1048576 2097152 3 slave 1 1 1 pubsub 33554432 8388608 60");
        let normal = config.session().output_limits.of(ClientClass::Normal);
        assert_eq!(normal, OutputBufferLimit { hard: 1 << 20, soft: 2 << 20, soft_seconds: 3 });
        let error = |value: &str| Config::default().set("client-output-buffer-limit", value).unwrap_err().to_string();
        let prefix = "CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - ";
        assert_eq!(error("normal 1mb"), format!("{prefix}Wrong number of arguments in buffer limit configuration."));
        for class in ["master", "foo"] {
            assert_eq!(
                error(&format!("{class} 1 1 1")),
                format!("{prefix}Invalid client class specified in buffer limit configuration.")
            );
        }
        for limits in ["normal x 1 1", "normal -1 1 1", "normal 1 1 -1", "normal 1 1 1s"] {
            assert_eq!(
                error(limits),
                format!("{prefix}Error in hard, soft or soft_seconds setting in buffer limit configuration.")
            );
        }
        // A bad class anywhere leaves every class as it was.
        assert!(config.set("client-output-buffer-limit", "pubsub 5 5 5 master 1 1 1").is_err());
        assert_eq!(config.session().output_limits.of(ClientClass::Pubsub).hard, 33554432);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("1xb"), None);
        assert_eq!(parse_memory("-1"), None);
    }
}
