//! The process-wide runtime for checkpoint I/O.
//!
//! Uploading a snapshot (and, with deferred snapshots, encoding it) must not compete with record
//! processing on a subtask's arbiter thread, where it would queue behind every batch. It runs on
//! a small multi-threaded tokio runtime of its own, shared by every job in the process.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads for checkpoint I/O.
const IO_THREADS: usize = 2;

/// The I/O runtime's handle, started on first use.
pub(crate) fn handle() -> Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(IO_THREADS)
                .thread_name("weir-io")
                .enable_all()
                .build()
                .expect("the checkpoint I/O runtime starts")
        })
        .handle()
        .clone()
}
