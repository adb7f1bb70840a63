//! Pub/sub commands: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE
//! SSUBSCRIBE SUNSUBSCRIBE PUBLISH SPUBLISH PUBSUB (see `crate::pubsub`).

use bytes::Bytes;

use super::{CommandTable, Ctx};
use crate::client::Client;
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;
use crate::pubsub::Kind;
use crate::server::Server;

pub fn register(table: &mut CommandTable) {
    table.register("subscribe", subscribe);
    table.register("unsubscribe", unsubscribe);
    table.register("psubscribe", psubscribe);
    table.register("punsubscribe", punsubscribe);
    table.register("ssubscribe", ssubscribe);
    table.register("sunsubscribe", sunsubscribe);
    table.register("publish", publish);
    table.register("spublish", spublish);
    table.register("pubsub|channels", pubsub_channels);
    table.register("pubsub|numsub", pubsub_numsub);
    table.register("pubsub|numpat", pubsub_numpat);
    table.register("pubsub|shardchannels", pubsub_shardchannels);
    table.register("pubsub|shardnumsub", pubsub_shardnumsub);
    table.register("pubsub|help", pubsub_help);
}

/// Whether a RESP2 client with subscriptions may run `name` (Redis's
/// CLIENT_PUBSUB context).
pub(super) fn allowed_in_context(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "ssubscribe"
            | "psubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "punsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// Drops every subscription of a client that closes or RESETs, without
/// replies.
pub(crate) fn forget(server: &Server, client: &mut Client) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in std::mem::take(client.subscriptions.of_mut(kind)) {
            server.pubsub.unsubscribe(kind, &name, client.shared.id);
        }
    }
    client.subscriptions_changed();
}

/// What a subscription kind's replies call it.
fn words(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

/// A (un)subscription's reply: the word, the name (nil for none), and
/// how many subscriptions of its count the client has now (channels and
/// patterns together; shard channels apart).
fn notice(word: &'static str, name: Option<&Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::Bulk(Bytes::from_static(word.as_bytes())),
        name.map_or(Reply::Nil, |name| Reply::Bulk(name.clone())),
        Reply::Integer(count as i64),
    ])
}

fn subscribe_all(server: &Server, client: &mut Client, kind: Kind, names: &[Bytes]) -> Reply {
    let subscriber = client.subscriber();
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if client.subscriptions.of_mut(kind).insert(name.clone()) {
            server.pubsub.subscribe(kind, name, &subscriber);
        }
        replies.push(notice(words(kind).0, Some(name), client.subscriptions.count(kind)));
    }
    client.subscriptions_changed();
    Reply::Several(replies)
}

/// Unsubscribes from `names`, or from every subscription of the kind when
/// there are none.
pub(crate) fn unsubscribe_all(server: &Server, client: &mut Client, kind: Kind, names: &[Bytes]) -> Reply {
    let names: Vec<Bytes> = match names {
        [] => client.subscriptions.of_mut(kind).iter().cloned().collect(),
        names => names.to_vec(),
    };
    let mut replies = Vec::with_capacity(names.len().max(1));
    for name in &names {
        if client.subscriptions.of_mut(kind).shift_remove(name) {
            server.pubsub.unsubscribe(kind, name, client.shared.id);
        }
        replies.push(notice(words(kind).1, Some(name), client.subscriptions.count(kind)));
    }
    if replies.is_empty() {
        replies.push(notice(words(kind).1, None, client.subscriptions.count(kind)));
    }
    client.subscriptions_changed();
    Reply::Several(replies)
}

/// A client whose replies are one per command (a transaction's) cannot
/// take a subscription's: Redis's DENY BLOCKING refusal (SUBSCRIBE and
/// PSUBSCRIBE are let into MULTI, as Redis lets them for old clients).
fn refuse_in_exec(client: &Client, command: &str) -> Result<(), CmdError> {
    match client.in_exec {
        true => Err(CmdError::err(format!("{command} isn't allowed for a DENY BLOCKING client"))),
        false => Ok(()),
    }
}

/// `SUBSCRIBE channel [channel ...]`
fn subscribe(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(subscribe_all(ctx.server, ctx.client, Kind::Channel, &argv[1..]))
}

