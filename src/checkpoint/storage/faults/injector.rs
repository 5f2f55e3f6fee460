//! [`FaultInjector`]: the armed rules, the decisions, and the count of what was injected.
//!
//! The fault layer asks `FaultInjector::decide` about every operation it sees (its kind and
//! path); each armed rule of that kind whose path matches counts the operation and, if its
//! trigger fires, contributes: a [`Fault::Latency`] adds a delay (the longest wins), any other
//! fault is the outcome (the first armed rule wins). Tests arm and disarm rules at any time;
//! a rule counts operations from when it was armed.
//!
//! Probabilistic triggers are decided by a counter-based SplitMix64 draw of (seed, rule, n):
//! the same seed, rules armed in the same order and the same operations in the same order
//! give the same faults, and one rule's draws do not depend on what other rules see.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::layer::FaultLayer;
use super::plan::{Fault, FaultKind, FaultPlan, FaultRule, OpKind};
use super::stats::FaultStats;

/// Identifies an armed rule, to disarm it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(u64);

/// Decides which operations get which faults, and counts what was injected. Shared (in an
/// `Arc`) by the [`FaultLayer`]s wrapping the storage and the test that arms it.
#[derive(Debug, Default)]
pub struct FaultInjector {
    seed: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Armed>,
    next_id: u64,
    injected: FaultStats,
}

#[derive(Debug)]
struct Armed {
    id: RuleId,
    rule: FaultRule,
    /// Operations matched since the rule was armed.
    matched: u64,
}

/// What the layer does to one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Decision {
    /// Wait this long first.
    pub(super) delay: Option<Duration>,
    /// Then fail or tear instead of going ahead (never a `Latency`).
    pub(super) outcome: Option<Fault>,
}

impl FaultInjector {
    /// An injector with the plan's seed and its rules armed.
    pub fn new(plan: FaultPlan) -> Self {
        let injector = Self {
            seed: plan.seed,
            state: Mutex::default(),
        };
        for rule in plan.rules {
            injector.arm(rule);
        }
        injector
    }

    /// The seed of the probabilistic rules.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Arms `rule` from now on; it counts matching operations from here.
    pub fn arm(&self, rule: FaultRule) -> RuleId {
        let mut state = self.lock();
        let id = RuleId(state.next_id);
        state.next_id += 1;
        state.rules.push(Armed {
            id,
            rule,
            matched: 0,
        });
        id
    }

    /// Disarms a rule; `false` when it was not armed.
    pub fn disarm(&self, id: RuleId) -> bool {
        let mut state = self.lock();
        let before = state.rules.len();
        state.rules.retain(|a| a.id != id);
        state.rules.len() != before
    }

    /// Disarms every rule: from now on operations go through untouched. Counts are kept.
    pub fn disarm_all(&self) {
        self.lock().rules.clear();
    }

    /// How many rules are armed.
    pub fn armed(&self) -> usize {
        self.lock().rules.len()
    }

    /// The faults injected so far, by kind.
    pub fn stats(&self) -> FaultStats {
        self.lock().injected
    }

    /// A layer injecting this injector's faults into any opendal operator.
    pub fn layer(self: &Arc<Self>) -> FaultLayer {
        FaultLayer::new(Arc::clone(self))
    }

    /// Counts and decides one operation of kind `op` on `path`.
    pub(super) fn decide(&self, op: OpKind, path: &str) -> Decision {
        let seed = self.seed;
        let mut state = self.lock();
        let mut decision = Decision::default();
        for armed in state.rules.iter_mut() {
            if armed.rule.fault.op() != op || !armed.rule.paths.matches(path) {
                continue;
            }
            armed.matched += 1;
            let (id, n) = (armed.id.0, armed.matched);
            if !armed.rule.trigger.fires(n, || unit_draw(seed, id, n)) {
                continue;
            }
            match armed.rule.fault {
                Fault::Latency { delay, .. } => {
                    decision.delay = decision.delay.max(Some(delay));
                }
                fault => {
                    decision.outcome.get_or_insert(fault);
                }
            }
        }
        decision
    }

