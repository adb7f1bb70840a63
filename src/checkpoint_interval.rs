//! How often the memory engines are checkpointed. A checkpoint costs work
//! now; the log written since the last one costs replay time after a
//! crash. The interval that minimizes the sum is
//! `T = sqrt(2 * C_checkpoint / (λ * C_recovery))`: `C_checkpoint` the
//! seconds a checkpoint takes here, `C_recovery` the seconds of replay each
//! second of writing adds (log bytes written per second over replay bytes
//! per second), `λ` the crashes expected per second (one per
//! `checkpoint-mtbf-hours`, the mean time between failures). The result
//! is kept within
//! `checkpoint-min-interval` and `checkpoint-max-interval` (seconds).

use std::time::Duration;

/// Replay speed assumed until a restart has measured one (log bytes per
/// second): a restart replays at least this fast on a small machine.
pub const ASSUMED_REPLAY_BYTES_PER_SEC: f64 = 100e6;

/// What the interval is computed from, measured on this node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Costs {
    /// Seconds the last checkpoint took; None before the first.
    pub checkpoint_secs: Option<f64>,
    /// Log bytes written per second lately.
    pub log_bytes_per_sec: f64,
    /// Log bytes replayed per second at startup.
    pub replay_bytes_per_sec: f64,
    /// Mean seconds between crashes (1/λ).
    pub mtbf_secs: f64,
}

/// Why the interval in force is what it is (INFO shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The formula's value, within the bounds.
    Optimal,
    /// The formula asked for less than `checkpoint-min-interval`.
    MinBound,
    /// The formula asked for more than `checkpoint-max-interval`.
    MaxBound,
    /// No checkpoint has been measured yet: the first comes early.
    Unmeasured,
    /// Nothing is being written: nothing to replay, so the longest
    /// interval.
    Idle,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Optimal => "optimal",
            Reason::MinBound => "min-bound",
            Reason::MaxBound => "max-bound",
            Reason::Unmeasured => "unmeasured",
            Reason::Idle => "idle",
        }
    }
}

/// The interval in force for `costs`, within `min..=max`.
pub fn interval(costs: &Costs, min: Duration, max: Duration) -> (Duration, Reason) {
    let max = max.max(min);
    let Some(checkpoint_secs) = costs.checkpoint_secs else {
        return (min, Reason::Unmeasured);
    };
    let crash_rate = 1.0 / costs.mtbf_secs.max(1.0);
    let recovery = costs.log_bytes_per_sec / costs.replay_bytes_per_sec.max(1.0);
    if recovery <= 0.0 {
        return (max, Reason::Idle);
    }
    let optimal = (2.0 * checkpoint_secs / (crash_rate * recovery)).sqrt();
    if optimal < min.as_secs_f64() {
        (min, Reason::MinBound)
    } else if optimal > max.as_secs_f64() {
        (max, Reason::MaxBound)
    } else {
        (Duration::from_secs_f64(optimal), Reason::Optimal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(3600);

    fn costs(checkpoint_secs: f64, log_bytes_per_sec: f64, crashes_per_day: f64) -> Costs {
        Costs {
            checkpoint_secs: Some(checkpoint_secs),
            log_bytes_per_sec,
            replay_bytes_per_sec: 100e6,
            mtbf_secs: 86_400.0 / crashes_per_day,
        }
    }

    #[test]
    fn the_interval_minimizes_checkpoint_work_plus_expected_replay() {
        // 0.5 s checkpoints, 1 MB/s of log replayed at 100 MB/s, ten
        // crashes a day: sqrt(2 * 0.5 / (10/86400 * 0.01)) = 929.5 s.
        let (t, why) = interval(&costs(0.5, 1e6, 10.0), MIN, MAX);
        assert_eq!(why, Reason::Optimal);
        assert!((t.as_secs_f64() - 929.5).abs() < 0.5, "{t:?}");
        // The total cost per second, C/T + λ * C_rec * T / 2, is lowest there.
        let total = |t: f64| 0.5 / t + 10.0 / 86400.0 * 0.01 * t / 2.0;
        let best = t.as_secs_f64();
        assert!(total(best) < total(best * 0.8) && total(best) < total(best * 1.25));
    }

    #[test]
    fn costlier_checkpoints_are_rarer_and_more_writing_or_crashing_makes_them_more_frequent() {
        let base = interval(&costs(0.5, 1e6, 10.0), MIN, MAX).0;
        assert!(interval(&costs(2.0, 1e6, 10.0), MIN, MAX).0 > base);
        assert!(interval(&costs(0.5, 4e6, 10.0), MIN, MAX).0 < base);
        assert!(interval(&costs(0.5, 1e6, 40.0), MIN, MAX).0 < base);
    }

    #[test]
    fn the_bounds_hold_and_say_so() {
        assert_eq!(interval(&costs(0.001, 500e6, 1000.0), MIN, MAX), (MIN, Reason::MinBound));
        assert_eq!(interval(&costs(5.0, 1e3, 1.0), MIN, MAX), (MAX, Reason::MaxBound));
        assert_eq!(interval(&costs(0.5, 0.0, 1.0), MIN, MAX), (MAX, Reason::Idle));
        let unmeasured = Costs { checkpoint_secs: None, ..costs(0.5, 1e6, 1.0) };
        assert_eq!(interval(&unmeasured, MIN, MAX), (MIN, Reason::Unmeasured));
        // A max below the min is the min.
        assert_eq!(interval(&costs(5.0, 1e3, 1.0), MIN, Duration::from_secs(1)), (MIN, Reason::MaxBound));
    }
}