/// `UNSUBSCRIBE [channel ...]`
fn unsubscribe(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(unsubscribe_all(ctx.server, ctx.client, Kind::Channel, &argv[1..]))
}

/// `PSUBSCRIBE pattern [pattern ...]`
fn psubscribe(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(subscribe_all(ctx.server, ctx.client, Kind::Pattern, &argv[1..]))
}

/// `PUNSUBSCRIBE [pattern ...]`
fn punsubscribe(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(unsubscribe_all(ctx.server, ctx.client, Kind::Pattern, &argv[1..]))
}

/// `SSUBSCRIBE shardchannel [shardchannel ...]`
fn ssubscribe(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    refuse_in_exec(ctx.client, "SSUBSCRIBE")?;
    Ok(subscribe_all(ctx.server, ctx.client, Kind::Shard, &argv[1..]))
}

/// `SUNSUBSCRIBE [shardchannel ...]`
fn sunsubscribe(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(unsubscribe_all(ctx.server, ctx.client, Kind::Shard, &argv[1..]))
}

/// `PUBLISH channel message`
fn publish(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if let Some(cluster) = &ctx.server.cluster {
        cluster.broadcast_publish(None, &argv[1], &argv[2]);
        return Ok(Reply::Integer(ctx.server.pubsub.publish(&argv[1], &argv[2]) as i64));
    }
    propagate(ctx, false, argv)?;
    Ok(Reply::Integer(ctx.server.pubsub.publish(&argv[1], &argv[2]) as i64))
}

/// `SPUBLISH shardchannel message`
fn spublish(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    if let Some(cluster) = &ctx.server.cluster {
        cluster.broadcast_publish(Some(strata_cluster::key_slot(&argv[1])), &argv[1], &argv[2]);
        return Ok(Reply::Integer(ctx.server.pubsub.spublish(&argv[1], &argv[2]) as i64));
    }
    propagate(ctx, true, argv)?;
    Ok(Reply::Integer(ctx.server.pubsub.spublish(&argv[1], &argv[2]) as i64))
}

/// A message published while replicas are attached goes to them through
/// the log, in order with the writes (Redis propagates PUBLISH). In
/// cluster mode the bus carries it to every node instead, replicas too.
fn propagate(ctx: &mut Ctx, shard: bool, argv: &[Bytes]) -> Result<(), CmdError> {
    // A replica's own PUBLISH stays local: its log holds its master's records only.
    let following = ctx.server.keyspace.following_master.load(std::sync::atomic::Ordering::Acquire);
    if ctx.server.replication.has_replicas() && !following {
        ctx.server.keyspace.log_publish(shard, &argv[1], &argv[2]).map_err(CmdError::from)?;
    }
    Ok(())
}

/// `PUBSUB CHANNELS [pattern]` and `PUBSUB SHARDCHANNELS [pattern]`
fn channels(ctx: &mut Ctx, argv: &[Bytes], kind: Kind) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&argv[1])
        )));
    }
    let pattern = argv.get(2).map(|p| p.as_ref());
    Ok(Reply::bulks(ctx.server.pubsub.active(kind, pattern)))
}

fn pubsub_channels(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    channels(ctx, argv, Kind::Channel)
}

fn pubsub_shardchannels(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    channels(ctx, argv, Kind::Shard)
}

/// `PUBSUB NUMSUB [channel ...]` and `PUBSUB SHARDNUMSUB [channel ...]`
fn numsub(ctx: &mut Ctx, argv: &[Bytes], kind: Kind) -> CmdResult {
    let pubsub = &ctx.server.pubsub;
    let counts =
        argv[2..].iter().flat_map(|name| [Reply::Bulk(name.clone()), Reply::Integer(pubsub.count(kind, name) as i64)]);
    Ok(Reply::Array(counts.collect()))
}

fn pubsub_numsub(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    numsub(ctx, argv, Kind::Channel)
}

fn pubsub_shardnumsub(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    numsub(ctx, argv, Kind::Shard)
}

/// `PUBSUB NUMPAT`
fn pubsub_numpat(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.server.pubsub.active_count(Kind::Pattern) as i64))
}

/// `PUBSUB HELP`
fn pubsub_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(super::server::help_reply(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    ))
}
