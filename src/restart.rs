//! Restart strategies: whether, and after how long, a failed job is restarted.
//!
//! - [`RestartStrategy`] is the configuration (`restart-strategy.type` and its options), with
//!   Flink's defaults: `none` without checkpointing, `exponential-delay` with it (Flink 1.19+).
//! - [`RestartTracker`] applies a strategy to one job's history of failures. The supervisor calls
//!   [`RestartTracker::on_failure`] when the job fails and gets a [`RestartDecision`]: restart
//!   after a delay, or give up (the job ends `FAILED`). It calls [`RestartTracker::on_running`]
//!   when the restarted job runs again, which starts the clock of the exponential strategy's
//!   reset threshold.
//!
//! Pure: time is a parameter (`now`, monotonic, arbitrary origin) and so is the random jitter
//! (`jitter_sample` in `[-1, 1]`), so tests replay exact sequences.
//!
//! Failures reported while a restart is already scheduled (several subtasks failing in the same
//! incident) are merged into that restart: they get the remaining delay and use no attempt, as
//! Flink's exponential-delay strategy does.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointConfig;

/// Flink's `restart-strategy.fixed-delay.attempts` default.
pub const DEFAULT_FIXED_DELAY_ATTEMPTS: u32 = 1;
/// Flink's `restart-strategy.fixed-delay.delay` default.
pub const DEFAULT_FIXED_DELAY_DELAY: Duration = Duration::from_secs(1);
/// Flink's `restart-strategy.exponential-delay.initial-backoff` default.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Flink's `restart-strategy.exponential-delay.max-backoff` default (1 min since Flink 1.19).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Flink's `restart-strategy.exponential-delay.backoff-multiplier` default (1.5 since 1.19).
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 1.5;
/// Flink's `restart-strategy.exponential-delay.reset-backoff-threshold` default.
pub const DEFAULT_RESET_BACKOFF_THRESHOLD: Duration = Duration::from_secs(3600);
/// Flink's `restart-strategy.exponential-delay.jitter-factor` default.
pub const DEFAULT_JITTER_FACTOR: f64 = 0.1;
/// Flink's `restart-strategy.exponential-delay.attempts-before-reset-backoff` default
/// ("infinite", `Integer.MAX_VALUE` in Flink).
pub const UNBOUNDED_ATTEMPTS: u32 = u32::MAX;

/// How a failed job is restarted (`restart-strategy.type`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RestartStrategy {
    /// Never restart: the first failure fails the job.
    None,
    /// Restart up to `attempts` times in total, waiting `delay` before each.
    FixedDelay { attempts: u32, delay: Duration },
    /// Restart with a delay that grows by `multiplier` after every failure, from
    /// `initial_backoff` up to `max_backoff`, randomized by ± `jitter_factor` of itself. After
    /// the job has run for `reset_backoff_threshold` without failing, the delay and the attempt
    /// count start over. More than `attempts_before_reset_backoff` restarts without such a reset
    /// fail the job.
    ExponentialDelay {
        initial_backoff: Duration,
        max_backoff: Duration,
        multiplier: f64,
        reset_backoff_threshold: Duration,
        jitter_factor: f64,
        attempts_before_reset_backoff: u32,
    },
}

impl RestartStrategy {
    /// `fixed-delay` with Flink's defaults: 1 attempt, 1 s delay.
    pub fn fixed_delay() -> Self {
        RestartStrategy::FixedDelay {
            attempts: DEFAULT_FIXED_DELAY_ATTEMPTS,
            delay: DEFAULT_FIXED_DELAY_DELAY,
        }
    }

    /// `exponential-delay` with Flink's (1.19+) defaults: 1 s doubling by 1.5 up to 1 min,
    /// jitter 0.1, reset after 1 h of running, unbounded attempts.
    pub fn exponential_delay() -> Self {
        RestartStrategy::ExponentialDelay {
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            multiplier: DEFAULT_BACKOFF_MULTIPLIER,
            reset_backoff_threshold: DEFAULT_RESET_BACKOFF_THRESHOLD,
            jitter_factor: DEFAULT_JITTER_FACTOR,
            attempts_before_reset_backoff: UNBOUNDED_ATTEMPTS,
        }
    }

