//! Metrics: what every subtask counts while it runs, and how `/metrics` shows it.
//!
//! - [`SubtaskMetrics`] (`subtask.rs`): one subtask's shared atomic counters (records in and
//!   out, busy and back-pressured time), created at deploy through [`registry`] and handed to
//!   the subtask's `Task`, which adds to them once per batch;
//! - [`RateMeter`] (`rate.rs`): records per second over a sliding window, computed when read;
//! - [`exposition`]: the Prometheus/OpenMetrics text of `/metrics` — the subtask counters plus
//!   what the REST layer knows of each job (status, uptime, restarts, checkpoint statistics),
//!   encoded by `prometheus-client`.
//!
//! The registry is process-wide, like a Prometheus client's default registry: subtasks of every
//! job in this process register there, keyed by job id, operator uid and subtask index, so a
//! restarted subtask keeps counting where its previous attempt stopped.

pub mod exposition;
pub mod rate;
pub mod subtask;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use weir::ids::JobId;

pub use rate::RateMeter;
pub use subtask::{SubtaskMetrics, SubtaskSnapshot};

/// Which subtask: the job, the uid of the chain's head operator, the subtask index.
pub type SubtaskKey = (JobId, String, u32);

/// Every subtask's counters in this process.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    subtasks: Mutex<BTreeMap<SubtaskKey, Arc<SubtaskMetrics>>>,
}

impl MetricsRegistry {
    /// The counters of subtask `index` of `uid` in `job`, created the first time.
    pub fn subtask(&self, job: JobId, uid: &str, index: u32) -> Arc<SubtaskMetrics> {
        self.subtasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((job, uid.to_owned(), index))
            .or_default()
            .clone()
    }

    /// Every subtask of `job` now: (head uid, subtask index, counters), by uid and index.
    pub fn job(&self, job: JobId) -> Vec<(String, u32, SubtaskSnapshot)> {
        let subtasks: Vec<(String, u32, Arc<SubtaskMetrics>)> = self
            .subtasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .range((job, String::new(), 0)..)
            .take_while(|((j, _, _), _)| *j == job)
            .map(|((_, uid, i), m)| (uid.clone(), *i, m.clone()))
            .collect();
        subtasks
            .into_iter()
            .map(|(uid, i, m)| (uid, i, m.snapshot()))
            .collect()
    }
}

/// The process-wide registry.
pub fn registry() -> &'static MetricsRegistry {
    static REGISTRY: OnceLock<MetricsRegistry> = OnceLock::new();
    REGISTRY.get_or_init(MetricsRegistry::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtask_is_registered_once_and_listed_under_its_job_only() {
        let r = MetricsRegistry::default();
        let (a, b) = (JobId::new(), JobId::new());
        r.subtask(a, "src", 0).received(5);
        r.subtask(a, "src", 0).received(5);
        r.subtask(a, "src", 1).received(1);
        r.subtask(b, "src", 0).received(100);
        let listed = r.job(a);
        assert_eq!(listed.len(), 2);
        assert_eq!((listed[0].0.as_str(), listed[0].1), ("src", 0));
        assert_eq!(
            listed[0].2.records_in, 10,
            "a second attempt adds to the same counters"
        );
        assert_eq!(r.job(b)[0].2.records_in, 100);
    }
}
