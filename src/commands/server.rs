//! Server commands: INFO, CONFIG, CLIENT, TIME, SHUTDOWN.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::args::{c_text, parse_int, Args};
use super::connection::REDIS_COMPAT_VERSION;
use super::{Command, CommandTable, Ctx};
use crate::client::ClientShared;
use crate::config::{unsettable_reason, ConfigError};
use crate::error::{CmdError, CmdResult};
use crate::keyspace::Tx;
use crate::protocol::Reply;
use crate::pubsub::Kind;
use crate::server::Server;
use crate::tracking::Mode;

pub fn register(table: &mut CommandTable) {
    table.register("info", info);
    table.register("config|get", config_get);
    table.register("config|set", config_set);
    table.register("config|resetstat", config_resetstat);
    table.register("config|rewrite", config_rewrite);
    table.register("config|help", config_help);
    table.register("client|id", client_id);
    table.register("client|setname", client_setname);
    table.register("client|getname", client_getname);
    table.register("client|list", client_list);
    table.register("client|info", client_info);
    table.register("client|kill", client_kill);
    table.register("client|help", client_help);
    table.register("client|unblock", client_unblock);
    table.register("client|reply", client_reply);
    table.register("client|tracking", client_tracking);
    table.register("client|caching", client_caching);
    table.register("client|getredir", client_getredir);
    table.register("client|trackinginfo", client_trackinginfo);
    table.register("monitor", monitor);
    table.register("time", time);
    table.register("shutdown", shutdown);
}

