//! The routes of the REST API and their handlers (actix-web). Each handler parses its path and
//! body itself, so a malformed request gets a 4xx answer with Flink's `{"errors": [...]}` body:
//! 400 for a malformed job id, checkpoint id, query or body; 404 for an unknown job, checkpoint,
//! trigger or path; 405 for a method a path does not take; 409 for an operation on a job that
//! has ended.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use weir::element::SavepointFormat;
use weir::ids::JobId;

use super::jobs::{JobRegistry, RegisteredJob};
use super::json;
use super::operations;
use super::triggers::TriggerTable;

/// What every handler shares.
#[derive(Clone, Default)]
pub struct RestState {
    pub jobs: JobRegistry,
    pub triggers: TriggerTable,
}

/// A 4xx answer: its status and the sentence for `{"errors": [...]}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        respond(self.status, &json::errors(self.message.clone()))
    }
}

pub(super) type Reply = Result<HttpResponse, ApiError>;

pub(super) fn respond(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

pub(super) fn ok(body: &Value) -> Reply {
    Ok(respond(StatusCode::OK, body))
}

pub(super) fn fail(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// Registers every route on `cfg`: the API under Flink's versioned prefix `/v1` and without a
/// prefix, `/metrics`, and the dashboard at `/`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/v1").configure(api))
        .configure(api)
        .service(
            web::resource("/metrics")
                .route(web::get().to(super::metrics::metrics))
                .default_service(web::to(method_not_allowed)),
        )
        .configure(super::dashboard::routes)
        .default_service(web::to(not_found));
}

/// The REST API's routes, without a prefix.
fn api(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(method_not_allowed);
    cfg.service(
        web::resource("/config")
            .route(web::get().to(config))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/overview")
            .route(web::get().to(overview))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs")
            .route(web::get().to(jobs_list))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/overview")
            .route(web::get().to(jobs_overview))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}")
            .route(web::get().to(job_details))
            .route(web::patch().to(job_patch))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/plan")
            .route(web::get().to(job_plan))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/exceptions")
            .route(web::get().to(job_exceptions))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/vertices/{vertex}")
            .route(web::get().to(vertex_details))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/vertices/{vertex}/watermarks")
            .route(web::get().to(vertex_watermarks))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/checkpoints")
            .route(web::get().to(checkpoints))
            .route(web::post().to(operations::trigger_checkpoint))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/checkpoints/config")
            .route(web::get().to(checkpoint_config))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/checkpoints/details/{checkpoint}")
            .route(web::get().to(checkpoint_details))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/checkpoints/details/{checkpoint}/subtasks/{vertex}")
            .route(web::get().to(checkpoint_subtasks))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/checkpoints/{trigger}")
            .route(web::get().to(operations::checkpoint_status))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/savepoints")
            .route(web::post().to(operations::trigger_savepoint))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/savepoints/{trigger}")
            .route(web::get().to(operations::savepoint_status))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/jobs/{job}/stop")
            .route(web::post().to(operations::stop))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/savepoint-disposal")
            .route(web::post().to(operations::dispose))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/savepoint-disposal/{trigger}")
            .route(web::get().to(operations::disposal_status))
            .default_service(not_allowed()),
    );
}

async fn method_not_allowed(req: HttpRequest) -> Reply {
    Err(fail(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

async fn not_found(req: HttpRequest) -> Reply {
    Err(fail(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {} {}", req.method(), req.path()),
    ))
}

fn parse_job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse().map_err(|_| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("`{text}` is not a job id: expected 32 hexadecimal digits"),
        )
    })
}

pub(super) fn find_job(state: &RestState, text: &str) -> Result<RegisteredJob, ApiError> {
    let id = parse_job_id(text)?;
    state
        .jobs
        .get(&id)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("job {id} not found")))
}

/// Parses a JSON body; an empty body is `T::default()`.
pub(super) fn body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "malformed JSON body"
        } else {
            "bad request body"
        };
        fail(StatusCode::BAD_REQUEST, format!("{what}: {e}"))
    })
}

pub(super) fn parse_format(text: Option<&str>) -> Result<SavepointFormat, ApiError> {
    match text.map(str::to_ascii_uppercase).as_deref() {
        None | Some("CANONICAL") => Ok(SavepointFormat::Canonical),
        Some("NATIVE") => Ok(SavepointFormat::Native),
        Some(other) => Err(fail(
            StatusCode::BAD_REQUEST,
            format!("unknown formatType `{other}`: use CANONICAL or NATIVE"),
        )),
    }
}

pub(super) fn refuse_ended(job: &RegisteredJob, what: &str) -> Result<(), ApiError> {
    let status = job.handle.state().status;
    if status.is_terminal() {
        return Err(fail(
            StatusCode::CONFLICT,
            format!(
                "job {} is {}: a {what} needs a RUNNING job",
                job.handle.job_id,
                status.flink_name()
            ),
        ));
    }
    Ok(())
}

/// How often the dashboard refreshes (`/config`'s `refresh-interval`, Flink's default).
const REFRESH_INTERVAL_MS: u64 = 3000;

async fn config() -> Reply {
    ok(&json::dashboard_config(REFRESH_INTERVAL_MS))
}