    /// The strategy used when none is configured: `none` without checkpointing (a restart
    /// would lose all state), `exponential-delay` with it.
    pub fn default_for(checkpointing_enabled: bool) -> Self {
        if checkpointing_enabled {
            Self::exponential_delay()
        } else {
            RestartStrategy::None
        }
    }

    /// The strategy in force: `configured` when there is one, else
    /// [`RestartStrategy::default_for`] whether `checkpoint` takes periodic checkpoints. The one
    /// place this rule lives: the engine configuration and the job's configuration both use it.
    pub fn effective(configured: Option<&RestartStrategy>, checkpoint: &CheckpointConfig) -> Self {
        configured
            .cloned()
            .unwrap_or_else(|| Self::default_for(checkpoint.interval.is_some()))
    }

    /// The `restart-strategy.type` value naming this strategy.
    pub fn name(&self) -> &'static str {
        match self {
            RestartStrategy::None => "none",
            RestartStrategy::FixedDelay { .. } => "fixed-delay",
            RestartStrategy::ExponentialDelay { .. } => "exponential-delay",
        }
    }

    /// Checks every option as Flink does; the error names the option's key.
    pub fn validate(&self) -> Result<(), InvalidRestartStrategy> {
        let bad = |key, value: String, expected| {
            Err(InvalidRestartStrategy {
                key,
                value,
                expected,
            })
        };
        match *self {
            RestartStrategy::None | RestartStrategy::FixedDelay { .. } => Ok(()),
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_backoff_threshold,
                jitter_factor,
                attempts_before_reset_backoff,
            } => {
                if initial_backoff < Duration::from_millis(1) {
                    return bad(
                        "restart-strategy.exponential-delay.initial-backoff",
                        human(initial_backoff),
                        "at least 1 ms",
                    );
                }
                if max_backoff < initial_backoff {
                    return bad(
                        "restart-strategy.exponential-delay.max-backoff",
                        human(max_backoff),
                        "at least restart-strategy.exponential-delay.initial-backoff",
                    );
                }
                if !(multiplier > 1.0 && multiplier.is_finite()) {
                    return bad(
                        "restart-strategy.exponential-delay.backoff-multiplier",
                        multiplier.to_string(),
                        "a number greater than 1",
                    );
                }
                if reset_backoff_threshold < Duration::from_millis(1) {
                    return bad(
                        "restart-strategy.exponential-delay.reset-backoff-threshold",
                        human(reset_backoff_threshold),
                        "at least 1 ms",
                    );
                }
                if !(0.0..=1.0).contains(&jitter_factor) {
                    return bad(
                        "restart-strategy.exponential-delay.jitter-factor",
                        jitter_factor.to_string(),
                        "a number from 0 to 1",
                    );
                }
                if attempts_before_reset_backoff == 0 {
                    return bad(
                        "restart-strategy.exponential-delay.attempts-before-reset-backoff",
                        "0".into(),
                        "a positive number",
                    );
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for RestartStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartStrategy::None => f.write_str("none"),
            RestartStrategy::FixedDelay { attempts, delay } => write!(
                f,
                "fixed-delay ({attempts} attempts, {} delay)",
                human(*delay)
            ),
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                ..
            } => write!(
                f,
                "exponential-delay ({} x {multiplier} up to {})",
                human(*initial_backoff),
                human(*max_backoff)
            ),
        }
    }
}

/// A restart strategy option that cannot be used, named by its Flink key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value} for `{key}`: expected {expected}")]
pub struct InvalidRestartStrategy {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// What to do about a failure.
#[derive(Clone, Debug, PartialEq)]
pub enum RestartDecision {
    /// Restart the job from its latest checkpoint after `delay`.
    Restart { delay: Duration },
    /// Do not restart: the job ends `FAILED`. `reason` says why and what the user can change.
    GiveUp { reason: String },
}

/// Whether the job is waiting to be restarted or running again since a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No failure yet (or the job was not reported running since the last restart ran).
    Initial,
    /// A restart is scheduled for `at`; failures until then belong to the same incident.
    RestartScheduled { at: Duration },
    /// Reported running since `since`.
    Running { since: Duration },
}

/// Applies a [`RestartStrategy`] to one job's failures.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    /// Restarts counted against the limit (since the last backoff reset for exponential-delay).
    attempts: u32,
    /// Every restart decided, for metrics (Flink's `numRestarts`).
    total_restarts: u64,
    phase: Phase,
}

