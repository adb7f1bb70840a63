//! CLUSTER, READONLY, READWRITE and ASKING. What changes the cluster's
//! configuration becomes an entry of the Raft-replicated state
//! (`crate::cluster`); Redis's checks that only the receiving node can
//! make (its keys, its own role) are made here before proposing.

use std::sync::Arc;

use bytes::Bytes;
use strata_cluster::state::{Applied, Entry, SlotAction};
use strata_cluster::{key_slot, SLOT_COUNT};

use super::args::parse_int;
use super::server::help_reply;
use super::{CommandTable, Ctx};
use crate::cluster::Cluster;
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;
use crate::server::Server;

pub fn register(table: &mut CommandTable) {
    for (name, handler) in [
        ("cluster|help", help as super::Handler),
        ("cluster|meet", meet),
        ("cluster|nodes", nodes),
        ("cluster|myid", myid),
        ("cluster|slots", slots),
        ("cluster|shards", shards),
        ("cluster|info", info),
        ("cluster|links", links),
        ("cluster|keyslot", keyslot),
        ("cluster|countkeysinslot", countkeysinslot),
        ("cluster|getkeysinslot", getkeysinslot),
        ("cluster|addslots", change),
        ("cluster|delslots", change),
        ("cluster|addslotsrange", change),
        ("cluster|delslotsrange", change),
        ("cluster|flushslots", change),
        ("cluster|setslot", change),
        ("cluster|bumpepoch", change),
        ("cluster|set-config-epoch", change),
        ("cluster|forget", change),
        ("cluster|replicate", change),
        ("cluster|replicas", replicas),
        ("cluster|slaves", replicas),
        ("cluster|count-failure-reports", count_failure_reports),
        ("cluster|failover", failover),
        ("cluster|reset", reset),
        ("cluster|saveconfig", saveconfig),
    ] {
        table.register(name, handler);
    }
    table.register("readonly", readonly);
    table.register("readwrite", readwrite);
    table.register("asking", asking);
}

fn disabled() -> CmdError {
    CmdError::err("This instance has cluster support disabled")
}

/// The cluster, or Redis's refusal outside cluster mode.
fn cluster(ctx: &Ctx) -> Result<Arc<Cluster>, CmdError> {
    ctx.server.cluster.clone().ok_or_else(disabled)
}

fn reply_of(applied: Applied) -> Reply {
    match applied {
        Applied::Ok => Reply::ok(),
        Applied::Err(text) => Reply::Error(text),
        Applied::Epoch { bumped, epoch } => {
            Reply::StatusOwned(format!("{} {epoch}", if bumped { "BUMPED" } else { "STILL" }))
        }
        Applied::Batch(replies) => Reply::Array(replies.into_iter().map(reply_of).collect()),
    }
}

/// A slot number argument, with Redis's error.
fn slot_arg(arg: &[u8]) -> Result<u16, CmdError> {
    parse_int(arg)
        .ok()
        .filter(|s| (0..SLOT_COUNT as i64).contains(s))
        .map(|s| s as u16)
        .ok_or_else(|| CmdError::err("Invalid or out of range slot"))
}

/// `CLUSTER HELP`
fn help(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    Ok(help_reply(
        "CLUSTER",
        &[
            "ADDSLOTS <slot> [<slot> ...]",
            "    Assign slots to current node.",
            "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Assign slots which are between <start-slot> and <end-slot> to current node.",
            "BUMPEPOCH",
            "    Advance the cluster config epoch.",
            "COUNT-FAILURE-REPORTS <node-id>",
            "    Return number of failure reports for <node-id>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "DELSLOTS <slot> [<slot> ...]",
            "    Delete slots information from current node.",
            "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
            "FAILOVER [FORCE|TAKEOVER]",
            "    Promote current replica node to being a master.",
            "FORGET <node-id>",
            "    Remove a node from the cluster.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "FLUSHSLOTS",
            "    Delete current node own slots information.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MEET <ip> <port> [<bus-port>]",
            "    Connect nodes into a working cluster.",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICATE <node-id>",
            "    Configure current node as replica to <node-id>.",
            "RESET [HARD|SOFT]",
            "    Reset current node (default: soft).",
            "SET-CONFIG-EPOCH <epoch>",
            "    Set config epoch of current node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "SAVECONFIG",
            "    Force saving cluster configuration on disk.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
            "    Output format is an array where each array element is a map containing attributes of a link",
        ],
    ))
}

