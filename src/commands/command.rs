//! COMMAND: the command table as clients see it. Rows are answered from
//! Redis's own metadata (`row.info`, `row.docs`) with the RESP types Redis
//! uses, listing only what Strata serves.

use bytes::Bytes;
use serde_json::Value;

use super::args::parse_int;
use super::{Command, CommandTable, Ctx};
use crate::error::{CmdError, CmdResult};
use crate::glob::glob_match;
use crate::protocol::Reply;

pub fn register(table: &mut CommandTable) {
    table.register("command", command);
    table.register("command|count", command_count);
    table.register("command|info", command_info);
    table.register("command|docs", command_docs);
    table.register("command|list", command_list);
    table.register("command|getkeys", command_getkeys);
    table.register("command|getkeysandflags", command_getkeysandflags);
    table.register("command|help", command_help);
}

// ---------------------------------------------------------------- metadata to replies

/// A JSON array of words as a set of simple strings (command flags, ACL
/// categories, key-spec and argument flags).
fn status_set(value: &Value) -> Reply {
    let words = value.as_array().map(Vec::as_slice).unwrap_or_default();
    Reply::Set(words.iter().map(|w| Reply::StatusOwned(w.as_str().unwrap_or_default().to_string())).collect())
}

/// Metadata as Redis replies with it: strings are bulk, numbers integers,
/// objects maps with bulk keys; `flags` / `doc_flags` are sets of simple
/// strings and `history` a set, as in Redis's `addReplyCommand*`.
fn meta_reply(value: &Value) -> Reply {
    match value {
        Value::String(text) => Reply::bulk_str(text),
        Value::Number(n) => n.as_i64().map_or_else(|| Reply::Double(n.as_f64().unwrap_or(0.0)), Reply::Integer),
        Value::Bool(b) => Reply::Bool(*b),
        Value::Null => Reply::Nil,
        Value::Array(items) => Reply::Array(items.iter().map(meta_reply).collect()),
        Value::Object(map) => {
            Reply::Map(map.iter().map(|(key, value)| (Reply::bulk_str(key), field_reply(key, value))).collect())
        }
    }
}

/// The value of one field of a metadata object.
fn field_reply(key: &str, value: &Value) -> Reply {
    match key {
        "flags" | "doc_flags" => status_set(value),
        "history" => Reply::Set(value.as_array().into_iter().flatten().map(meta_reply).collect()),
        _ => meta_reply(value),
    }
}

/// The served subcommands of a container, in Redis's metadata order.
fn served_subcommands<'a>(row: &'a Command) -> impl Iterator<Item = &'a Command> + 'a {
    row.info[9].as_array().into_iter().flatten().filter_map(move |sub| {
        let full = sub[0].as_str()?;
        let short = full.split_once('|').map_or(full, |(_, s)| s);
        row.subcommands.get(short)
    })
}

/// One COMMAND INFO row: name, arity, flags, first/last/step, ACL
/// categories, tips, key specs, subcommands.
fn info_reply(row: &Command) -> Reply {
    let info = row.info;
    let int = |i: usize| Reply::Integer(info[i].as_i64().unwrap_or(0));
    let list = |i: usize| info[i].as_array().map(Vec::as_slice).unwrap_or_default();
    Reply::Array(vec![
        Reply::bulk_str(&row.name),
        int(1),
        status_set(&info[2]),
        int(3),
        int(4),
        int(5),
        status_set(&info[6]),
        Reply::Set(list(7).iter().map(meta_reply).collect()),
        Reply::Set(list(8).iter().map(meta_reply).collect()),
        Reply::Set(served_subcommands(row).map(info_reply).collect()),
    ])
}

/// One COMMAND DOCS entry, with only the served subcommands.
fn docs_reply(row: &Command) -> Reply {
    let Some(docs) = row.docs.as_object() else {
        return Reply::Map(Vec::new());
    };
    let pairs = docs
        .iter()
        .map(|(key, value)| {
            let reply = if key == "subcommands" {
                Reply::Map(served_subcommands(row).map(|sub| (Reply::bulk_str(&sub.name), docs_reply(sub))).collect())
            } else {
                field_reply(key, value)
            };
            (Reply::bulk_str(key), reply)
        })
        .collect();
    Reply::Map(pairs)
}

/// A row by name: `get`, or `config|get` for a subcommand (any case).
fn find<'a>(table: &'a CommandTable, name: &[u8]) -> Option<&'a Command> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match name.split_once('|') {
        Some((base, sub)) => table.get(base)?.subcommands.get(sub),
        None => table.get(&name),
    }
}

/// Every served row, containers' subcommands after their container.
fn all_rows(table: &CommandTable) -> Vec<&Command> {
    let mut rows = Vec::new();
    for row in table.iter() {
        rows.push(row);
        rows.extend(served_subcommands(row));
    }
    rows
}

