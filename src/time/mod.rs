//! Event time: watermarks and how a subtask combines the watermarks of its inputs.
//!
//! - [`Watermark`]: "no record with a timestamp at or below this will follow" — milliseconds of
//!   event time, carried in-band on channels like barriers (the runtime's `Payload::Watermark`),
//!   so a watermark never overtakes the records its sender emitted before it.
//! - [`WatermarkEvent`]: what travels: a watermark, or the sender's declaration that it is idle
//!   (it emits nothing for now and must not hold its receivers' watermark back).
//! - [`WatermarkStrategy`]: how a source assigns timestamps (a [`TimestampFn`]) and generates
//!   watermarks (bounded out-of-orderness or monotonous, with idleness detection);
//!   [`SourceWatermarks`] is one source subtask's generation as a pure state machine, fed the
//!   largest timestamp of each polled batch and the time, answering what to emit after it;
//!   [`SourceTime`] wraps it for the source vertex, with the assigner and the watermark's place
//!   in the source's operator state.
//! - [`InputWatermarks`]: a subtask's input side of event time, a pure state machine: per input
//!   channel the newest watermark and whether it is active, idle or ended; the combined
//!   watermark is the minimum over the active channels, handed out only when it advances (or
//!   when every remaining input went idle).
//!
//! - [`TimerQueue`]: a keyed subtask's event-time and processing-time timers, due in
//!   timestamp order when the watermark or the clock reaches them, moved per key group
//!   ([`TimerGroup`]) like keyed state. The keyed process API and the snapshot wiring are not
//!   built yet.
//!
//! Data flow: sources assign timestamps and generate watermarks; every subtask's
//! [`crate::gate::InputGate`] feeds the watermark elements of its channels into its
//! [`InputWatermarks`], in arrival order relative to batches (a blocked channel's watermark is
//! held with its batches), and hands out [`crate::gate::GateAction::Watermark`] when the
//! combined one moves; the task then forwards it on every output channel, after the records
//! emitted before it.

mod assigner;
mod input;
mod source;
mod strategy;
mod timers;
mod watermark;

pub use assigner::{SourceTime, SOURCE_WATERMARK_STATE};
pub use input::InputWatermarks;
pub use source::{SourceWatermarks, WatermarkPacer};
pub use strategy::{TimestampFn, WatermarkGenerator, WatermarkStrategy};
pub use timers::{TimeDomain, Timer, TimerGroup, TimerQueue};
pub use watermark::{Watermark, WatermarkEvent};
