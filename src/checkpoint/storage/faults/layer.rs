//! [`FaultLayer`]: an opendal layer that wraps any service and injects a [`FaultInjector`]'s
//! faults into it.
//!
//! opendal 0.59 composes an operator from a stack of services: a [`Layer`] receives the stack
//! so far ([`Servicer`]) and returns it wrapped. [`FaultService`] forwards every operation to
//! the service it wraps, first asking the injector about each write, read, delete, list, stat
//! and rename in its scope. A decision made when an operation starts is carried out by the
//! wrappers of the streaming parts: [`FaultWriter`] (fails, or tears: stores half the bytes
//! and reports success), [`FaultReader`], [`FaultLister`] and [`FaultDeleter`] (one decision
//! per deleted path). Delays are slept on the tokio timer before the operation goes ahead.
//!
//! An injected error is an opendal `Unexpected` error whose message starts with
//! `injected fault:` ([`is_injected`]) and carries the path as context; a failed write or
//! delete leaves the path as it was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opendal::raw::{
    oio, Layer, OpCompose, OpCopy, OpCreateDir, OpDelete, OpList, OpPresign, OpRead, OpRename,
    OpRestore, OpStat, OpWrite, RpCreateDir, RpPresign, RpRead, RpRename, RpRestore, RpStat,
    Service, ServiceInfo, Servicer,
};
use opendal::{
    Buffer, BytesRange, Capability, Error, ErrorKind, Metadata, OperationContext, Result,
};

use super::injector::{Decision, FaultInjector};
use super::plan::{Fault, FaultKind, OpKind};

/// The start of every injected error's message.
const INJECTED: &str = "injected fault:";

/// Whether `err` was injected by a [`FaultLayer`] (rather than raised by the storage).
pub fn is_injected(err: &Error) -> bool {
    err.message().starts_with(INJECTED)
}

/// The error an injected `fault` returns for `path`.
fn injected_error(fault: Fault, path: &str) -> Error {
    let (what, temporary) = match fault.kind() {
        FaultKind::WriteError => ("write error", true),
        // opendal has no "storage full" kind: `Unexpected`, permanent, and a message that says so.
        FaultKind::DiskFull => ("no space left on device (disk full)", false),
        FaultKind::ReadError => ("read error", true),
        FaultKind::DeleteError => ("delete error", true),
        FaultKind::ListError => ("list error", true),
        // Never errors; named for completeness.
        FaultKind::PartialWrite => ("partial write", false),
        FaultKind::Latency => ("latency", false),
    };
    let err =
        Error::new(ErrorKind::Unexpected, format!("{INJECTED} {what}")).with_context("path", path);
    if temporary {
        err.set_temporary()
    } else {
        err.set_permanent()
    }
}

/// Which paths a layer injects faults into: all, or those under a key prefix.
#[derive(Clone, Debug, Default)]
struct Scope(Option<Arc<str>>);

impl Scope {
    fn contains(&self, path: &str) -> bool {
        match self.0.as_deref() {
            None | Some("") => true,
            Some(prefix) => path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// Injects the faults of a [`FaultInjector`] into the operator it is applied to
/// (`operator.layer(FaultLayer::new(injector))`). A testing tool.
#[derive(Clone, Debug)]
pub struct FaultLayer {
    injector: Arc<FaultInjector>,
    scope: Scope,
}

impl FaultLayer {
    /// Faults on every path of the operator.
    pub fn new(injector: Arc<FaultInjector>) -> Self {
        Self {
            injector,
            scope: Scope::default(),
        }
    }

    /// Faults only on `prefix` (a path of the operator, without leading `/`) and below it;
    /// every other path goes through untouched and is not counted by any rule.
    pub fn within(mut self, prefix: &str) -> Self {
        self.scope = Scope(Some(Arc::from(prefix.trim_matches('/'))));
        self
    }

    /// The injector this layer asks.
    pub fn injector(&self) -> &Arc<FaultInjector> {
        &self.injector
    }
}

impl Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService {
            inner,
            injector: Arc::clone(&self.injector),
            scope: self.scope.clone(),
        })
    }
}