// ---------------------------------------------------------------- handlers

/// `COMMAND`: every served command's INFO row.
fn command(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(ctx.server.commands.iter().map(info_reply).collect()))
}

/// `COMMAND COUNT`
fn command_count(ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Integer(ctx.server.commands.len() as i64))
}

/// `COMMAND INFO [command-name ...]`: nil for a name Strata does not serve.
fn command_info(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let table = &ctx.server.commands;
    if argv.len() == 2 {
        return Ok(Reply::Array(table.iter().map(info_reply).collect()));
    }
    Ok(Reply::Array(argv[2..].iter().map(|name| find(table, name).map_or(Reply::Nil, info_reply)).collect()))
}

/// `COMMAND DOCS [command-name ...]`: unknown names are left out.
fn command_docs(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let table = &ctx.server.commands;
    let rows: Vec<&Command> = if argv.len() == 2 {
        table.iter().collect()
    } else {
        argv[2..].iter().filter_map(|n| find(table, n)).collect()
    };
    Ok(Reply::Map(rows.into_iter().map(|row| (Reply::bulk_str(&row.name), docs_reply(row))).collect()))
}

/// `COMMAND LIST [FILTERBY MODULE module-name | ACLCAT category | PATTERN pattern]`
fn command_list(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let rows = all_rows(&ctx.server.commands);
    let names = |keep: &dyn Fn(&Command) -> bool| {
        Reply::Array(rows.iter().filter(|row| keep(row)).map(|row| Reply::bulk_str(&row.name)).collect())
    };
    if argv.len() == 2 {
        return Ok(names(&|_| true));
    }
    if argv.len() != 5 || !argv[2].eq_ignore_ascii_case(b"FILTERBY") {
        return Err(CmdError::Syntax);
    }
    let value = &argv[4];
    Ok(match argv[3].to_ascii_uppercase().as_slice() {
        // Strata has no modules.
        b"MODULE" => Reply::Array(Vec::new()),
        b"ACLCAT" => {
            let category = format!("@{}", String::from_utf8_lossy(value).to_ascii_lowercase());
            names(&|row| row.acl_categories.iter().any(|c| c.eq_ignore_ascii_case(&category)))
        }
        b"PATTERN" => names(&|row| glob_match(value, row.name.as_bytes(), true)),
        _ => return Err(CmdError::Syntax),
    })
}

/// `COMMAND GETKEYS command [arg ...]`
fn command_getkeys(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let keys = keys_of(&ctx.server.commands, &argv[2..])?;
    Ok(Reply::Array(keys.into_iter().map(|key| Reply::Bulk(argv[2 + key.pos].clone())).collect()))
}

/// `COMMAND GETKEYSANDFLAGS command [arg ...]`
fn command_getkeysandflags(ctx: &mut Ctx, argv: &[Bytes]) -> CmdResult {
    let keys = keys_of(&ctx.server.commands, &argv[2..])?;
    Ok(Reply::Array(
        keys.into_iter()
            .map(|key| {
                let flags = Reply::Set(key.flags.iter().map(|f| Reply::StatusOwned(f.to_string())).collect());
                Reply::Array(vec![Reply::Bulk(argv[2 + key.pos].clone()), flags])
            })
            .collect(),
    ))
}

/// `COMMAND HELP`
fn command_help(_ctx: &mut Ctx, _argv: &[Bytes]) -> CmdResult {
    let lines = [
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "GETKEYSANDFLAGS <full-command>",
        "    Return the keys and the access flags from a full Redis command.",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Reply::Array(lines.iter().map(|line| Reply::StatusOwned(line.to_string())).collect()))
}

// ---------------------------------------------------------------- key positions

/// One key argument found in a command line: its position (0 = the command
/// name) and its key-spec flags (`RW`, `access` ...).
#[derive(Debug, PartialEq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: Vec<String>,
}

fn words(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|w| w.as_str().map(str::to_string)).collect()
}