    /// Counts one injected fault.
    pub(super) fn record(&self, kind: FaultKind) {
        self.lock().injected.record(kind);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every other test's storage down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A uniform draw in `[0, 1)` for the `n`-th operation matched by rule `rule`.
fn unit_draw(seed: u64, rule: u64, n: u64) -> f64 {
    let bits = splitmix64(splitmix64(splitmix64(seed) ^ rule) ^ n);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64 (Steele, Lea and Flood): one step of a tiny, well-mixed 64-bit generator.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(injector: &FaultInjector, ops: usize) -> Vec<bool> {
        (0..ops)
            .map(|i| {
                let path = format!("job/chk-{i}/state");
                injector.decide(OpKind::Write, &path).outcome.is_some()
            })
            .collect()
    }

    #[test]
    fn probabilistic_rules_are_reproducible_from_the_seed() {
        let plan = |seed| FaultPlan::new(seed).with(FaultRule::write_error().with_probability(0.3));
        let a = outcomes(&FaultInjector::new(plan(7)), 2000);
        let b = outcomes(&FaultInjector::new(plan(7)), 2000);
        let c = outcomes(&FaultInjector::new(plan(8)), 2000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let hits = a.iter().filter(|&&x| x).count();
        assert!((500..700).contains(&hits), "{hits} of 2000 at p = 0.3");

        // Another rule armed first does not change this rule's draws.
        let other = FaultInjector::new(plan(7));
        other.arm(FaultRule::read_error().with_probability(0.5));
        assert_eq!(outcomes(&other, 2000), a);

        let never = FaultPlan::new(1).with(FaultRule::disk_full().with_probability(0.0));
        assert!(!outcomes(&FaultInjector::new(never), 500).contains(&true));
        let always = FaultPlan::new(1).with(FaultRule::disk_full().with_probability(1.0));
        assert!(!outcomes(&FaultInjector::new(always), 500).contains(&false));
    }

    #[test]
    fn rules_match_their_operation_and_paths_and_count_from_when_armed() {
        let injector = FaultInjector::default();
        let path = "root/job/chk-5/x";
        assert_eq!(injector.decide(OpKind::Write, path), Decision::default());

        let third = injector.arm(FaultRule::partial_write().containing("chk-5").nth(3));
        let hits: Vec<bool> = (0..5)
            .map(|_| injector.decide(OpKind::Write, path).outcome.is_some())
            .collect();
        assert_eq!(hits, vec![false, false, true, false, false]);
        // Other operations and other paths are not counted.
        assert!(injector.decide(OpKind::Read, path).outcome.is_none());
        assert!(injector
            .decide(OpKind::Write, "root/job/chk-6/x")
            .outcome
            .is_none());
        assert!(injector.disarm(third));
        assert!(!injector.disarm(third));

        // Re-armed, it counts from 1 again.
        injector.arm(FaultRule::partial_write().containing("chk-5").nth(2));
        assert!(injector.decide(OpKind::Write, path).outcome.is_none());
        assert_eq!(
            injector.decide(OpKind::Write, path).outcome,
            Some(Fault::PartialWrite)
        );
    }

    #[test]
    fn the_first_outcome_wins_and_the_longest_delay() {
        let injector = FaultInjector::default();
        let ms = Duration::from_millis;
        injector.arm(FaultRule::latency(OpKind::Write, ms(5)));
        injector.arm(FaultRule::disk_full().in_dir("chk-1"));
        injector.arm(FaultRule::write_error());
        injector.arm(FaultRule::latency(OpKind::Write, ms(9)));
        injector.arm(FaultRule::latency(OpKind::Read, ms(50)));
        assert_eq!(
            injector.decide(OpKind::Write, "j/chk-1/a"),
            Decision {
                delay: Some(ms(9)),
                outcome: Some(Fault::DiskFull)
            }
        );
        assert_eq!(
            injector.decide(OpKind::Write, "j/chk-2/a").outcome,
            Some(Fault::WriteError)
        );
        assert_eq!(injector.armed(), 5);
        injector.disarm_all();
        assert_eq!(injector.armed(), 0);
        assert_eq!(
            injector.decide(OpKind::Write, "j/chk-1/a"),
            Decision::default()
        );
        // Deciding is not injecting: nothing is counted until the layer applies it.
        assert_eq!(injector.stats().total(), 0);
    }
}