impl RestartTracker {
    /// A tracker with no failure seen yet.
    pub fn new(strategy: RestartStrategy) -> Self {
        Self {
            strategy,
            attempts: 0,
            total_restarts: 0,
            phase: Phase::Initial,
        }
    }

    /// The strategy being applied.
    pub fn strategy(&self) -> &RestartStrategy {
        &self.strategy
    }

    /// Restarts counted against the strategy's limit so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Every restart decided so far, merged failures not included (Flink's `numRestarts`).
    pub fn total_restarts(&self) -> u64 {
        self.total_restarts
    }

    /// The job failed at `now`. `jitter_sample` is a uniform random number in `[-1, 1]` (values
    /// outside are clamped); only exponential-delay uses it.
    pub fn on_failure(&mut self, now: Duration, jitter_sample: f64) -> RestartDecision {
        if let Phase::RestartScheduled { at } = self.phase {
            if now <= at {
                // Same incident: another subtask of the job that is already going down.
                return RestartDecision::Restart { delay: at - now };
            }
        }
        let delay = match self.strategy {
            RestartStrategy::None => {
                return RestartDecision::GiveUp {
                    reason: "restart strategy none does not restart a failed job; set \
                             restart-strategy.type to fixed-delay or exponential-delay (or \
                             enable checkpointing) to restart automatically"
                        .to_owned(),
                };
            }
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.attempts >= attempts {
                    return RestartDecision::GiveUp {
                        reason: format!(
                            "restart strategy fixed-delay gave up after {attempts} attempts: \
                             fix the cause of the failure, or raise \
                             restart-strategy.fixed-delay.attempts (now {attempts})"
                        ),
                    };
                }
                delay
            }
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_backoff_threshold,
                jitter_factor,
                attempts_before_reset_backoff,
            } => {
                let stable_since = match self.phase {
                    Phase::Initial => None,
                    Phase::RestartScheduled { at } => Some(at),
                    Phase::Running { since } => Some(since),
                };
                if stable_since.is_some_and(|s| now.saturating_sub(s) >= reset_backoff_threshold) {
                    self.attempts = 0;
                }
                if self.attempts >= attempts_before_reset_backoff {
                    return RestartDecision::GiveUp {
                        reason: format!(
                            "restart strategy exponential-delay gave up after \
                             {attempts_before_reset_backoff} attempts without running {} in a \
                             row: fix the cause of the failure, or raise \
                             restart-strategy.exponential-delay.attempts-before-reset-backoff \
                             (now {attempts_before_reset_backoff})",
                            human(reset_backoff_threshold)
                        ),
                    };
                }
                backoff(
                    initial_backoff,
                    max_backoff,
                    multiplier,
                    jitter_factor,
                    self.attempts,
                    jitter_sample,
                )
            }
        };
        self.attempts = self.attempts.saturating_add(1);
        self.total_restarts += 1;
        self.phase = Phase::RestartScheduled {
            at: now.saturating_add(delay),
        };
        RestartDecision::Restart { delay }
    }

    /// The restarted job is running again at `now`: the reset threshold counts from here.
    pub fn on_running(&mut self, now: Duration) {
        self.phase = Phase::Running { since: now };
    }
}

/// `initial * multiplier^attempt`, moved by `jitter_factor * sample` of itself, then kept within
/// `[initial, max]` (Flink's `ExponentialDelayRestartBackoffTimeStrategy`).
fn backoff(
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter_factor: f64,
    attempt: u32,
    sample: f64,
) -> Duration {
    let sample = if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0)
    };
    let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
    let base = initial.as_secs_f64() * multiplier.powi(exponent);
    let jittered = base + base * jitter_factor.clamp(0.0, 1.0) * sample;
    if !jittered.is_finite() || jittered >= max.as_secs_f64() {
        return max.max(initial);
    }
    Duration::from_secs_f64(jittered.max(0.0)).clamp(initial, max.max(initial))
}

