//! The REST server: Flink's REST API (paths, complete response schemas, errors), served by
//! actix-web on loopback by default, every path also under Flink's versioned prefix `/v1`; plus
//! `/metrics` and the web dashboard at `/`.
//!
//! - [`jobs::JobRegistry`]: the jobs served, by id (a [`crate::JobHandle`] each, plus name,
//!   vertices, edges, chains and checkpoint settings taken from the graph at registration, and a
//!   [`history::JobHistory`] kept by a watcher of the job's state);
//! - [`triggers::TriggerTable`]: Flink's asynchronous operations (savepoint, stop, checkpoint,
//!   disposal): a `POST` answers `{"request-id": ...}` at once, `GET .../:triggerid` answers
//!   `IN_PROGRESS` or `COMPLETED` with the result;
//! - [`json`]: Weir's state in Flink's JSON shapes (pure functions);
//! - [`handlers`]: the routes; malformed requests get 4xx with `{"errors": [...]}`;
//! - `metrics`: `/metrics` from [`crate::metrics`]; `dashboard`: the page and its assets.
//!
//! | method and path (also under `/v1`) | answer (Flink's schema) |
//! |---|---|
//! | `GET /config` | `DashboardConfiguration` |
//! | `GET /overview` | `ClusterOverviewWithVersion` |
//! | `GET /jobs` | `{"jobs": [{"id", "status"}]}` |
//! | `GET /jobs/overview` | `MultipleJobsDetails`: `jid`, `name`, `state`, times, `last-modification`, `tasks` per execution state |
//! | `GET /jobs/:id` | `JobDetailsInfo`: ..., `timestamps`, `vertices` (with `tasks`, `metrics`), `status-counts`, `plan` |
//! | `GET /jobs/:id/plan` | `JobPlanInfo` |
//! | `GET /jobs/:id/vertices/:uid` | `JobVertexDetailsInfo` |
//! | `GET /jobs/:id/exceptions` | `JobExceptionsInfoWithHistory` |
//! | `PATCH /jobs/:id?mode=cancel` | 202 `{}` |
//! | `GET /jobs/:id/checkpoints` | `CheckpointingStatistics`: `counts`, `summary`, `latest`, `history` |
//! | `GET /jobs/:id/checkpoints/config` | `CheckpointConfigInfo` |
//! | `GET /jobs/:id/checkpoints/details/:cid` | `CheckpointStatistics`, with per-vertex `tasks` |
//! | `GET /jobs/:id/checkpoints/details/:cid/subtasks/:uid` | `TaskCheckpointStatisticsWithSubtaskDetails` |
//! | `POST /jobs/:id/checkpoints` | `{"checkpointType": "CONFIGURED"\|"FULL"}` → 202 `{"request-id"}` |
//! | `GET /jobs/:id/checkpoints/:trigger` | `{"status": {"id"}, "operation": {"checkpointId"}\|{"failure-cause"}}` |
//! | `POST /jobs/:id/savepoints` | `{"target-directory", "cancel-job", "formatType"}` → 202 |
//! | `POST /jobs/:id/stop` | `{"targetDirectory", "drain", "formatType"}` → 202 |
//! | `GET /jobs/:id/savepoints/:trigger` | `{"status": {"id"}, "operation": {"location"}\|{"failure-cause"}}` |
//! | `POST /savepoint-disposal` | `{"savepoint-path"}` → 202; `GET /savepoint-disposal/:trigger` |
//! | `GET /metrics` | OpenMetrics text (not under `/v1`) |
//! | `GET /` | the dashboard (`/app.js`, `/style.css`) |

mod dashboard;
pub mod handlers;
pub mod history;
pub mod jobs;
pub mod json;
mod metrics;
mod operations;
pub mod triggers;

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use handlers::RestState;
pub use jobs::{JobRegistry, RegisteredJob, VertexInfo};
pub use triggers::TriggerTable;

/// A running REST server.
pub struct RestServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl RestServer {
    /// Binds `address:port` (port 0: any free port) and serves `state` on one worker thread.
    /// Must be called inside an actix System; the server runs until [`RestServer::stop`] or the
    /// System ends. It leaves signals alone: the caller decides what Ctrl-C does.
    ///
    /// # Errors
    /// The address cannot be bound (in use, not local, malformed).
    pub fn start(state: RestState, address: &str, port: u16) -> std::io::Result<Self> {
        let data = web::Data::new(state);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(handlers::routes)
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind((address, port))?;
        let addr = *server.addrs().first().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{address}:{port} resolved to no address"),
            )
        })?;
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Self { addr, handle })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and finishes the requests in flight.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}
