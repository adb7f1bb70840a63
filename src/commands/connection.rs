//! Connection commands: PING ECHO QUIT RESET HELLO AUTH SELECT.

use bytes::Bytes;

use super::args::{c_text, Args};
use super::{CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("ping", ping);
    table.register("echo", echo);
    table.register("quit", quit);
    table.register("reset", reset);
    table.register("hello", hello);
    table.register("auth", auth);
    table.register("select", select);
}

/// The version Strata reports where clients look for Redis's.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// `PING [message]`
fn ping(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mut args = Args::new(argv);
    let message = args.next_opt();
    args.finish().map_err(|_| CmdError::WrongArity("ping".into()))?;
    if ctx.client.in_pubsub_context() {
        // Redis's answer to a subscribed RESP2 client: a `pong` array.
        let message = message.cloned().unwrap_or_default();
        return Ok(Reply::Array(vec![Reply::Bulk(Bytes::from_static(b"pong")), Reply::Bulk(message)]));
    }
    Ok(match message {
        Some(m) => Reply::Bulk(m.clone()),
        None => Reply::Status("PONG"),
    })
}

/// `ECHO message`
fn echo(_ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(argv[1].clone()))
}

/// `QUIT`: answers OK and closes the connection.
fn quit(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    ctx.client.close_after_reply = true;
    Ok(Reply::ok())
}

/// `RESET`: back to a fresh connection's state.
fn reset(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    super::multi::forget(ctx.server, ctx.client);
    super::pubsub::forget(ctx.server, ctx.client);
    ctx.server.pubsub.remove_monitor(ctx.client.shared.id);
    ctx.server.pubsub.tracking.disable(&ctx.client.shared);
    ctx.client.caching = false;
    ctx.client.shared.monitoring.store(false, std::sync::atomic::Ordering::Relaxed);
    (ctx.client.reply_off, ctx.client.reply_skip, ctx.client.reply_skip_next) = (false, false, false);
    ctx.client.select(0);
    ctx.client.set_resp3(false);
    ctx.client.authenticated = ctx.server.config.read().requirepass().is_none();
    ctx.client.shared.name.lock().clear();
    Ok(Reply::Status("RESET"))
}

/// Checks `username password` against `requirepass` (only the `default`
/// user exists until ACLs do).
fn check_password(ctx: &mut Ctx, user: &[u8], password: &[u8]) -> Result<(), CmdError> {
    let ok = match ctx.server.config.read().requirepass() {
        Some(expected) => user == b"default" && passwords_match(password, expected.as_bytes()),
        None => user == b"default",
    };
    if ok {
        ctx.client.authenticated = true;
        Ok(())
    } else {
        Err(CmdError::Custom("WRONGPASS invalid username-password pair or user is disabled.".into()))
    }
}

/// Whether a client's password is the configured one, in a time that does
/// not depend on where they first differ (Redis's `time_independent_strcmp`):
/// 512 bytes, or all of the longer one, are always compared, so response
/// times lead a guesser neither to the password byte by byte nor to its
/// length.
fn passwords_match(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for i in 0..given.len().max(expected.len()).max(512) {
        let (a, b) = (given.get(i).copied().unwrap_or(0), expected.get(i).copied().unwrap_or(0));
        // Kept opaque so the compiler cannot stop at the first difference.
        difference = std::hint::black_box(difference | (a ^ b));
    }
    difference == 0
}

/// `AUTH [username] password`
fn auth(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    match argv.len() {
        2 => {
            if ctx.server.config.read().requirepass().is_none() {
                return Err(CmdError::err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            check_password(ctx, b"default", &argv[1])?;
        }
        3 => check_password(ctx, &argv[1], &argv[2])?,
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::ok())
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
fn hello(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let mut args = Args::new(argv);
    let mut version = None;
    if let Some(v) = args.next_opt() {
        let v = super::args::parse_int(v)
            .map_err(|_| CmdError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Custom("NOPROTO unsupported protocol version".into()));
        }
        version = Some(v);
    }
    let mut credentials = None;
    let mut name = None;
    while let Some(option) = args.next_opt() {
        let remaining = args.remaining();
        if option.eq_ignore_ascii_case(b"AUTH") && remaining >= 2 {
            credentials = Some((args.next_bytes()?.clone(), args.next_bytes()?.clone()));
        } else if option.eq_ignore_ascii_case(b"SETNAME") && remaining >= 1 {
            name = Some(args.next_bytes()?.clone());
        } else {
            return Err(CmdError::err(format!("Syntax error in HELLO option '{}'", c_text(option))));
        }
    }
    if let Some((user, password)) = &credentials {
        check_password(ctx, user, password)?;
    }
    if !ctx.client.authenticated {
        return Err(CmdError::Custom("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()));
    }
    if let Some(name) = name {
        super::server::validate_client_name(&name)?;
        *ctx.client.shared.name.lock() = String::from_utf8_lossy(&name).into_owned();
    }
    if let Some(v) = version {
        ctx.client.set_resp3(v == 3);
    }
    let text = |s: &str| Reply::bulk_str(s);
    Ok(Reply::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(REDIS_COMPAT_VERSION)),
        (text("proto"), Reply::Integer(if ctx.client.resp3 { 3 } else { 2 })),
        (text("id"), Reply::Integer(ctx.client.shared.id as i64)),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Reply::Array(vec![])),
    ]))
}

/// `SELECT index`
fn select(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let index = super::args::parse_int(&argv[1])?;
    if ctx.server.cluster.is_some() && index != 0 {
        return Err(CmdError::err("SELECT is not allowed in cluster mode"));
    }
    if index < 0 || index as usize >= ctx.server.keyspace.databases() {
        return Err(CmdError::DbIndexOutOfRange);
    }
    ctx.client.select(index as usize);
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::passwords_match;

    #[test]
    fn passwords_match_only_when_equal() {
        assert!(passwords_match(b"s3cret", b"s3cret"));
        assert!(passwords_match(b"", b""));
        assert!(!passwords_match(b"s3creT", b"s3cret"));
        assert!(!passwords_match(b"S3cret", b"s3cret"));
        assert!(!passwords_match(b"s3cre", b"s3cret"));
        assert!(!passwords_match(b"s3cret\0", b"s3cret"));
        assert!(!passwords_match(b"", b"s3cret"));
        assert!(!passwords_match(b"s3cret", b""));
    }
}