/// `CLUSTER MEET ip port [cluster-bus-port]`
fn meet(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cluster = cluster(ctx)?;
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let port = parse_int(&argv[3])
        .map_err(|_| CmdError::err(format!("Invalid TCP base port specified: {}", text(&argv[3]))))?;
    let cport = match argv.get(4) {
        Some(arg) => {
            parse_int(arg).map_err(|_| CmdError::err(format!("Invalid TCP bus port specified: {}", text(arg))))?
        }
        None => port + 10000,
    };
    let (Ok(port), Ok(cport)) = (u16::try_from(port), u16::try_from(cport)) else {
        return Err(CmdError::err(format!("Invalid node address specified: {}:{}", text(&argv[2]), text(&argv[3]))));
    };
    let ip = text(&argv[2]);
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(CmdError::err(format!("Invalid node address specified: {ip}:{port}")));
    }
    cluster.meet(&ip, port, cport)?;
    Ok(Reply::ok())
}

/// `CLUSTER NODES`
fn nodes(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let text = cluster(ctx)?.render(|view| view.nodes());
    Ok(Reply::Verbatim("txt", Bytes::from(text)))
}

/// `CLUSTER MYID`
fn myid(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::bulk(cluster(ctx)?.myself()))
}

/// `CLUSTER SLOTS`
fn slots(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(cluster(ctx)?.render(|view| view.slots()))
}

/// `CLUSTER SHARDS`
fn shards(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(cluster(ctx)?.render(|view| view.shards()))
}

/// `CLUSTER INFO`
fn info(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Verbatim("txt", Bytes::from(cluster(ctx)?.info())))
}

/// `CLUSTER LINKS`
fn links(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(cluster(ctx)?.links())
}

/// `CLUSTER KEYSLOT key`
fn keyslot(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    Ok(Reply::Integer(key_slot(&argv[2]) as i64))
}

/// `CLUSTER COUNTKEYSINSLOT slot`: from the per-slot counters.
fn countkeysinslot(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let slot = parse_int(&argv[2])?;
    if !(0..SLOT_COUNT as i64).contains(&slot) {
        return Err(CmdError::err("Invalid slot"));
    }
    Ok(Reply::Integer(ctx.server.keyspace.keys_in_slot(0, slot as u16) as i64))
}

/// `CLUSTER GETKEYSINSLOT slot count`: the slot's keys in key order.
fn getkeysinslot(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let slot = parse_int(&argv[2])?;
    let count = parse_int(&argv[3])?;
    if !(0..SLOT_COUNT as i64).contains(&slot) || count < 0 {
        return Err(CmdError::err("Invalid slot or number of keys"));
    }
    let keys = ctx.run(|tx| super::keyspace::keys_in_slot(tx, slot as u16, count as usize))?;
    Ok(Reply::bulks(keys))
}

/// Parses ADDSLOTS/DELSLOTS slot lists, refusing repeats as Redis does.
fn slot_list(slots: impl Iterator<Item = u16>) -> Result<Vec<u16>, CmdError> {
    let mut seen = vec![false; SLOT_COUNT];
    let mut list = Vec::new();
    for slot in slots {
        if std::mem::replace(&mut seen[slot as usize], true) {
            return Err(CmdError::err(format!("Slot {slot} specified multiple times")));
        }
        list.push(slot);
    }
    Ok(list)
}

fn slots_of(argv: &[Bytes]) -> Result<Vec<u16>, CmdError> {
    let parsed: Vec<u16> = argv[2..].iter().map(|a| slot_arg(a)).collect::<Result<_, _>>()?;
    slot_list(parsed.into_iter())
}

fn slot_ranges_of(argv: &[Bytes]) -> Result<Vec<u16>, CmdError> {
    if argv.len() % 2 == 1 {
        return Err(CmdError::WrongArity(format!("cluster|{}", String::from_utf8_lossy(&argv[1]).to_lowercase())));
    }
    let mut ranges = Vec::new();
    for pair in argv[2..].chunks(2) {
        let (first, last) = (slot_arg(&pair[0])?, slot_arg(&pair[1])?);
        if first > last {
            return Err(CmdError::err(format!("start slot number {first} is greater than end slot number {last}")));
        }
        ranges.push(first..=last);
    }
    slot_list(ranges.into_iter().flatten())
}