/// Client names may not contain spaces or newlines (they would break
/// CLIENT LIST's format).
pub fn validate_client_name(name: &[u8]) -> Result<(), crate::error::CmdError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(crate::error::CmdError::err("Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

/// A HELP reply: one simple string per line, as Redis's `addReplyHelp`.
pub(super) fn help_reply(command: &str, lines: &[&str]) -> Reply {
    let mut out =
        vec![Reply::StatusOwned(format!("{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"))];
    out.extend(lines.iter().map(|line| Reply::StatusOwned(line.to_string())));
    out.push(Reply::Status("HELP"));
    out.push(Reply::Status("    Prints this help."));
    Reply::Array(out)
}

/// Text replies (INFO, CLIENT LIST): verbatim text in RESP3, bulk in RESP2.
fn text_reply(text: String) -> Reply {
    Reply::Verbatim("txt", Bytes::from(text))
}

// ---------------------------------------------------------------- INFO

/// INFO's sections in the order Redis prints them, and whether `INFO` /
/// `INFO default` includes each (`all` adds the rest).
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("cluster", true),
    ("keyspace", true),
];

/// `INFO [section [section ...]]`
fn info(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mut wanted = HashSet::new();
    let mut everything = false;
    let mut defaults = argv.len() == 1;
    for arg in &argv[1..] {
        match String::from_utf8_lossy(arg).to_ascii_lowercase().as_str() {
            "all" | "everything" => everything = true,
            "default" => defaults = true,
            other => {
                wanted.insert(other.to_string());
            }
        }
    }
    let mut out = String::new();
    for &(name, default) in SECTIONS {
        if !(everything || (defaults && default) || wanted.contains(name)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let (title, fields) = info_section(ctx, name);
        out.push_str("# ");
        out.push_str(title);
        out.push_str("\r\n");
        for (field, value) in fields {
            out.push_str(&field);
            out.push(':');
            out.push_str(&value);
            out.push_str("\r\n");
        }
    }
    Ok(text_reply(out))
}

type Fields = Vec<(String, String)>;

fn info_section(ctx: &mut Ctx, name: &str) -> (&'static str, Fields) {
    let server = ctx.server;
    match name {
        "server" => ("Server", server_fields(server)),
        "clients" => ("Clients", clients_fields(server)),
        "memory" => ("Memory", memory_fields(server)),
        "persistence" => ("Persistence", persistence_fields(server)),
        "stats" => ("Stats", stats_fields(server)),
        "replication" => ("Replication", replication_fields(server)),
        "cpu" => ("CPU", cpu_fields()),
        "modules" => ("Modules", Vec::new()),
        "commandstats" => ("Commandstats", commandstats_fields(server)),
        "errorstats" => ("Errorstats", errorstats_fields(server)),
        "cluster" => ("Cluster", vec![field("cluster_enabled", server.cluster.is_some() as u8)]),
        _ => ("Keyspace", keyspace_fields(server, ctx.tx())),
    }
}

fn field(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn server_fields(server: &Server) -> Fields {
    let config = server.config.read();
    let uptime = server.uptime_ms() / 1000;
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
    let os = format!(
        "{} {} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    );
    let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    let executable = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let config_file = config
        .config_file
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display().to_string())
        .unwrap_or_default();
    vec![
        field("redis_version", REDIS_COMPAT_VERSION),
        field("strata_version", env!("CARGO_PKG_VERSION")),
        field("redis_mode", "standalone"),
        field("os", os.trim()),
        field("arch_bits", usize::BITS),
        field("process_id", std::process::id()),
        field("process_supervised", "no"),
        field("run_id", &server.run_id),
        field("tcp_port", server.port.load(Ordering::Relaxed)),
        field("server_time_usec", now_us),
        field("uptime_in_seconds", uptime),
        field("uptime_in_days", uptime / 86400),
        field("hz", config.hz()),
        field("configured_hz", config.hz()),
        field("executable", executable),
        field("config_file", config_file),
        field("io_threads_active", 0),
    ]
}

fn clients_fields(server: &Server) -> Fields {
    vec![
        field("connected_clients", server.clients.len()),
        field("cluster_connections", server.cluster.as_ref().map_or(0, |c| c.connections())),
        field("maxclients", server.config.read().maxclients()),
        field("blocked_clients", server.keyspace.blocking.blocked_clients()),
        field("tracking_clients", server.pubsub.tracking.client_count()),
    ]
}

/// A `/proc/self/status` line's value in bytes (`VmRSS:  1234 kB`).
fn proc_status_bytes(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    kb_field(&status, name)
}

fn kb_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `2.00M` ...
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: &[&str] = &["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    for unit in &UNITS[..UNITS.len() - 1] {
        if value < 1024.0 {
            return format!("{value:.2}{unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.2}P")
}

fn memory_fields(server: &Server) -> Fields {
    let rss = proc_status_bytes("VmRSS");
    let peak = proc_status_bytes("VmHWM").max(rss);
    let config = server.config.read();
    let maxmemory: u64 = config.get("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total_system = kb_field(&meminfo, "MemTotal");
    let used = crate::memory_usage::used_bytes();
    let row_cache = server.keyspace.store.engine.row_cache_stats();
    vec![
        // As Redis's: the bytes the server's own allocations hold (memory
        // engines, buffers); RocksDB's caches show in RSS only.
        field("used_memory", used),
        field("used_memory_human", bytes_to_human(used)),
        field("used_memory_rss", rss),
        field("used_memory_rss_human", bytes_to_human(rss)),
        field("used_memory_peak", peak),
        field("used_memory_peak_human", bytes_to_human(peak)),
        field("total_system_memory", total_system),
        field("total_system_memory_human", bytes_to_human(total_system)),
        field("maxmemory", maxmemory),
        field("maxmemory_human", bytes_to_human(maxmemory)),
        field("maxmemory_policy", config.get("maxmemory-policy").unwrap_or("noeviction")),
        field("mem_allocator", "mimalloc"),
        field("strata_rocksdb_disk_bytes", server.keyspace.store.engine.disk_bytes()),
        field("strata_row_cache_bytes", row_cache.bytes),
        field("strata_row_cache_entries", row_cache.entries),
        field("strata_row_cache_hits", row_cache.hits),
        field("strata_row_cache_misses", row_cache.misses),
    ]
}

/// Redis's persistence fields mapped onto Strata's log (the AOF's
/// counterpart: always on) and memory checkpoints (the RDB's), then
/// Strata's own.
fn persistence_fields(server: &Server) -> Fields {
    let keyspace = &server.keyspace;
    let log = &keyspace.log;
    let d = &keyspace.durability;
    let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    let checkpointing = d.checkpoint_in_progress.load(Ordering::Relaxed) || d.save_in_progress.load(Ordering::Relaxed);
    let status = |failed: bool| if failed { "err" } else { "ok" };
    let last_checkpoint = match load(&d.last_checkpoint_unix) {
        0 => server.started_unix_ms / 1000,
        at => at,
    };
    let recovery = &keyspace.recovery;
    let seq = log.last_seq();
    let (interval, reason, costs) = keyspace.checkpoint_interval();
    let current_save_secs = match checkpointing {
        true => (strata_engines::now_ms().saturating_sub(load(&d.checkpoint_started_unix_ms)) / 1000) as i64,
        false => -1,
    };
    vec![
        field("loading", 0),
        field("async_loading", 0),
        field("rdb_changes_since_last_save", seq.saturating_sub(load(&d.checkpoint_seq))),
        field("rdb_bgsave_in_progress", checkpointing as u8),
        field("rdb_last_save_time", last_checkpoint),
        field("rdb_last_bgsave_status", status(d.checkpoint_failed.load(Ordering::Relaxed))),
        field("rdb_last_bgsave_time_sec", load(&d.last_checkpoint_ms) / 1000),
        field("rdb_current_bgsave_time_sec", current_save_secs),
        field("rdb_saves", log.metrics.checkpoints.get()),
        field("rdb_last_cow_size", load(&d.last_cut_kept_bytes)),
        field("aof_enabled", 1),
        field("aof_rewrite_in_progress", 0),
        field("aof_rewrite_scheduled", 0),
        field("aof_last_rewrite_time_sec", -1),
        field("aof_current_rewrite_time_sec", -1),
        field("aof_last_bgrewrite_status", "ok"),
        field("aof_rewrites", 0),
        // Redis 7 says err for a failed write or fsync alike, until one works.
        field("aof_last_write_status", status(log.write_failed() || log.fsync_failed())),
        field("aof_current_size", log.disk_bytes()),
        field("aof_pending_bio_fsync", (log.synced_seq() < log.written_seq()) as u8),
        field("strata_appendfsync", server.config.read().get("appendfsync").unwrap_or("everysec")),
        field("strata_log_seq", seq),
        field("strata_log_written_seq", log.written_seq()),
        field("strata_log_synced_seq", log.synced_seq()),
        field("strata_log_fsyncs", log.metrics.log_fsync_seconds.count()),
        field("strata_log_last_fsync_usec", load(&log.stats.last_fsync_micros)),
        field("strata_log_write_status", status(log.write_failed())),
        field("strata_log_fsync_status", status(log.fsync_failed())),
        field("strata_log_max_size", load(&d.log_max_bytes)),
        field("strata_log_archive_status", keyspace.archiver.status().name()),
        field("strata_log_archived_seq", load(&keyspace.archiver.archived_seq)),
        field("strata_log_archived_segments", log.metrics.log_archived_segments.get()),
        field("strata_log_archive_failures", log.metrics.log_archive_failures.get()),
        field("strata_rocksdb_write_status", status(keyspace.store.engine.write_failure().is_some())),
        field("strata_writes_refused", keyspace.write_refusal().is_some() as u8),
        field("strata_checkpoint_failures", log.metrics.checkpoint_failures.get()),
        field("strata_checkpoint_interval_sec", interval.as_secs()),
        field("strata_checkpoint_interval_reason", reason.name()),
        field("strata_checkpoint_cost_ms", costs.checkpoint_secs.map_or(-1, |s| (s * 1e3) as i64)),
        field("strata_log_bytes_per_sec", costs.log_bytes_per_sec as u64),
        field("strata_replay_bytes_per_sec", costs.replay_bytes_per_sec as u64),
        field("strata_replay_speed", if keyspace.replay_speed_measured() { "measured" } else { "assumed" }),
        field("strata_checkpoint_mtbf_hours", load(&d.checkpoint_mtbf_secs) / 3600),
        field("strata_rocksdb_flushed_seq", load(&d.rocks_flushed_seq)),
        field("strata_checkpoint_seq", load(&d.checkpoint_seq)),
        field("strata_checkpoint_bytes", log.metrics.checkpoint_bytes.get() as u64),
        field("strata_recovery_ms", recovery.elapsed.as_millis() as u64),
        field("strata_recovery_records", recovery.records_replayed),
    ]
}

fn stats_fields(server: &Server) -> Fields {
    let stats = &server.stats;
    let (tracking_keys, tracking_items, tracking_prefixes) = server.pubsub.tracking.totals();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    vec![
        field("total_connections_received", load(&stats.connections_received)),
        field("total_commands_processed", load(&stats.commands_processed)),
        field("instantaneous_ops_per_sec", stats.ops_per_sec(Instant::now())),
        field("total_net_input_bytes", load(&stats.net_input_bytes)),
        field("total_net_output_bytes", load(&stats.net_output_bytes)),
        field("total_net_repl_input_bytes", load(&stats.net_repl_input_bytes)),
        field("total_net_repl_output_bytes", load(&stats.net_repl_output_bytes)),
        field("rejected_connections", load(&stats.rejected_connections)),
        field("sync_full", load(&server.replication.sync_full)),
        field("sync_partial_ok", load(&server.replication.sync_partial_ok)),
        field("sync_partial_err", load(&server.replication.sync_partial_err)),
        field("expired_keys", load(&server.keyspace.expired_keys)),
        field("evicted_keys", 0),
        field("keyspace_hits", load(&stats.keyspace_hits)),
        field("keyspace_misses", load(&stats.keyspace_misses)),
        field("pubsub_channels", server.pubsub.active_count(Kind::Channel)),
        field("pubsub_patterns", server.pubsub.active_count(Kind::Pattern)),
        field("pubsubshard_channels", server.pubsub.active_count(Kind::Shard)),
        field("tracking_total_keys", tracking_keys),
        field("tracking_total_items", tracking_items),
        field("tracking_total_prefixes", tracking_prefixes),
        field("total_error_replies", load(&stats.total_error_replies)),
    ]
}

fn replication_fields(server: &Server) -> Fields {
    let replication = &server.replication;
    let log = &server.keyspace.log;
    let ids = replication.ids();
    let last = log.last_seq();
    let now_ms = strata_engines::now_ms();
    let mut fields = Vec::new();
    match replication.master() {
        None => fields.push(field("role", "master")),
        Some(master) => {
            let link = &replication.link;
            let state = *link.state.lock();
            let up = state == "connected";
            let syncing = state == "sync";
            fields.extend([
                field("role", "slave"),
                field("master_host", &master.host),
                field("master_port", master.port),
                field("master_link_status", if up { "up" } else { "down" }),
                field(
                    "master_last_io_seconds_ago",
                    match link.last_io_ms.load(Ordering::Relaxed) {
                        0 => -1,
                        at => (now_ms.saturating_sub(at) / 1000) as i64,
                    },
                ),
                field("master_sync_in_progress", syncing as u8),
                field("slave_read_repl_offset", last),
                field("slave_repl_offset", last),
            ]);
            if syncing {
                let started = link.sync_started_ms.load(Ordering::Relaxed);
                fields.extend([
                    field("master_sync_total_bytes", -1),
                    field("master_sync_read_bytes", link.sync_read_bytes.load(Ordering::Relaxed)),
                    field("master_sync_left_bytes", -1),
                    field("master_sync_perc", "0.00"),
                    field("master_sync_last_io_seconds_ago", 0),
                    field("master_sync_elapsed_seconds", now_ms.saturating_sub(started) / 1000),
                ]);
            }
            if !up {
                let since = link.down_since_ms.load(Ordering::Relaxed);
                let down = if since == 0 { -1 } else { (now_ms.saturating_sub(since) / 1000) as i64 };
                fields.push(field("master_link_down_since_seconds", down));
            }
            let config = server.config.read();
            fields.extend([
                field("slave_priority", config.get("replica-priority").unwrap_or("100")),
                field("slave_read_only", (config.get("replica-read-only") != Some("no")) as u8),
                field("replica_announced", (config.get("replica-announced") != Some("no")) as u8),
            ]);
        }
    }
    let replicas = replication.replicas();
    fields.push(field("connected_slaves", replicas.len()));
    for (i, replica) in replicas.iter().enumerate() {
        let ack_ms = replica.ack_ms.load(Ordering::Relaxed);
        fields.push(field(
            &format!("slave{i}"),
            format!(
                "ip={},port={},state={},offset={},lag={}",
                replica.ip,
                replica.port,
                replica.state.lock(),
                replica.ack_seq.load(Ordering::Relaxed),
                if ack_ms == 0 { 0 } else { now_ms.saturating_sub(ack_ms) / 1000 }
            ),
        ));
    }
    // The log is the backlog: what it still holds after the engines' parts.
    let backlog = server.config.read().get("repl-backlog-size").unwrap_or("1048576").to_string();
    let active = server.keyspace.durability.repl_backlog_active.load(Ordering::Relaxed);
    let first = log.first_retained_seq();
    fields.extend([
        field("master_failover_state", "no-failover"),
        field("master_replid", &ids.replid),
        field("master_replid2", &ids.replid2),
        field("master_repl_offset", last),
        field("second_repl_offset", ids.second_repl_offset),
        field("repl_backlog_active", active as u8),
        field("repl_backlog_size", backlog),
        field("repl_backlog_first_byte_offset", if active { first } else { 0 }),
        field("repl_backlog_histlen", if active { (last + 1).saturating_sub(first) } else { 0 }),
    ]);
    fields
}

/// CPU seconds from `/proc/self/stat` (utime, stime, cutime, cstime, in
/// clock ticks of 1/100 s on Linux).
fn cpu_fields() -> Fields {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<u64> = rest.split_whitespace().map(|w| w.parse().unwrap_or(0)).collect();
    let secs = |i: usize| format!("{:.6}", ticks.get(i).copied().unwrap_or(0) as f64 / 100.0);
    // Indexes 11..14 of `rest` are utime, stime, cutime, cstime.
    vec![
        field("used_cpu_sys", secs(12)),
        field("used_cpu_user", secs(11)),
        field("used_cpu_sys_children", secs(14)),
        field("used_cpu_user_children", secs(13)),
    ]
}

fn commandstats_fields(server: &Server) -> Fields {
    fn add(row: &Command, out: &mut Fields) {
        let stats = &row.stats;
        let calls = stats.calls.load(Ordering::Relaxed);
        let usec = stats.usec.load(Ordering::Relaxed);
        let rejected = stats.rejected_calls.load(Ordering::Relaxed);
        let failed = stats.failed_calls.load(Ordering::Relaxed);
        if calls > 0 || rejected > 0 || failed > 0 {
            let per_call = if calls > 0 { usec as f64 / calls as f64 } else { 0.0 };
            out.push((
                format!("cmdstat_{}", row.name),
                format!("calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"),
            ));
        }
        let mut subs: Vec<&Command> = row.subcommands.values().collect();
        subs.sort_by(|a, b| a.name.cmp(&b.name));
        for sub in subs {
            add(sub, out);
        }
    }
    let mut rows: Vec<&Command> = server.commands.iter().collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for row in rows {
        add(row, &mut out);
    }
    out
}

fn errorstats_fields(server: &Server) -> Fields {
    server
        .stats
        .errorstats
        .lock()
        .iter()
        .map(|(code, count)| (format!("errorstat_{code}"), format!("count={count}")))
        .collect()
}

fn keyspace_fields(server: &Server, tx: &Tx) -> Fields {
    (0..server.keyspace.databases())
        .filter_map(|db| {
            let (keys, expires) = tx.key_counts(db);
            (keys > 0).then(|| (format!("db{db}"), format!("keys={keys},expires={expires},avg_ttl=0")))
        })
        .collect()
}

// ---------------------------------------------------------------- CONFIG

/// `CONFIG GET parameter [parameter ...]`
fn config_get(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let config = ctx.server.config.read();
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for pattern in &argv[2..] {
        for (name, value) in config.matching(pattern) {
            if seen.insert(name) {
                // Shown as Redis shows it, which hides `n` after `A`.
                let value = match name {
                    "notify-keyspace-events" => crate::notify::format_flags(config.notify_flags()),
                    _ => value.to_string(),
                };
                pairs.push((Reply::bulk_str(name), Reply::bulk_str(&value)));
            }
        }
    }
    Ok(Reply::Map(pairs))
}

/// `CONFIG SET parameter value [parameter value ...]`: all or nothing.
fn config_set(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if !argv.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let pairs: Vec<(String, String)> = argv[2..]
        .chunks(2)
        .map(|pair| (String::from_utf8_lossy(&pair[0]).into_owned(), String::from_utf8_lossy(&pair[1]).into_owned()))
        .collect();
    let failed = |name: &str, why: &str| {
        CmdError::err(format!("CONFIG SET failed (possibly related to argument '{name}') - {why}"))
    };
    let mut config = ctx.server.config.write();
    // Redis first checks every name (unknown, immutable, repeated), then
    // sets the values; the first problem in argument order is reported.
    let mut seen = HashSet::new();
    for (name, _) in &pairs {
        let lower = name.to_ascii_lowercase();
        if config.get(&lower).is_none() {
            return Err(CmdError::err(format!("Unknown option or number of arguments for CONFIG SET - '{name}'")));
        }
        if let Some(why) = unsettable_reason(&lower) {
            return Err(failed(name, why));
        }
        if !seen.insert(lower) {
            return Err(failed(name, "duplicate parameter"));
        }
    }
    let mut updated = config.clone();
    for (name, value) in &pairs {
        // Value errors name the parameter as Redis spells it (lower case).
        updated.set(name, value).map_err(|e| match e {
            ConfigError::Invalid(canonical, why) => failed(&canonical, &why),
            other => CmdError::err(other),
        })?;
    }
    if let Some(policy) = updated.get("appendfsync").and_then(strata_engines::log::FsyncPolicy::parse) {
        ctx.server.keyspace.log.set_policy(policy);
    }
    let (repo, timeout) = updated.log_archive();
    ctx.server.keyspace.archiver.configure(repo, timeout);
    let d = &ctx.server.keyspace.durability;
    if let Some(limit) = updated.get("log-max-size").and_then(|v| v.parse().ok()) {
        d.log_max_bytes.store(limit, Ordering::Relaxed);
    }
    d.repl_backlog_bytes.store(updated.number("repl-backlog-size") as u64, Ordering::Relaxed);
    d.checkpoint_mtbf_secs.store(updated.number("checkpoint-mtbf-hours") as u64 * 3600, Ordering::Relaxed);
    d.checkpoint_min_secs.store(updated.number("checkpoint-min-interval") as u64, Ordering::Relaxed);
    d.checkpoint_max_secs.store(updated.number("checkpoint-max-interval") as u64, Ordering::Relaxed);
    let maxmemory = updated.get("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
    ctx.server.maxmemory.store(maxmemory, Ordering::Relaxed);
    let mailbox_limit = updated.session().output_limits.of(crate::config::ClientClass::Pubsub).hard;
    ctx.server.pubsub.mailbox_limit.store(mailbox_limit, Ordering::Relaxed);
    ctx.server.keyspace.notify_flags.store(updated.notify_flags(), Ordering::Relaxed);
    ctx.server.pubsub.tracking.max_keys.store(updated.number("tracking-table-max-keys") as u64, Ordering::Relaxed);
    ctx.server.replication.configure(&updated);
    *config = updated;
    Ok(Reply::ok())
}

/// `CONFIG RESETSTAT`
fn config_resetstat(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let server = ctx.server;
    server.stats.reset();
    server.keyspace.expired_keys.store(0, Ordering::Relaxed);
    fn reset(row: &Command) {
        for counter in [&row.stats.calls, &row.stats.usec, &row.stats.rejected_calls, &row.stats.failed_calls] {
            counter.store(0, Ordering::Relaxed);
        }
        row.subcommands.values().for_each(reset);
    }
    server.commands.iter().for_each(reset);
    Ok(Reply::ok())
}

/// `CONFIG REWRITE`
fn config_rewrite(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    // `replicaof` as REPLICAOF left it, as Redis writes it.
    let master = ctx.server.replication.master().map(|m| format!("{} {}", m.host, m.port)).unwrap_or_default();
    let mut config = ctx.server.config.write();
    config.set("replicaof", &master).map_err(CmdError::err)?;
    config.rewrite().map_err(CmdError::err)?;
    Ok(Reply::ok())
}

/// `CONFIG HELP`
fn config_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    ))
}

// ---------------------------------------------------------------- CLIENT

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX prefix ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`
fn client_tracking(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mut mode = Mode { redirect: 0, bcast: false, optin: false, optout: false, noloop: false, prefixes: Vec::new() };
    let mut redirect_to = None;
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        match argv[j].to_ascii_lowercase().as_slice() {
            b"redirect" if more => {
                j += 1;
                if mode.redirect != 0 {
                    return Err(CmdError::err("A client can only redirect to a single other client"));
                }
                let id = parse_int(&argv[j])?;
                redirect_to = u64::try_from(id).ok().and_then(|id| ctx.server.clients.get(id));
                let Some(target) = &redirect_to else {
                    return Err(CmdError::err("The client ID you want redirect to does not exist"));
                };
                mode.redirect = target.id;
            }
            b"bcast" => mode.bcast = true,
            b"optin" => mode.optin = true,
            b"optout" => mode.optout = true,
            b"noloop" => mode.noloop = true,
            b"prefix" if more => {
                j += 1;
                mode.prefixes.push(argv[j].clone());
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    let tracking = &ctx.server.pubsub.tracking;
    let client = &ctx.client.shared;
    match argv[2].to_ascii_lowercase().as_slice() {
        b"on" => {
            if !mode.bcast && !mode.prefixes.is_empty() {
                return Err(CmdError::err("PREFIX option requires BCAST mode to be enabled"));
            }
            let current = tracking.mode(client.id);
            if current.as_ref().is_some_and(|current| current.bcast != mode.bcast) {
                return Err(CmdError::err(
                    "You can't switch BCAST mode on/off before disabling tracking for this client, and then \
                     re-enabling it with a different mode.",
                ));
            }
            if mode.bcast && (mode.optin || mode.optout) {
                return Err(CmdError::err("OPTIN and OPTOUT are not compatible with BCAST"));
            }
            if mode.optin && mode.optout {
                return Err(CmdError::err("You can't specify both OPTIN mode and OPTOUT mode"));
            }
            if current.as_ref().is_some_and(|c| (mode.optin && c.optout) || (mode.optout && c.optin)) {
                return Err(CmdError::err(
                    "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then \
                     re-enabling it with a different mode.",
                ));
            }
            if mode.bcast {
                let existing = current.map(|c| c.prefixes).unwrap_or_default();
                check_prefixes(&existing, &mode.prefixes)?;
                if mode.prefixes.is_empty() && existing.is_empty() {
                    mode.prefixes.push(Bytes::new());
                }
                // A client's prefixes add up across calls, as Redis's.
                mode.prefixes.extend(existing);
                mode.prefixes.sort();
            }
            tracking.enable(client.clone(), mode, redirect_to.as_ref());
        }
        b"off" => {
            tracking.disable(client);
            ctx.client.caching = false;
        }
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::ok())
}

/// Redis's rule that a client's BCAST prefixes must not overlap.
fn check_prefixes(existing: &[Bytes], new: &[Bytes]) -> Result<(), CmdError> {
    let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    for (i, prefix) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlap(old, prefix)) {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                c_text(prefix),
                c_text(old)
            )));
        }
        if let Some(other) = new[i + 1..].iter().find(|other| overlap(other, prefix)) {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not \
                 overlap.",
                c_text(prefix),
                c_text(other)
            )));
        }
    }
    Ok(())
}

/// `CLIENT CACHING YES|NO`: whether the next command's keys are tracked
/// (OPTIN and OPTOUT modes).
fn client_caching(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let Some(mode) = ctx.server.pubsub.tracking.mode(ctx.client.shared.id) else {
        return Err(CmdError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    match argv[2].to_ascii_lowercase().as_slice() {
        b"yes" if mode.optin => ctx.client.caching = true,
        b"yes" => {
            return Err(CmdError::err("CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."))
        }
        b"no" if mode.optout => ctx.client.caching = true,
        b"no" => return Err(CmdError::err("CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")),
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::ok())
}

/// `CLIENT GETREDIR`
fn client_getredir(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.client.shared.tracking.redirect_field()))
}

/// `CLIENT TRACKINGINFO`
fn client_trackinginfo(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let mode = ctx.server.pubsub.tracking.mode(ctx.client.shared.id);
    let caching = ctx.client.caching;
    let mut flags = vec![if mode.is_some() { "on" } else { "off" }];
    if let Some(mode) = &mode {
        let shown = &ctx.client.shared.tracking;
        for (set, flag) in [
            (mode.bcast, "bcast"),
            (mode.optin, "optin"),
            (mode.optin && caching, "caching-yes"),
            (mode.optout, "optout"),
            (mode.optout && caching, "caching-no"),
            (mode.noloop, "noloop"),
            (shown.broken.load(Ordering::Relaxed), "broken_redirect"),
        ] {
            if set {
                flags.push(flag);
            }
        }
    }
    let prefixes = mode.map(|m| m.prefixes).unwrap_or_default();
    Ok(Reply::Map(vec![
        (Reply::bulk_str("flags"), Reply::Set(flags.into_iter().map(Reply::bulk_str).collect())),
        (Reply::bulk_str("redirect"), Reply::Integer(ctx.client.shared.tracking.redirect_field())),
        (Reply::bulk_str("prefixes"), Reply::bulks(prefixes)),
    ]))
}

/// `CLIENT REPLY ON|OFF|SKIP`: OFF and SKIP answer nothing.
fn client_reply(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let client = &mut *ctx.client;
    match argv[2].to_ascii_lowercase().as_slice() {
        b"on" => {
            (client.reply_off, client.reply_skip) = (false, false);
            Ok(Reply::ok())
        }
        b"off" => {
            client.reply_off = true;
            Ok(Reply::NoReply)
        }
        b"skip" => {
            client.reply_skip_next = !client.reply_off;
            Ok(Reply::NoReply)
        }
        _ => Err(CmdError::Syntax),
    }
}

/// `MONITOR`: every command run from then on is shown to this client
/// (Redis's line: time, database, client address, quoted arguments).
/// Already monitoring, it answers nothing.
fn monitor(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.in_exec {
        return Err(CmdError::err("MONITOR isn't allowed for DENY BLOCKING client"));
    }
    if !ctx.server.pubsub.add_monitor(ctx.client.subscriber()) {
        return Ok(Reply::NoReply);
    }
    ctx.client.shared.monitoring.store(true, Ordering::Relaxed);
    Ok(Reply::ok())
}

/// `CLIENT ID`
fn client_id(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.client.shared.id as i64))
}

/// `CLIENT UNBLOCK client-id [TIMEOUT | ERROR]`
fn client_unblock(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let id = super::args::parse_int(&argv[2])?;
    let error = match argv.get(3) {
        None => false,
        Some(mode) if mode.eq_ignore_ascii_case(b"TIMEOUT") => false,
        Some(mode) if mode.eq_ignore_ascii_case(b"ERROR") => true,
        Some(_) => return Err(CmdError::err("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
    };
    let unblocked = id >= 0 && ctx.server.keyspace.blocking.unblock(id as u64, error);
    Ok(Reply::Integer(unblocked as i64))
}

/// `CLIENT SETNAME connection-name` (an empty name clears it)
fn client_setname(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    validate_client_name(&argv[2])?;
    *ctx.client.shared.name.lock() = String::from_utf8_lossy(&argv[2]).into_owned();
    Ok(Reply::ok())
}

/// `CLIENT GETNAME`
fn client_getname(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let name = ctx.client.shared.name.lock().clone();
    Ok(if name.is_empty() { Reply::Nil } else { Reply::bulk(name) })
}

/// Client types of CLIENT LIST TYPE / CLIENT KILL TYPE. Every Strata
/// client is `normal` until replication and pub/sub exist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Master,
    Replica,
    PubSub,
}

fn parse_client_type(arg: &[u8]) -> Result<ClientType, CmdError> {
    match arg.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(ClientType::Normal),
        b"master" => Ok(ClientType::Master),
        b"replica" | b"slave" => Ok(ClientType::Replica),
        b"pubsub" => Ok(ClientType::PubSub),
        _ => Err(CmdError::err(format!("Unknown client type '{}'", c_text(arg)))),
    }
}

fn type_of(client: &ClientShared) -> ClientType {
    if client.replica_link.load(Ordering::Relaxed) {
        return ClientType::Replica;
    }
    match client.subscribed.iter().any(|count| count.load(Ordering::Relaxed) > 0) {
        true => ClientType::PubSub,
        false => ClientType::Normal,
    }
}

/// Which clients CLIENT LIST shows.
enum ListFilter {
    All,
    Type(ClientType),
    Ids(Vec<i64>),
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] | [ID client-id [client-id ...]]`
fn client_list(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let filter = if argv.len() == 2 {
        ListFilter::All
    } else if argv.len() == 4 && argv[2].eq_ignore_ascii_case(b"TYPE") {
        ListFilter::Type(parse_client_type(&argv[3])?)
    } else if argv.len() > 3 && argv[2].eq_ignore_ascii_case(b"ID") {
        let ids = argv[3..]
            .iter()
            .map(|arg| parse_int(arg).map_err(|_| CmdError::err("Invalid client ID")))
            .collect::<Result<Vec<_>, _>>()?;
        ListFilter::Ids(ids)
    } else {
        return Err(CmdError::Syntax);
    };
    let server = ctx.server;
    let now = Instant::now();
    let clients = match filter {
        ListFilter::All => server.clients.all(),
        ListFilter::Type(kind) => server.clients.all().into_iter().filter(|c| type_of(c) == kind).collect(),
        // In the order asked for, as Redis does.
        ListFilter::Ids(ids) => {
            ids.into_iter().filter(|&id| id > 0).filter_map(|id| server.clients.get(id as u64)).collect()
        }
    };
    let mut out = String::new();
    for client in clients {
        out.push_str(&client.info_line(now, server.started));
        out.push('\n');
    }
    Ok(text_reply(out))
}

/// `CLIENT INFO`
fn client_info(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let line = ctx.client.shared.info_line(Instant::now(), ctx.server.started);
    Ok(text_reply(format!("{line}\n")))
}

/// The filters of the new CLIENT KILL form; unset ones match every client.
struct KillFilter {
    id: Option<u64>,
    kind: Option<ClientType>,
    addr: Option<String>,
    laddr: Option<String>,
    skip_me: bool,
}

impl KillFilter {
    fn parse(args: &[Bytes]) -> Result<KillFilter, CmdError> {
        let mut filter = KillFilter { id: None, kind: None, addr: None, laddr: None, skip_me: true };
        for pair in args.chunks(2) {
            let [option, value] = pair else {
                return Err(CmdError::Syntax);
            };
            match option.to_ascii_uppercase().as_slice() {
                b"ID" => {
                    let id = parse_int(value)
                        .ok()
                        .filter(|&id| id > 0)
                        .ok_or_else(|| CmdError::err("client-id should be greater than 0"))?;
                    filter.id = Some(id as u64);
                }
                b"TYPE" => filter.kind = Some(parse_client_type(value)?),
                b"ADDR" => filter.addr = Some(String::from_utf8_lossy(value).into_owned()),
                b"LADDR" => filter.laddr = Some(String::from_utf8_lossy(value).into_owned()),
                // Only the `default` user exists until ACLs do.
                b"USER" if &value[..] == b"default" => {}
                b"USER" => return Err(CmdError::err(format!("No such user '{}'", c_text(value)))),
                b"SKIPME" if value.eq_ignore_ascii_case(b"yes") => filter.skip_me = true,
                b"SKIPME" if value.eq_ignore_ascii_case(b"no") => filter.skip_me = false,
                _ => return Err(CmdError::Syntax),
            }
        }
        Ok(filter)
    }

    fn matches(&self, client: &ClientShared, me: u64) -> bool {
        self.id.is_none_or(|id| client.id == id)
            && self.kind.is_none_or(|kind| type_of(client) == kind)
            && self.addr.as_ref().is_none_or(|addr| client.addr.to_string() == *addr)
            && self.laddr.as_ref().is_none_or(|laddr| client.local_addr.to_string() == *laddr)
            && !(self.skip_me && client.id == me)
    }
}

/// Our own connection closes after this reply; others close at once.
fn kill(client: &ClientShared, ctx: &mut Ctx) {
    if client.id == ctx.client.shared.id {
        ctx.client.close_after_reply = true;
    } else {
        client.kill();
    }
}

/// `CLIENT KILL ip:port` or
/// `CLIENT KILL [ID id] [TYPE type] [USER name] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no] ...`
fn client_kill(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let me = ctx.client.shared.id;
    let clients = ctx.server.clients.all();
    if argv.len() == 3 {
        let addr = String::from_utf8_lossy(&argv[2]);
        let Some(target) = clients.iter().find(|c| c.addr.to_string() == addr) else {
            return Err(CmdError::err("No such client"));
        };
        kill(target, ctx);
        return Ok(Reply::ok());
    }
    // The new form comes in option/value pairs.
    if !argv.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let filter = KillFilter::parse(&argv[2..])?;
    let mut killed = 0;
    for client in clients.iter().filter(|c| filter.matches(c, me)) {
        kill(client, ctx);
        killed += 1;
    }
    Ok(Reply::Integer(killed))
}

/// `CLIENT HELP`: the subcommands Strata serves, in Redis's words.
fn client_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
        ],
    ))
}