/// The keys of a command line, as Redis's `getKeysSubcommandImpl` finds
/// them, with its errors.
fn keys_of(table: &CommandTable, line: &[Bytes]) -> Result<Vec<KeyRef>, CmdError> {
    let row = table.get(&String::from_utf8_lossy(&line[0]).to_ascii_lowercase());
    // As Redis's lookupCommand: a container's subcommand when one is given.
    let row = match row {
        Some(row) if !row.subcommands.is_empty() && line.len() >= 2 => {
            row.subcommands.get(&String::from_utf8_lossy(&line[1]).to_ascii_lowercase())
        }
        other => other,
    };
    let Some(row) = row else {
        return Err(CmdError::err("Invalid command specified"));
    };
    let specs = row.info[8].as_array().map(Vec::as_slice).unwrap_or_default();
    let has_keys =
        row.has_flag("movablekeys") || specs.iter().any(|s| !words(&s["flags"]).iter().any(|f| f == "not_key"));
    if !has_keys {
        return Err(CmdError::err("The command has no key arguments"));
    }
    let argc = line.len() as i64;
    if (row.arity > 0 && row.arity != argc) || argc < -row.arity {
        return Err(CmdError::err("Invalid number of arguments specified for command"));
    }
    let keys = keys_in_line(row, line).unwrap_or_default();
    if keys.is_empty() && !row.has_flag("no_mandatory_keys") {
        return Err(CmdError::err("Invalid arguments specified for command"));
    }
    Ok(keys)
}

/// The keys of a call of `row`: key specs first; where they cannot say
/// (an unknown or incomplete spec, or flags that depend on the arguments),
/// the command's own rule, as Redis's getkeys_proc.
fn keys_in_line(row: &Command, line: &[Bytes]) -> Option<Vec<KeyRef>> {
    let specs = row.info[8].as_array().map(Vec::as_slice).unwrap_or_default();
    let variable = specs.iter().any(|s| words(&s["flags"]).iter().any(|f| f == "variable_flags"));
    let from_specs = if variable { None } else { keys_from_specs(specs, line) };
    from_specs.or_else(|| keys_by_rule(&row.name, line))
}

/// The positions of the keys of a call of `row` (see `Command::keys`).
pub(super) fn movable_key_positions(row: &Command, line: &[Bytes]) -> Option<Vec<usize>> {
    Some(keys_in_line(row, line)?.into_iter().map(|key| key.pos).collect())
}

