//! Checkpoint events from the runtime's `tracing` output, timestamped as they happen.
//!
//! Until the job manager exposes per-checkpoint statistics, this is how the harness sees a
//! checkpoint from outside. It records, per job id:
//!
//! - `triggering checkpoint` (the job's checkpoint lifecycle, info): `checkpoint_id`, `end_of_input`;
//! - `snapshot taken` (subtask, debug): `uid`, `subtask`, `checkpoint_id`, `sync_micros` — the
//!   time the subtask's stream was stopped for the synchronous part;
//! - `checkpoint complete` (the job's checkpoint lifecycle, info): `checkpoint_id`, `state_size` (bytes);
//! - `checkpoint aborted` (warn): `checkpoint_id`.
//!
//! [`install`] sets a global subscriber once (only these targets are enabled, so nothing else
//! pays for it); warnings and errors are echoed to stderr. [`take`] hands out one job's events.
//! A renamed message or field shows up as "no checkpoint events" in the smoke test.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One recorded event.
#[derive(Clone, Debug)]
pub struct Captured {
    pub at: Instant,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Trigger {
        id: u64,
        end_of_input: bool,
    },
    Snapshot {
        id: u64,
        uid: String,
        subtask: u64,
        sync_micros: u64,
    },
    Complete {
        id: u64,
        state_size: u64,
    },
    Aborted {
        id: u64,
    },
}

static EVENTS: OnceLock<Mutex<HashMap<String, Vec<Captured>>>> = OnceLock::new();

fn events() -> &'static Mutex<HashMap<String, Vec<Captured>>> {
    EVENTS.get_or_init(Default::default)
}

/// Installs the capturing subscriber (once per process; later calls do nothing).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer);
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            eprintln!("weir bench: a tracing subscriber is already set; checkpoint events will be missing");
        }
    });
}

/// A copy of the events of job `job_id` recorded so far.
pub fn peek(job_id: &str) -> Vec<Captured> {
    events()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(job_id)
        .cloned()
        .unwrap_or_default()
}

/// The events of job `job_id` recorded so far (removed from the store).
pub fn take(job_id: &str) -> Vec<Captured> {
    events()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(job_id)
        .unwrap_or_default()
}

struct CaptureLayer;

fn wanted(m: &Metadata<'_>) -> bool {
    m.is_event()
        && (*m.level() <= Level::WARN
            || ((m.target().starts_with("weir_actors")
                || m.target().starts_with("weir::checkpoint::lifecycle"))
                && *m.level() <= Level::DEBUG))
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        if wanted(m) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, m: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(m)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let at = Instant::now();
        let mut f = Fields::default();
        event.record(&mut f);
        if *event.metadata().level() <= Level::WARN {
            let rest: Vec<String> = f.all.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!(
                "[{}] {} {}",
                event.metadata().level(),
                f.str("message"),
                rest.join(" ")
            );
        }
        let id = f.u64("checkpoint_id");
        let kind = match (f.str("message"), id) {
            ("triggering checkpoint", Some(id)) => EventKind::Trigger {
                id,
                end_of_input: f.str("end_of_input") == "true",
            },
            ("snapshot taken", Some(id)) => EventKind::Snapshot {
                id,
                uid: f.str("uid").to_string(),
                subtask: f.u64("subtask").unwrap_or(0),
                sync_micros: f.u64("sync_micros").unwrap_or(0),
            },
            ("checkpoint complete", Some(id)) => EventKind::Complete {
                id,
                state_size: f.u64("state_size").unwrap_or(0),
            },
            ("checkpoint aborted", Some(id)) => EventKind::Aborted { id },
            _ => return,
        };
        let job = f.str("job_id").to_string();
        events()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job)
            .or_default()
            .push(Captured { at, kind });
    }
}

/// An event's fields as text.
#[derive(Default)]
struct Fields {
    all: BTreeMap<&'static str, String>,
}

impl Fields {
    fn str(&self, name: &str) -> &str {
        self.all.get(name).map_or("", String::as_str)
    }