/// The entry a configuration-changing CLUSTER subcommand proposes, after
/// the checks only this node can make (its keys, its role); None for the
/// other subcommands.
fn entry_of(server: &Server, argv: &[Bytes]) -> Option<Result<Entry, CmdError>> {
    let sub = String::from_utf8_lossy(argv.get(1)?).to_ascii_lowercase();
    let make: fn(&Server, &Cluster, String, &[Bytes]) -> Result<Entry, CmdError> = match sub.as_str() {
        "addslots" => |_, _, by, argv| Ok(Entry::AddSlots { by, slots: slots_of(argv)? }),
        "delslots" => |_, _, by, argv| Ok(Entry::DelSlots { by, slots: slots_of(argv)? }),
        "addslotsrange" => |_, _, by, argv| Ok(Entry::AddSlots { by, slots: slot_ranges_of(argv)? }),
        "delslotsrange" => |_, _, by, argv| Ok(Entry::DelSlots { by, slots: slot_ranges_of(argv)? }),
        "flushslots" => flushslots_entry,
        "setslot" => setslot_entry,
        "bumpepoch" => |_, _, by, _| Ok(Entry::BumpEpoch { by }),
        "set-config-epoch" => |_, _, by, argv| {
            let epoch = parse_int(&argv[2])?;
            if epoch < 0 {
                return Err(CmdError::err(format!("Invalid config epoch specified: {epoch}")));
            }
            Ok(Entry::SetConfigEpoch { by, epoch: epoch as u64 })
        },
        "forget" => |_, _, by, argv| Ok(Entry::Forget { by, node: String::from_utf8_lossy(&argv[2]).into_owned() }),
        "replicate" => replicate_entry,
        _ => return None,
    };
    Some(match server.cluster.as_ref() {
        Some(cluster) => make(server, cluster, cluster.myself(), argv),
        None => Err(disabled()),
    })
}

/// ADDSLOTS, DELSLOTS, their RANGE forms, FLUSHSLOTS, SETSLOT, BUMPEPOCH,
/// SET-CONFIG-EPOCH, FORGET and REPLICATE: one entry each.
fn change(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let entry = entry_of(ctx.server, argv).expect("registered for configuration changes")?;
    let cluster = cluster(ctx)?;
    if cluster.state().changes_nothing(&entry) {
        return Ok(Reply::ok());
    }
    Ok(reply_of(cluster.propose(entry)?))
}

/// EXEC of a transaction of configuration changes only (what `redis-cli
/// --cluster fix` queues: DELSLOTS, ADDSLOTS, SETSLOT STABLE, BUMPEPOCH):
/// one entry, so the group applies all of it or none. None when the
/// transaction holds anything else.
pub(super) fn exec_as_one_entry(server: &Server, queued: &[Vec<Bytes>]) -> Option<Reply> {
    let cluster = server.cluster.as_ref()?;
    let mut made = Vec::new();
    for argv in queued {
        let is_cluster = argv.first().is_some_and(|name| name.eq_ignore_ascii_case(b"cluster"));
        made.push(if is_cluster { entry_of(server, argv)? } else { return None });
    }
    let entries: Vec<Entry> = made.iter().filter_map(|made| made.as_ref().ok().cloned()).collect();
    let mut applied = match cluster.propose(Entry::Batch(entries)) {
        Ok(Applied::Batch(applied)) => applied.into_iter(),
        Ok(other) => vec![other].into_iter(),
        Err(e) => return Some(Reply::Array(made.iter().map(|_| e.to_reply()).collect())),
    };
    let replies = made
        .into_iter()
        .map(|made| match made {
            Ok(_) => applied.next().map_or_else(Reply::ok, reply_of),
            Err(e) => e.to_reply(),
        })
        .collect();
    Some(Reply::Array(replies))
}

fn flushslots_entry(server: &Server, _cluster: &Cluster, by: String, _argv: &[Bytes]) -> Result<Entry, CmdError> {
    if server.keyspace.key_counts(0).0 != 0 {
        return Err(CmdError::err("DB must be empty to perform CLUSTER FLUSHSLOTS."));
    }
    Ok(Entry::FlushSlots { by })
}

/// `CLUSTER SETSLOT slot IMPORTING node | MIGRATING node | STABLE | NODE node`
fn setslot_entry(server: &Server, _cluster: &Cluster, by: String, argv: &[Bytes]) -> Result<Entry, CmdError> {
    let slot = slot_arg(&argv[2])?;
    let node = || String::from_utf8_lossy(&argv[4]).into_owned();
    let verb = &argv[3];
    let action = match argv.len() {
        5 if verb.eq_ignore_ascii_case(b"MIGRATING") => SlotAction::Migrating(node()),
        5 if verb.eq_ignore_ascii_case(b"IMPORTING") => SlotAction::Importing(node()),
        4 if verb.eq_ignore_ascii_case(b"STABLE") => SlotAction::Stable,
        5 if verb.eq_ignore_ascii_case(b"NODE") => SlotAction::Node {
            owner: node(),
            holds_keys: server.keyspace.keys_in_slot(0, slot) != 0,
            allow_replica_migration: server.config.read().get("cluster-allow-replica-migration") == Some("yes"),
        },
        _ => return Err(CmdError::err("Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")),
    };
    Ok(Entry::SetSlot { by, slot, action })
}