/// Redis's `getKeysUsingKeySpecs`; `None` when a spec cannot be applied
/// to this line.
pub fn keys_from_specs(specs: &[Value], line: &[Bytes]) -> Option<Vec<KeyRef>> {
    let argc = line.len() as i64;
    let mut keys = Vec::new();
    for spec in specs {
        let flags = words(&spec["flags"]);
        if flags.iter().any(|f| f == "not_key") {
            continue;
        }
        let begin = &spec["begin_search"];
        let mut first = match begin["type"].as_str()? {
            "index" => begin["spec"]["index"].as_i64()?,
            "keyword" => {
                let keyword = begin["spec"]["keyword"].as_str()?.as_bytes();
                let start_from = begin["spec"]["startfrom"].as_i64()?;
                let (start, end) = if start_from > 0 { (start_from, argc - 1) } else { (argc + start_from, 0) };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if line[i as usize].eq_ignore_ascii_case(keyword) {
                        found = i + 1;
                        break;
                    }
                    i += if start <= end { 1 } else { -1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
            _ => return None,
        };
        let find = &spec["find_keys"];
        let fk = &find["spec"];
        let (last, step) = match find["type"].as_str()? {
            "range" => {
                let last_key = fk["lastkey"].as_i64()?;
                let limit = fk["limit"].as_i64()?;
                let last = if last_key >= 0 {
                    first + last_key
                } else if limit == 0 {
                    argc + last_key
                } else {
                    first + ((argc - first) / limit + last_key)
                };
                (last, fk["keystep"].as_i64()?)
            }
            "keynum" => {
                let index = first + fk["keynumidx"].as_i64()?;
                if index >= argc {
                    return None;
                }
                let count = parse_int(&line[index as usize]).ok().filter(|&n| n >= 0)?;
                first += fk["firstkey"].as_i64()?;
                (first + count - 1, fk["keystep"].as_i64()?)
            }
            _ => return None,
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            return None;
        }
        // `last < argc` was checked, so every position is in the line.
        for pos in (first..=last).step_by(step as usize) {
            keys.push(KeyRef { pos: pos as usize, flags: flags.clone() });
        }
        if flags.iter().any(|f| f == "incomplete") {
            return None;
        }
    }
    Some(keys)
}

/// The commands whose keys or key flags the specs cannot give (Redis's
/// `sortGetKeys`, `sortROGetKeys`, `migrateGetKeys`, `setGetKeys`,
/// `bitfieldGetKeys`).
fn keys_by_rule(name: &str, line: &[Bytes]) -> Option<Vec<KeyRef>> {
    let key = |pos: usize, flags: &[&str]| KeyRef { pos, flags: flags.iter().map(|f| f.to_string()).collect() };
    let is = |arg: &Bytes, word: &str| arg.eq_ignore_ascii_case(word.as_bytes());
    match name {
        // SET ... GET reads the old value.
        "set" if line[3..].iter().any(|arg| is(arg, "GET")) => Some(vec![key(1, &["RW", "access", "update"])]),
        "set" => Some(vec![key(1, &["OW", "update"])]),
        "bitfield" => {
            let mut read_only = true;
            let mut i = 2;
            while i < line.len() {
                let left = line.len() - i - 1;
                if is(&line[i], "GET") && left >= 2 {
                    i += 2;
                } else if is(&line[i], "OVERFLOW") && left >= 1 {
                    i += 1;
                } else {
                    // SET / INCRBY write; anything else is a syntax error
                    // the command reports, counted as a write to be safe.
                    read_only = false;
                    break;
                }
                i += 1;
            }
            Some(vec![if read_only { key(1, &["RO", "access"]) } else { key(1, &["RW", "access", "update"]) }])
        }
        "sort_ro" => Some(vec![key(1, &["RO", "access"])]),
        "sort" => {
            let mut keys = vec![key(1, &["RO", "access"])];
            let mut store = None;
            let mut i = 2;
            while i < line.len() {
                let arg = &line[i];
                if arg.eq_ignore_ascii_case(b"LIMIT") {
                    i += 2;
                } else if arg.eq_ignore_ascii_case(b"GET") || arg.eq_ignore_ascii_case(b"BY") {
                    i += 1;
                } else if arg.eq_ignore_ascii_case(b"STORE") && i + 1 < line.len() {
                    // The last STORE wins, as in SORT itself.
                    store = Some(i + 1);
                }
                i += 1;
            }
            keys.extend(store.map(|pos| key(pos, &["OW", "update"])));
            Some(keys)
        }
        "migrate" => {
            let flags = ["RW", "access", "delete"];
            let mut i = 6;
            while i < line.len() {
                let arg = &line[i];
                if arg.eq_ignore_ascii_case(b"KEYS") {
                    if !line[3].is_empty() {
                        return None;
                    }
                    return Some((i + 1..line.len()).map(|pos| key(pos, &flags)).collect());
                } else if arg.eq_ignore_ascii_case(b"AUTH") {
                    i += 1;
                } else if arg.eq_ignore_ascii_case(b"AUTH2") {
                    i += 2;
                }
                i += 1;
            }
            Some(vec![key(3, &flags)])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    fn meta(name: &str) -> &'static Value {
        &super::super::redis_meta()["commands"][name]["info"]
    }

    fn positions(name: &str, words: &[&str]) -> Option<Vec<usize>> {
        let info = meta(name);
        let specs = info[8].as_array().unwrap();
        keys_from_specs(specs, &line(words)).map(|k| k.into_iter().map(|k| k.pos).collect())
    }

    #[test]
    fn key_specs_find_keys_like_redis() {
        assert_eq!(positions("get", &["get", "a"]), Some(vec![1]));
        assert_eq!(positions("mset", &["mset", "a", "1", "b", "2"]), Some(vec![1, 3]));
        assert_eq!(positions("del", &["del", "a", "b", "c"]), Some(vec![1, 2, 3]));
        assert_eq!(positions("zunionstore", &["zunionstore", "d", "2", "a", "b"]), Some(vec![1, 3, 4]));
        assert_eq!(positions("zunionstore", &["zunionstore", "d", "5", "a", "b"]), None);
        assert_eq!(
            positions("xread", &["xread", "count", "1", "streams", "a", "b", "c", "1", "2", "3"]),
            Some(vec![4, 5, 6])
        );
        assert_eq!(positions("eval", &["eval", "s", "0"]), None);
        assert_eq!(positions("eval", &["eval", "s", "2", "a", "b", "x"]), Some(vec![3, 4]));
        // The STORE spec of SORT is unknown: the rule takes over.
        assert_eq!(positions("sort", &["sort", "a", "store", "b"]), None);
        let rule =
            keys_by_rule("sort", &line(&["sort", "a", "limit", "0", "1", "get", "store", "store", "b"])).unwrap();
        assert_eq!(rule.iter().map(|k| k.pos).collect::<Vec<_>>(), vec![1, 8]);
        assert_eq!(rule[1].flags, vec!["OW", "update"]);
    }

    #[test]
    fn metadata_types_follow_redis() {
        let spec = &meta("get")[8][0];
        let Reply::Map(pairs) = meta_reply(spec) else { panic!("key spec is a map") };
        assert_eq!(pairs[0].0, Reply::bulk_str("flags"));
        assert_eq!(pairs[0].1, Reply::Set(vec![Reply::StatusOwned("RO".into()), Reply::StatusOwned("access".into())]));
        let Reply::Map(begin) = &pairs[1].1 else { panic!("begin_search is a map") };
        assert_eq!(begin[0], (Reply::bulk_str("type"), Reply::bulk_str("index")));
    }
}
