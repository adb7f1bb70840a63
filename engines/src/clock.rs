//! The wall clock as commands see it. Redis reads the clock once as a
//! command starts (`call`: `cmd_time_snapshot`), uses that time for every
//! expiry check the command makes, and reads it again when the command
//! ends, for its duration. `timed` does the same: a command on this thread
//! sees the time it started at, so that a clock read is not repeated for
//! every key it looks at.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The start of the command running on this thread, in unix
    /// microseconds (0: none is running).
    static COMMAND_START_US: Cell<u64> = const { Cell::new(0) };
}

fn read_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Milliseconds since the unix epoch: the start of the running command, if
/// any (see `timed`).
pub fn now_ms() -> u64 {
    match COMMAND_START_US.get() {
        0 => read_us() / 1000,
        started => started / 1000,
    }
}

/// Pins the time that this thread sees (and its commands start at) to
/// `ms`; 0 unpins it. Tests set the clock back with it.
#[doc(hidden)]
pub fn pin_for_tests(ms: u64) {
    COMMAND_START_US.set(ms * 1000);
}

/// Runs a command with the time it sees pinned to its start; returns what
/// it returned and how many microseconds it took. A command run by another
/// (EXEC's, a blocked client's served by a push) sees the outer one's time.
pub fn timed<R>(command: impl FnOnce() -> R) -> (R, u64) {
    let started = read_us();
    let outermost = COMMAND_START_US.get() == 0;
    if outermost {
        COMMAND_START_US.set(started);
    }
    // Unpinned again even if the command panics: a stale time left behind
    // would stop expiry on this thread.
    struct Unpin(bool);
    impl Drop for Unpin {
        fn drop(&mut self) {
            if self.0 {
                COMMAND_START_US.set(0);
            }
        }
    }
    let unpin = Unpin(outermost);
    let result = command();
    drop(unpin);
    (result, read_us().saturating_sub(started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_sees_its_start_time_and_nested_ones_the_outer_time() {
        let before = now_ms();
        let ((outer, inner), took) = timed(|| {
            let outer = now_ms();
            std::thread::sleep(std::time::Duration::from_millis(5));
            let (inner, _) = timed(now_ms);
            assert_eq!(now_ms(), outer, "the time stays pinned after a nested command");
            (outer, inner)
        });
        assert!(outer >= before);
        assert_eq!(inner, outer);
        assert!(took >= 5000, "{took}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now_ms() > outer, "unpinned once the command is done");
    }
}
