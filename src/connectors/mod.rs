//! Built-in sources and sinks.
//!
//! - [`sequence::SequenceSource`]: numbers `from..to`, split over subtasks, replayable, with an
//!   optional rate limit.
//! - [`file_lines::FileLinesSource`]: the lines of a text file, replayable by byte offset.
//! - [`file_sink::ExactlyOnceFileSink`]: JSON lines in files that become visible only when a
//!   checkpoint completes (in-progress → pending → committed).
//! - [`print::PrintSink`], [`print::DiscardSink`]: for demos and benchmarks.

pub mod file_lines;
pub mod file_sink;
pub mod print;
pub mod rate;
pub mod sequence;