    fn u64(&self, name: &str) -> Option<u64> {
        self.all.get(name).and_then(|v| v.parse().ok())
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.all.insert(field.name(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.all.insert(field.name(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.all.insert(field.name(), value.to_string());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.all.insert(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.all.insert(field.name(), format!("{value:?}"));
    }
}

/// One completed checkpoint as seen from outside.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSample {
    pub id: u64,
    /// Trigger to completion (`_metadata` written), milliseconds.
    pub end_to_end_ms: f64,
    /// The longest synchronous pause of any subtask, milliseconds.
    pub max_sync_ms: f64,
    /// The keyed operator's longest synchronous pause, milliseconds.
    pub keyed_sync_ms: f64,
    /// Trigger to the last subtask's snapshot (barrier travel and alignment), milliseconds.
    pub barrier_delay_ms: f64,
    /// Bytes of state in the checkpoint (files and inline).
    pub bytes: u64,
    /// The longest exactly-once alignment (first to last barrier) of any subtask, from the job
    /// manager's checkpoint statistics, milliseconds (`None` once out of its history).
    pub alignment_ms: Option<f64>,
    /// Trigger to the keyed operator's last acknowledgement (its state written), and to the
    /// last acknowledgement of any subtask, from the checkpoint statistics (ms resolution).
    #[serde(default)]
    pub keyed_ack_ms: Option<f64>,
    #[serde(default)]
    pub last_ack_ms: Option<f64>,
    /// Whether it was unaligned and the in-flight bytes it persisted, from the statistics.
    #[serde(default)]
    pub unaligned: Option<bool>,
    #[serde(default)]
    pub persisted_bytes: Option<u64>,
    /// When it was triggered, relative to the caller's origin (seconds).
    pub triggered_at_s: f64,
}

/// The completed periodic checkpoints among `events` (the final checkpoint of a bounded job is
/// left out), in id order. `keyed_uid` names the keyed operator.
pub fn samples(events: &[Captured], keyed_uid: &str, origin: Instant) -> Vec<CheckpointSample> {
    #[derive(Default)]
    struct Acc {
        trigger: Option<Instant>,
        last_input: bool,
        complete: Option<(Instant, u64)>,
        max_sync: u64,
        keyed_sync: u64,
        last_snapshot: Option<Instant>,
    }
    let mut by_id: BTreeMap<u64, Acc> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::Trigger { id, end_of_input } => {
                let a = by_id.entry(*id).or_default();
                a.trigger = Some(e.at);
                a.last_input = *end_of_input;
            }
            EventKind::Snapshot {
                id,
                uid,
                sync_micros,
                ..
            } => {
                let a = by_id.entry(*id).or_default();
                a.max_sync = a.max_sync.max(*sync_micros);
                if uid == keyed_uid {
                    a.keyed_sync = a.keyed_sync.max(*sync_micros);
                }
                a.last_snapshot = Some(a.last_snapshot.map_or(e.at, |t| t.max(e.at)));
            }
            EventKind::Complete { id, state_size } => {
                by_id.entry(*id).or_default().complete = Some((e.at, *state_size));
            }
            EventKind::Aborted { .. } => {}
        }
    }
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1e3;
    by_id
        .into_iter()
        .filter_map(|(id, a)| {
            let trigger = a.trigger?;
            let (done, bytes) = a.complete?;
            (!a.last_input).then(|| CheckpointSample {
                id,
                end_to_end_ms: ms(trigger, done),
                max_sync_ms: a.max_sync as f64 / 1e3,
                keyed_sync_ms: a.keyed_sync as f64 / 1e3,
                barrier_delay_ms: a.last_snapshot.map_or(0.0, |s| ms(trigger, s)),
                bytes,
                alignment_ms: None,
                keyed_ack_ms: None,
                last_ack_ms: None,
                unaligned: None,
                persisted_bytes: None,
                triggered_at_s: trigger.saturating_duration_since(origin).as_secs_f64(),
            })
        })
        .collect()
}

/// How many checkpoints of `events` were aborted.
pub fn aborted(events: &[Captured]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Aborted { .. }))
        .count()
}
