//! String commands (RocksDB engine): the value lives in the key's metadata
//! record, so GET is one lookup.

use bytes::Bytes;
use strata_engines::KeyType;

use super::args::{parse_expire, Args, TimeUnit};
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("get", get);
    table.register("set", set);
}

/// `GET key`
fn get(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let value =
        ctx.server.keyspace.run(ctx.client.db, &[key], |tx| Ok(tx.meta_of(key, KeyType::String)?.map(|m| m.body)))?;
    ctx.server.stats.hit(value.is_some());
    Ok(Reply::opt_bulk(value))
}

/// When SET writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    IfMissing,
    IfExists,
}

/// What SET does with the TTL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ttl {
    Clear,
    Keep,
    /// Absolute unix ms.
    At(u64),
}

struct SetArgs<'a> {
    key: &'a Bytes,
    value: &'a Bytes,
    condition: Condition,
    ttl: Ttl,
    get: bool,
}

impl<'a> SetArgs<'a> {
    /// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts-ms | KEEPTTL]`
    fn parse(argv: &'a [Bytes], now_ms: u64) -> Result<SetArgs<'a>, CmdError> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let value = args.next_bytes()?;
        let mut parsed = SetArgs { key, value, condition: Condition::Always, ttl: Ttl::Clear, get: false };
        let mut ttl_given = false;
        while let Some(option) = args.next_opt() {
            let option = String::from_utf8_lossy(option).to_ascii_uppercase();
            match option.as_str() {
                "NX" if parsed.condition == Condition::Always => parsed.condition = Condition::IfMissing,
                "XX" if parsed.condition == Condition::Always => parsed.condition = Condition::IfExists,
                "GET" => parsed.get = true,
                "KEEPTTL" if !ttl_given => {
                    ttl_given = true;
                    parsed.ttl = Ttl::Keep;
                }
                "EX" | "PX" | "EXAT" | "PXAT" if !ttl_given && args.peek().is_some() => {
                    ttl_given = true;
                    let unit = if option.starts_with('E') { TimeUnit::Seconds } else { TimeUnit::Milliseconds };
                    let relative = !option.ends_with("AT");
                    parsed.ttl = Ttl::At(parse_expire(args.next_bytes()?, unit, relative, now_ms, "set")?);
                }
                _ => return Err(CmdError::Syntax),
            }
        }
        Ok(parsed)
    }
}

/// `SET key value [NX | XX] [GET] [EX | PX | EXAT | PXAT | KEEPTTL]`
fn set(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let now = strata_engines::now_ms();
    let set = SetArgs::parse(argv, now)?;
    ctx.server.keyspace.run(ctx.client.db, &[set.key], |tx| {
        let old = tx.meta(set.key)?;
        let old_value = match &old {
            Some(meta) if set.get && meta.key_type != KeyType::String => return Err(CmdError::WrongType),
            Some(meta) if meta.key_type == KeyType::String => Some(Bytes::from(meta.body.clone())),
            _ => None,
        };
        let write = match set.condition {
            Condition::Always => true,
            Condition::IfMissing => old.is_none(),
            Condition::IfExists => old.is_some(),
        };
        if write {
            let expire_ms = match set.ttl {
                Ttl::Clear => 0,
                Ttl::Keep => old.as_ref().map_or(0, |m| m.expire_ms),
                Ttl::At(ms) => ms,
            };
            if expire_ms != 0 && expire_ms <= tx.now_ms() {
                // Already expired: Redis deletes the key instead of setting it.
                tx.delete(set.key)?;
            } else {
                tx.set_string(set.key, old.as_ref(), set.value, expire_ms);
            }
        }
        Ok(match (set.get, write) {
            (true, _) => Reply::opt_bulk(old_value),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Nil,
        })
    })
}