/// `CLUSTER REPLICATE node-id`: a master must hold no keys to become a
/// replica (the slots are checked with the shared state).
fn replicate_entry(server: &Server, cluster: &Cluster, by: String, argv: &[Bytes]) -> Result<Entry, CmdError> {
    let master = String::from_utf8_lossy(&argv[2]).into_owned();
    let state = cluster.state();
    let is_master = state.node(&by).is_some_and(|n| n.is_master());
    let known_master = state.node(&master).is_some_and(|n| n.is_master() && n.name != by);
    if known_master && is_master && server.keyspace.key_counts(0).0 != 0 {
        return Err(CmdError::err("To set a master the node must be empty and without assigned slots."));
    }
    Ok(Entry::Replicate { by, master })
}

/// `CLUSTER REPLICAS node-id` (and SLAVES)
fn replicas(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cluster = cluster(ctx)?;
    let name = String::from_utf8_lossy(&argv[2]).into_owned();
    cluster.render(|view| {
        let node = view.state.node(&name).ok_or_else(|| CmdError::err(format!("Unknown node {name}")))?;
        if !node.is_master() {
            return Err(CmdError::err("The specified node is not a master"));
        }
        let lines: Vec<String> = view.state.replicas_of(&name).into_iter().map(|r| view.node_line(r)).collect();
        Ok(Reply::bulks(lines))
    })
}

/// `CLUSTER COUNT-FAILURE-REPORTS node-id`
fn count_failure_reports(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cluster = cluster(ctx)?;
    let name = String::from_utf8_lossy(&argv[2]).into_owned();
    match cluster.failure_reports(&name) {
        Some(count) => Ok(Reply::Integer(count as i64)),
        None => Err(CmdError::err(format!("Unknown node {name}"))),
    }
}

/// `CLUSTER FAILOVER [FORCE|TAKEOVER]`
fn failover(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cluster = cluster(ctx)?;
    let force = match argv.get(2) {
        None => false,
        Some(arg) if arg.eq_ignore_ascii_case(b"FORCE") || arg.eq_ignore_ascii_case(b"TAKEOVER") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    cluster.manual_failover(force)?;
    Ok(Reply::ok())
}

/// `CLUSTER RESET [HARD|SOFT]`
fn reset(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let cluster = cluster(ctx)?;
    let hard = match argv.get(2) {
        None => false,
        Some(arg) if arg.eq_ignore_ascii_case(b"HARD") => true,
        Some(arg) if arg.eq_ignore_ascii_case(b"SOFT") => false,
        Some(_) => return Err(CmdError::Syntax),
    };
    let is_master = cluster.state().node(&cluster.myself()).is_none_or(|n| n.is_master());
    if is_master && ctx.server.keyspace.key_counts(ctx.client.db).0 != 0 {
        return Err(CmdError::err("CLUSTER RESET can't be called with master nodes containing keys"));
    }
    cluster.reset(hard)?;
    // A replica starts over as an empty master, as in Redis (its link to
    // the master ended with the reset).
    if !is_master {
        let keyspace = &ctx.server.keyspace;
        keyspace.transact(0, crate::keyspace::Locking::All, |tx| {
            (0..keyspace.databases()).try_for_each(|db| tx.flush_database(keyspace.store.physical(db)))
        })?;
        ctx.server.pubsub.tracking.flush();
    }
    Ok(Reply::ok())
}

/// `CLUSTER SAVECONFIG`
fn saveconfig(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?.save_config().map_err(|e| CmdError::err(format!("error saving the cluster node config: {e}")))?;
    Ok(Reply::ok())
}

/// `READONLY`: reads of this replica's master's slots are served here.
fn readonly(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    ctx.client.readonly = true;
    Ok(Reply::ok())
}

/// `READWRITE`
fn readwrite(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    ctx.client.readonly = false;
    Ok(Reply::ok())
}

/// `ASKING`: the next command may touch an importing slot.
fn asking(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    ctx.client.asking = true;
    Ok(Reply::ok())
}
