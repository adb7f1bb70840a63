//! Fault injection for tests: `fail` failpoints, configured with the
//! FAILPOINTS environment variable when the server starts, in builds with
//! the `failpoints` feature. Without it every failpoint is nothing.
//!
//! The engines' failpoints: `log-write` and `log-fsync` (the write-ahead
//! log's writes and fsyncs), `log-max-record` (a lower record size limit),
//! `rocks-write` (every write to RocksDB), `rocks-drainer` (the RocksDB
//! drainer thread, each round: `sleep(ms)`, `pause`),
//! `checkpoint-shard` (writing one shard of a memory checkpoint, while the
//! cut of the shards after it is in progress), `checkpoint-write`
//! (finishing a memory checkpoint) and `log-archive` (copying a closed log
//! segment into the archive). The server's: `repl-stream-send` (a master's
//! write of records to a replica) and `repl-sync-load` (a replica moving a
//! full sync into its engines, after RocksDB's part).

/// The I/O error the failpoint `name` injects when it is on:
/// `name=return(ENOSPC)`, `return(EIO)`, `return(<errno>)`, or `return`
/// alone for EIO. Counts and chains work as `fail` defines them
/// (`2*return(ENOSPC)->off`: the first two calls fail).
pub fn injected_error(name: &str) -> Option<std::io::Error> {
    let arg = triggered(name)?;
    let errno = match arg.as_deref() {
        None | Some("EIO") => 5,
        Some("ENOSPC") => 28,
        Some("EDQUOT") => 122,
        Some(number) => number.parse().unwrap_or(5),
    };
    Some(std::io::Error::from_raw_os_error(errno))
}

/// The number the failpoint `name` returns when it is on
/// (`name=return(1000)`).
pub fn injected_number(name: &str) -> Option<usize> {
    triggered(name)?.and_then(|arg| arg.parse().ok())
}

#[cfg(feature = "failpoints")]
fn triggered(name: &str) -> Option<Option<String>> {
    fail::eval(name, |arg| arg)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn triggered(_name: &str) -> Option<Option<String>> {
    None
}

/// The C library's words for an I/O error (`strerror`), as Redis quotes
/// them in its MISCONF reply: Rust's own text adds " (os error N)".
pub fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text).to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strerror_words_an_error_as_redis_quotes_it() {
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(super::strerror(&full), "No space left on device");
        let other = std::io::Error::other("something else");
        assert_eq!(super::strerror(&other), "something else");
    }
}
