//! User code runs under `catch_unwind`: an error or a panic fails the subtask (reported to the
//! job manager), never the arbiter thread.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use weir::chain::Chain;
use weir::failure::FailureCause;
use weir::operator::OperatorError;
use weir::partition::OutBatch;

use super::Task;

impl Task {
    /// Runs user code on the chain; an error or a panic fails the subtask and yields `None`,
    /// and so does a subtask that has failed already.
    pub(super) fn guard<R>(
        &mut self,
        f: impl FnOnce(&mut Chain, &mut Vec<OutBatch>) -> Result<R, OperatorError>,
    ) -> Option<R> {
        if !self.lifecycle.is_live() {
            return None;
        }
        let chain = &mut self.setup.chain;
        let ready = &mut self.ready;
        match catch_unwind(AssertUnwindSafe(|| f(chain, ready))) {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                self.fail(error_chain(&e), e.cause());
                None
            }
            Err(panic) => {
                let message = format!("panicked: {}", panic_message(panic.as_ref()));
                self.fail(message, FailureCause::Recoverable);
                None
            }
        }
    }
}

/// The error and its sources, `: `-separated.
fn error_chain(e: &OperatorError) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
