//! `strata-check-log`: checks Strata's write-ahead log like redis-check-aof
//! checks an AOF, and with `--fix` cuts it back to its last good record.
//!
//! Usage: `strata-check-log [--fix] [--yes] <data dir | log dir>`
//!
//! Exit status: 0 when the log is whole (or was fixed), 1 when damage was
//! found and left alone, 2 on usage or I/O errors.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strata_engines::log::{cut_torn_tail, list_segments, read_log, LogError};

const USAGE: &str = "Usage: strata-check-log [--fix] [--yes] <data dir | log dir>";

/// Damage found, and what fixing it means.
struct Damage {
    path: PathBuf,
    offset: u64,
    after_seq: u64,
    what: String,
    /// Segments after the damaged one (they would follow a gap).
    later: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let mut fix = false;
    let mut yes = false;
    let mut target = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--fix" => fix = true,
            "--yes" | "-y" => yes = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if target.is_none() && !arg.starts_with('-') => target = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(target) = target else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let dir = if target.join("log").is_dir() { target.join("log") } else { target };
    match check(&dir, fix, yes) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(dir: &Path, fix: bool, yes: bool) -> Result<ExitCode, LogError> {
    let segments = list_segments(dir)?;
    let Some(first) = segments.first() else {
        println!("No log segments in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    let mut records = 0u64;
    let mut first_seq = None;
    let result = read_log(dir, first.first_seq - 1, |record| {
        records += 1;
        first_seq.get_or_insert(record.seq);
        Ok::<(), LogError>(())
    });
    println!("{} segment(s) in {}", segments.len(), dir.display());
    match result {
        Ok(end) => {
            match first_seq {
                Some(first) => println!("{records} record(s), sequences {first} to {}", end.last_seq),
                None => println!("no records"),
            }
            let Some((path, offset)) = end.torn else {
                println!("Log OK");
                return Ok(ExitCode::SUCCESS);
            };
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(offset);
            if end.unused_tail {
                // What `appendfsync always` writes ahead; the server cuts it at start.
                println!("Log OK ({} byte(s) of zeros written ahead after the last record)", size - offset);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Torn last record in {} at offset {offset} ({} byte(s) of an incomplete record after sequence {})",
                path.display(),
                size - offset,
                end.last_seq
            );
            let damage =
                Damage { path, offset, after_seq: end.last_seq, what: "incomplete record".into(), later: Vec::new() };
            repair(damage, fix, yes)
        }
        Err(LogError::Corrupt { path, offset, after_seq, what }) => {
            println!("{records} good record(s) before the damage");
            println!("Damage in {} at offset {offset} (after sequence {after_seq}): {what}", path.display());
            let later = segments.iter().filter(|s| s.path > path).map(|s| s.path.clone()).collect();
            repair(Damage { path, offset, after_seq, what, later }, fix, yes)
        }
        Err(other) => Err(other),
    }
}

fn repair(damage: Damage, fix: bool, yes: bool) -> Result<ExitCode, LogError> {
    if !fix {
        println!("Run with --fix to cut the log back to sequence {}.", damage.after_seq);
        return Ok(ExitCode::from(1));
    }
    let size = std::fs::metadata(&damage.path).map(|m| m.len()).unwrap_or(damage.offset);
    println!(
        "This will discard {} byte(s) of {} from offset {} ({}) and {} later segment(s): every record after \
         sequence {} is lost.",
        size.saturating_sub(damage.offset),
        damage.path.display(),
        damage.offset,
        damage.what,
        damage.later.len(),
        damage.after_seq
    );
    if !yes && !confirm()? {
        println!("Nothing changed.");
        return Ok(ExitCode::from(1));
    }
    cut_torn_tail(&damage.path, damage.offset)?;
    for path in &damage.later {
        std::fs::remove_file(path).map_err(|source| LogError::Io { path: path.clone(), source })?;
    }
    println!("Successfully truncated the log; it now ends at sequence {}.", damage.after_seq);
    Ok(ExitCode::SUCCESS)
}

fn confirm() -> Result<bool, LogError> {
    print!("Continue? [y/N]: ");
    let stdin_error = |source| LogError::Io { path: PathBuf::from("<stdin>"), source };
    std::io::stdout().flush().map_err(stdin_error)?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(stdin_error)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