async fn overview(state: web::Data<RestState>) -> Reply {
    ok(&json::cluster_overview(&state.jobs.all()))
}

/// The counters of every subtask of `job`.
fn counters(job: &RegisteredJob) -> Vec<(String, u32, crate::metrics::SubtaskSnapshot)> {
    crate::metrics::registry().job(job.handle.job_id)
}

fn find_vertex(job: &RegisteredJob, uid: &str) -> Result<usize, ApiError> {
    job.vertices
        .iter()
        .position(|v| v.uid == uid)
        .ok_or_else(|| {
            fail(
                StatusCode::NOT_FOUND,
                format!(
                    "job {} has no vertex `{uid}`: its vertices are named by operator uid ({})",
                    job.handle.job_id,
                    job.vertices
                        .iter()
                        .map(|v| v.uid.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

fn parse_checkpoint_id(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("`{text}` is not a checkpoint id: expected a whole number"),
        )
    })
}

fn checkpoint_not_found(job: &RegisteredJob, id: u64) -> ApiError {
    fail(
        StatusCode::NOT_FOUND,
        format!(
            "checkpoint {id} of job {} is not in the statistics (unknown, or older than the \
             history keeps)",
            job.handle.job_id
        ),
    )
}

async fn job_plan(state: web::Data<RestState>, path: web::Path<String>) -> Reply {
    ok(&json::job_plan(&find_job(&state, &path)?))
}

async fn job_exceptions(state: web::Data<RestState>, path: web::Path<String>) -> Reply {
    ok(&json::exceptions(&find_job(&state, &path)?))
}

async fn vertex_details(state: web::Data<RestState>, path: web::Path<(String, String)>) -> Reply {
    let (job, vertex) = path.into_inner();
    let job = find_job(&state, &job)?;
    let index = find_vertex(&job, &vertex)?;
    let details = json::vertex_details(&job, index, &counters(&job))
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no vertex `{vertex}`")))?;
    ok(&details)
}

async fn vertex_watermarks(
    state: web::Data<RestState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (job, vertex) = path.into_inner();
    let job = find_job(&state, &job)?;
    let index = find_vertex(&job, &vertex)?;
    let watermarks = json::vertex_watermarks(&job, index, &counters(&job))
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no vertex `{vertex}`")))?;
    ok(&watermarks)
}

async fn checkpoint_subtasks(
    state: web::Data<RestState>,
    path: web::Path<(String, String, String)>,
) -> Reply {
    let (job, checkpoint, vertex) = path.into_inner();
    let job = find_job(&state, &job)?;
    let id = parse_checkpoint_id(&checkpoint)?;
    let index = find_vertex(&job, &vertex)?;
    let stats = job.handle.checkpoint_stats().await.unwrap_or_default();
    let entry = json::find_checkpoint(&stats, id).ok_or_else(|| checkpoint_not_found(&job, id))?;
    let details = json::task_checkpoint_details(entry, &job, index)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no vertex `{vertex}`")))?;
    ok(&details)
}

async fn jobs_list(state: web::Data<RestState>) -> Reply {
    ok(&json::jobs_list(&state.jobs.all()))
}

async fn jobs_overview(state: web::Data<RestState>) -> Reply {
    ok(&json::jobs_overview(&state.jobs.all()))
}

async fn job_details(state: web::Data<RestState>, path: web::Path<String>) -> Reply {
    let job = find_job(&state, &path)?;
    ok(&json::job_details(&job, &counters(&job)))
}

async fn job_patch(
    state: web::Data<RestState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Reply {
    let job = find_job(&state, &path)?;
    let mode = req
        .query_string()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "mode")
        .map(|(_, v)| v.to_owned());
    match mode.as_deref() {
        Some("cancel") => {
            job.handle.cancel().await;
            Ok(respond(StatusCode::ACCEPTED, &json!({})))
        }
        Some(other) => Err(fail(
            StatusCode::BAD_REQUEST,
            format!("unsupported mode `{other}`: use ?mode=cancel (stop with POST .../stop)"),
        )),
        None => Err(fail(
            StatusCode::BAD_REQUEST,
            "missing query parameter `mode`: use ?mode=cancel",
        )),
    }
}

async fn checkpoints(state: web::Data<RestState>, path: web::Path<String>) -> Reply {
    let job = find_job(&state, &path)?;
    let stats = job.handle.checkpoint_stats().await.unwrap_or_default();
    ok(&json::checkpointing_statistics(&stats, &job))
}

async fn checkpoint_config(state: web::Data<RestState>, path: web::Path<String>) -> Reply {
    let job = find_job(&state, &path)?;
    ok(&json::checkpoint_config(
        &job.checkpoint,
        &job.state_backend,
    ))
}

async fn checkpoint_details(
    state: web::Data<RestState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (job, checkpoint) = path.into_inner();
    let job = find_job(&state, &job)?;
    let id = parse_checkpoint_id(&checkpoint)?;
    let stats = job.handle.checkpoint_stats().await.unwrap_or_default();
    let entry = json::find_checkpoint(&stats, id).ok_or_else(|| checkpoint_not_found(&job, id))?;
    ok(&json::checkpoint_entry(entry, &job))
}