// ---------------------------------------------------------------- TIME, SHUTDOWN

/// `TIME`: unix seconds and microseconds.
fn time(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Ok(Reply::bulks([now.as_secs().to_string(), now.subsec_micros().to_string()]))
}

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`: RocksDB holds every
/// acknowledged write and is flushed on the way out, so SAVE and NOSAVE
/// stop the same way; shutdown is immediate, so there is nothing to abort.
fn shutdown(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mut args = Args::new(argv);
    let (mut save, mut nosave, mut other_flags, mut abort) = (false, false, false, false);
    while let Some(arg) = args.next_opt() {
        match arg.to_ascii_uppercase().as_slice() {
            b"NOSAVE" => nosave = true,
            b"SAVE" => save = true,
            b"NOW" | b"FORCE" => other_flags = true,
            b"ABORT" => abort = true,
            _ => return Err(CmdError::Syntax),
        }
    }
    if (abort && (save || nosave || other_flags)) || (save && nosave) {
        return Err(CmdError::Syntax);
    }
    if abort {
        return Err(CmdError::err("No shutdown in progress."));
    }
    tracing::warn!(client = ctx.client.shared.id, "User requested shutdown...");
    ctx.server.request_shutdown();
    ctx.client.close_after_reply = true;
    Ok(Reply::NoReply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_match_redis() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1113888), "1.06M");
        assert_eq!(bytes_to_human(25276514304), "23.54G");
    }

    #[test]
    fn kb_fields_parse() {
        let text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(kb_field(text, "VmRSS"), 1024 * 1024);
        assert_eq!(kb_field(text, "VmHWM"), 2048 * 1024);
        assert_eq!(kb_field(text, "Nope"), 0);
    }

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn kill_filters_parse_like_redis() {
        let err = |words: &[&str]| KillFilter::parse(&argv(words)).err().unwrap().to_string();
        assert_eq!(err(&["ID", "0"]), "ERR client-id should be greater than 0");
        assert_eq!(err(&["ID", "abc"]), "ERR client-id should be greater than 0");
        assert_eq!(err(&["TYPE", "foo"]), "ERR Unknown client type 'foo'");
        assert_eq!(err(&["USER", "nosuch"]), "ERR No such user 'nosuch'");
        assert_eq!(err(&["SKIPME", "maybe"]), "ERR syntax error");
        assert_eq!(err(&["MAXAGE", "10"]), "ERR syntax error");
        let filter = KillFilter::parse(&argv(&["type", "NORMAL", "skipme", "no", "user", "default"])).unwrap();
        assert!(!filter.skip_me);
        assert!(filter.kind == Some(ClientType::Normal));
    }
}