/// A duration the way Flink's options write it: "1 h", "1 min", "20 s", "250 ms".
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        format!("{ms} ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{} h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn restart_delay(decision: RestartDecision) -> Duration {
        match decision {
            RestartDecision::Restart { delay } => delay,
            RestartDecision::GiveUp { reason } => panic!("gave up: {reason}"),
        }
    }

    fn exponential(jitter_factor: f64, attempts: u32) -> RestartStrategy {
        RestartStrategy::ExponentialDelay {
            initial_backoff: secs(1),
            max_backoff: secs(10),
            multiplier: 2.0,
            reset_backoff_threshold: secs(100),
            jitter_factor,
            attempts_before_reset_backoff: attempts,
        }
    }

    #[test]
    fn the_configured_strategy_wins_else_the_default_follows_checkpointing() {
        let off = CheckpointConfig::default();
        let on = CheckpointConfig::every(secs(10));
        assert_eq!(
            RestartStrategy::effective(None, &off),
            RestartStrategy::None
        );
        assert_eq!(
            RestartStrategy::effective(None, &on),
            RestartStrategy::exponential_delay()
        );
        let fixed = RestartStrategy::fixed_delay();
        assert_eq!(RestartStrategy::effective(Some(&fixed), &on), fixed);
        assert_eq!(
            RestartStrategy::effective(Some(&RestartStrategy::None), &on),
            RestartStrategy::None
        );
    }

    #[test]
    fn defaults_are_flinks() {
        assert_eq!(RestartStrategy::default_for(false), RestartStrategy::None);
        assert_eq!(
            RestartStrategy::default_for(true),
            RestartStrategy::ExponentialDelay {
                initial_backoff: secs(1),
                max_backoff: secs(60),
                multiplier: 1.5,
                reset_backoff_threshold: secs(3600),
                jitter_factor: 0.1,
                attempts_before_reset_backoff: u32::MAX,
            }
        );
        assert_eq!(
            RestartStrategy::fixed_delay(),
            RestartStrategy::FixedDelay {
                attempts: 1,
                delay: secs(1)
            }
        );
        assert!(RestartStrategy::exponential_delay().validate().is_ok());
        assert_eq!(
            RestartStrategy::exponential_delay().name(),
            "exponential-delay"
        );
    }

    #[test]
    fn none_gives_up_on_the_first_failure_and_says_what_to_set() {
        let mut tracker = RestartTracker::new(RestartStrategy::None);
        match tracker.on_failure(secs(5), 0.0) {
            RestartDecision::GiveUp { reason } => {
                assert!(reason.contains("restart-strategy.type"), "{reason}")
            }
            other => panic!("expected GiveUp, got {other:?}"),
        }
    }

    #[test]
    fn fixed_delay_restarts_attempts_times_then_gives_up() {
        let mut tracker = RestartTracker::new(RestartStrategy::FixedDelay {
            attempts: 3,
            delay: secs(10),
        });
        let mut now = secs(0);
        for _ in 0..3 {
            assert_eq!(restart_delay(tracker.on_failure(now, 1.0)), secs(10));
            now += secs(10);
            tracker.on_running(now);
            // Running for a long time does not reset fixed-delay's count (Flink).
            now += secs(100_000);
        }
        match tracker.on_failure(now, 0.0) {
            RestartDecision::GiveUp { reason } => {
                assert!(
                    reason.starts_with("restart strategy fixed-delay gave up after 3 attempts"),
                    "{reason}"
                );
                assert!(reason.contains("restart-strategy.fixed-delay.attempts"));
            }
            other => panic!("expected GiveUp, got {other:?}"),
        }
        assert_eq!(tracker.total_restarts(), 3);
    }

    #[test]
    fn failures_during_a_scheduled_restart_are_merged() {
        let mut tracker = RestartTracker::new(RestartStrategy::FixedDelay {
            attempts: 1,
            delay: secs(10),
        });
        assert_eq!(restart_delay(tracker.on_failure(secs(0), 0.0)), secs(10));
        // Another subtask reports its failure 4 s later: same restart, no attempt used.
        assert_eq!(restart_delay(tracker.on_failure(secs(4), 0.0)), secs(6));
        assert_eq!(tracker.attempts(), 1);
        tracker.on_running(secs(10));
        assert!(matches!(
            tracker.on_failure(secs(10), 0.0),
            RestartDecision::GiveUp { .. }
        ));
    }

    #[test]
    fn exponential_delay_grows_and_caps_without_jitter() {
        let mut tracker = RestartTracker::new(exponential(0.0, UNBOUNDED_ATTEMPTS));
        let mut now = secs(0);
        let mut delays = Vec::new();
        for _ in 0..6 {
            let delay = restart_delay(tracker.on_failure(now, 1.0));
            delays.push(delay.as_secs());
            now += delay;
            tracker.on_running(now);
            now += secs(1);
        }
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn exponential_jitter_moves_the_delay_by_the_sample() {
        for (sample, expected_ms) in [(1.0, 4400), (-1.0, 3600), (0.5, 4200), (7.0, 4400)] {
            let mut tracker = RestartTracker::new(exponential(0.1, UNBOUNDED_ATTEMPTS));
            let mut now = secs(0);
            for _ in 0..2 {
                now += restart_delay(tracker.on_failure(now, 0.0));
                tracker.on_running(now);
                now += secs(1);
            }
            // Third failure: base 4 s, jitter ± 0.4 s.
            let delay = restart_delay(tracker.on_failure(now, sample));
            assert_eq!(delay.as_millis(), expected_ms, "sample {sample}");
        }
        // Jitter never goes below the initial backoff nor above the maximum.
        let mut tracker = RestartTracker::new(exponential(1.0, UNBOUNDED_ATTEMPTS));
        assert_eq!(restart_delay(tracker.on_failure(secs(0), -1.0)), secs(1));
    }

    #[test]
    fn huge_attempt_counts_stay_at_the_maximum() {
        assert_eq!(
            backoff(secs(1), secs(60), 1.5, 1.0, u32::MAX, -1.0),
            secs(60)
        );
        assert_eq!(
            backoff(secs(1), secs(60), 1.5, 0.1, 5000, f64::NAN),
            secs(60)
        );
    }

    #[test]
    fn exponential_resets_after_running_past_the_threshold() {
        let mut tracker = RestartTracker::new(exponential(0.0, 2));
        assert_eq!(restart_delay(tracker.on_failure(secs(0), 0.0)), secs(1));
        tracker.on_running(secs(1));
        assert_eq!(restart_delay(tracker.on_failure(secs(50), 0.0)), secs(2));
        tracker.on_running(secs(52));
        // 99 s of running is below the 100 s threshold: the third attempt is refused.
        match tracker.on_failure(secs(151), 0.0) {
            RestartDecision::GiveUp { reason } => {
                assert!(reason.contains("gave up after 2 attempts"), "{reason}");
                assert!(reason.contains("attempts-before-reset-backoff"), "{reason}");
            }
            other => panic!("expected GiveUp, got {other:?}"),
        }
        // Had it run 100 s, the backoff and the count would have started over.
        let mut tracker = RestartTracker::new(exponential(0.0, 2));
        tracker.on_failure(secs(0), 0.0);
        tracker.on_running(secs(1));
        tracker.on_failure(secs(50), 0.0);
        tracker.on_running(secs(52));
        assert_eq!(restart_delay(tracker.on_failure(secs(152), 0.0)), secs(1));
        assert_eq!(tracker.attempts(), 1);
    }

    #[test]
    fn validation_names_the_key() {
        let strategy = RestartStrategy::ExponentialDelay {
            initial_backoff: secs(1),
            max_backoff: secs(10),
            multiplier: 1.0,
            reset_backoff_threshold: secs(100),
            jitter_factor: 0.1,
            attempts_before_reset_backoff: 3,
        };
        let err = strategy.validate().unwrap_err();
        assert_eq!(
            err.key,
            "restart-strategy.exponential-delay.backoff-multiplier"
        );
        assert!(err.to_string().contains("greater than 1"));
        let strategy = RestartStrategy::ExponentialDelay {
            initial_backoff: secs(120),
            max_backoff: secs(60),
            multiplier: 2.0,
            reset_backoff_threshold: secs(100),
            jitter_factor: 0.1,
            attempts_before_reset_backoff: 3,
        };
        let err = strategy.validate().unwrap_err();
        assert_eq!(err.key, "restart-strategy.exponential-delay.max-backoff");
        assert!(err.to_string().contains("1 min"), "{err}");
    }

    #[test]
    fn human_durations_use_flinks_notation() {
        assert_eq!(human(secs(3600)), "1 h");
        assert_eq!(human(secs(120)), "2 min");
        assert_eq!(human(secs(20)), "20 s");
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
    }
}
