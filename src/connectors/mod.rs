//! Built-in sources and sinks.
//!
//! - [`sequence::SequenceSource`]: numbers `from..to`, split over subtasks, replayable, with an
//!   optional rate limit.
//! - [`file_lines::FileLinesSource`]: the lines of a text file, replayable by byte offset.
//! - [`file_sink::ExactlyOnceFileSink`]: JSON lines in files that become visible only when a
//!   checkpoint completes (in-progress → pending → committed).
//! - [`print::PrintSink`], [`print::DiscardSink`]: for demos and benchmarks.
//! - [`kafka`]: a replayable Kafka source and an at-least-once Kafka sink.

pub mod file_lines;
pub mod file_sink;
pub mod kafka;
pub mod print;
pub mod rate;
pub mod sequence;