/// The service a [`FaultLayer`] wraps around the stack below it.
#[derive(Debug)]
pub struct FaultService {
    inner: Servicer,
    injector: Arc<FaultInjector>,
    scope: Scope,
}

impl FaultService {
    fn decide(&self, op: OpKind, path: &str) -> Decision {
        if self.scope.contains(path) {
            self.injector.decide(op, path)
        } else {
            Decision::default()
        }
    }

    /// For operations that have no failing faults (stat, rename): only the delay.
    async fn delay(&self, op: OpKind, path: &str) {
        sleep(&self.injector, self.decide(op, path).delay).await;
    }
}

/// Sleeps `delay`, counting it as an injected latency.
async fn sleep(injector: &FaultInjector, delay: Option<Duration>) {
    if let Some(delay) = delay {
        injector.record(FaultKind::Latency);
        tokio::time::sleep(delay).await;
    }
}

impl Service for FaultService {
    type Reader = FaultReader;
    type Writer = FaultWriter;
    type Lister = FaultLister;
    type Deleter = FaultDeleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> Result<RpCreateDir> {
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        self.delay(OpKind::Stat, path).await;
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<FaultReader> {
        let decision = self.decide(OpKind::Read, path);
        Ok(FaultReader {
            inner: self.inner.read(ctx, path, args)?,
            injector: Arc::clone(&self.injector),
            path: path.to_string(),
            decision,
            counted: AtomicBool::new(false),
        })
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<FaultWriter> {
        let decision = self.decide(OpKind::Write, path);
        let mode = match decision.outcome {
            // No writer below is even opened: nothing is written.
            Some(fault @ (Fault::WriteError | Fault::DiskFull)) => WriteMode::Fail {
                fault,
                counted: false,
            },
            Some(Fault::PartialWrite) => WriteMode::Tear {
                inner: self.inner.write(ctx, path, args)?,
                buffered: Vec::new(),
            },
            _ => WriteMode::Pass(self.inner.write(ctx, path, args)?),
        };
        Ok(FaultWriter {
            injector: Arc::clone(&self.injector),
            path: path.to_string(),
            delay: decision.delay,
            mode,
        })
    }

    fn delete(&self, ctx: &OperationContext) -> Result<FaultDeleter> {
        Ok(FaultDeleter {
            inner: self.inner.delete(ctx)?,
            injector: Arc::clone(&self.injector),
            scope: self.scope.clone(),
        })
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<FaultLister> {
        let decision = self.decide(OpKind::List, path);
        Ok(FaultLister {
            inner: self.inner.list(ctx, path, args)?,
            injector: Arc::clone(&self.injector),
            path: path.to_string(),
            pending_delay: decision.delay,
            fail: match decision.outcome {
                Some(fault) => ListFailure::Pending(fault),
                None => ListFailure::None,
            },
        })
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<oio::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<oio::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> Result<RpRename> {
        self.delay(OpKind::Rename, to).await;
        self.inner.rename(ctx, from, to, args).await
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

/// A write as its fault decision made it.
pub struct FaultWriter {
    injector: Arc<FaultInjector>,
    path: String,
    /// Slept before the first call, then `None`.
    delay: Option<Duration>,
    mode: WriteMode,
}

enum WriteMode {
    Pass(oio::Writer),
    /// Every call fails; there is no writer below.
    Fail {
        fault: Fault,
        counted: bool,
    },
    /// Bytes are held back; `close` stores the first half of them and reports success.
    Tear {
        inner: oio::Writer,
        buffered: Vec<u8>,
    },
}

impl FaultWriter {
    async fn wait(&mut self) {
        sleep(&self.injector, self.delay.take()).await;
    }

    /// The injected error of a failing write, counted the first time.
    fn fail(injector: &FaultInjector, path: &str, fault: Fault, counted: &mut bool) -> Error {
        if !std::mem::replace(counted, true) {
            injector.record(fault.kind());
        }
        injected_error(fault, path)
    }
}

impl oio::Write for FaultWriter {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        self.wait().await;
        match &mut self.mode {
            WriteMode::Pass(inner) => inner.write(bs).await,
            WriteMode::Fail { fault, counted } => {
                Err(Self::fail(&self.injector, &self.path, *fault, counted))
            }
            WriteMode::Tear { buffered, .. } => {
                buffered.extend_from_slice(&bs.to_bytes());
                Ok(())
            }
        }
    }

    async fn copy_from(&mut self, path: &str, args: OpRead, range: BytesRange) -> Result<()> {
        self.wait().await;
        match &mut self.mode {
            WriteMode::Pass(inner) => inner.copy_from(path, args, range).await,
            WriteMode::Fail { fault, counted } => {
                Err(Self::fail(&self.injector, &self.path, *fault, counted))
            }
            WriteMode::Tear { .. } => Err(Error::new(
                ErrorKind::Unsupported,
                "a write the fault layer tears does not copy natively",
            )),
        }
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.wait().await;
        match &mut self.mode {
            WriteMode::Pass(inner) => inner.close().await,
            WriteMode::Fail { fault, counted } => {
                Err(Self::fail(&self.injector, &self.path, *fault, counted))
            }
            WriteMode::Tear { inner, buffered } => {
                let mut bytes = std::mem::take(buffered);
                bytes.truncate(bytes.len() / 2);
                if !bytes.is_empty() {
                    inner.write(Buffer::from(bytes)).await?;
                }
                let metadata = inner.close().await?;
                self.injector.record(FaultKind::PartialWrite);
                Ok(metadata)
            }
        }
    }

    async fn abort(&mut self) -> Result<()> {
        match &mut self.mode {
            WriteMode::Pass(inner) | WriteMode::Tear { inner, .. } => inner.abort().await,
            WriteMode::Fail { .. } => Ok(()),
        }
    }
}

/// A read as its fault decision made it: delayed and/or failing on every call.
pub struct FaultReader {
    inner: oio::Reader,
    injector: Arc<FaultInjector>,
    path: String,
    decision: Decision,
    /// Whether the faults were counted (once per read, however many calls it makes).
    counted: AtomicBool,
}

impl FaultReader {
    async fn apply(&self) -> Result<()> {
        let first = !self.counted.swap(true, Ordering::Relaxed);
        if let Some(delay) = self.decision.delay {
            if first {
                self.injector.record(FaultKind::Latency);
            }
            tokio::time::sleep(delay).await;
        }
        match self.decision.outcome {
            Some(fault) => {
                if first {
                    self.injector.record(fault.kind());
                }
                Err(injected_error(fault, &self.path))
            }
            None => Ok(()),
        }
    }
}

impl oio::Read for FaultReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        self.apply().await?;
        self.inner.open(range).await
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        self.apply().await?;
        self.inner.read(range).await
    }
}

/// A listing as its fault decision made it.
pub struct FaultLister {
    inner: oio::Lister,
    injector: Arc<FaultInjector>,
    path: String,
    pending_delay: Option<Duration>,
    fail: ListFailure,
}

enum ListFailure {
    None,
    /// Fails from the first call on; counted then.
    Pending(Fault),
    Failed(Fault),
}

impl oio::List for FaultLister {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        sleep(&self.injector, self.pending_delay.take()).await;
        match self.fail {
            ListFailure::None => self.inner.next().await,
            ListFailure::Pending(fault) => {
                self.injector.record(fault.kind());
                self.fail = ListFailure::Failed(fault);
                Err(injected_error(fault, &self.path))
            }
            ListFailure::Failed(fault) => Err(injected_error(fault, &self.path)),
        }
    }
}

/// Deletes, each path decided on its own.
pub struct FaultDeleter {
    inner: oio::Deleter,
    injector: Arc<FaultInjector>,
    scope: Scope,
}

impl oio::Delete for FaultDeleter {
    async fn delete(&mut self, path: &str, args: OpDelete) -> Result<()> {
        if self.scope.contains(path) {
            let decision = self.injector.decide(OpKind::Delete, path);
            sleep(&self.injector, decision.delay).await;
            if let Some(fault) = decision.outcome {
                self.injector.record(fault.kind());
                return Err(injected_error(fault, path));
            }
        }
        self.inner.delete(path, args).await
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}
