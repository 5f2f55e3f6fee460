//! The asynchronous operations of the REST API: triggering a checkpoint, a savepoint, a stop
//! or a disposal answers at once with a `request-id`; the operation's status is polled at its
//! own path (Flink's trigger/status pairs), from the trigger table (`super::triggers`).

use actix_web::http::StatusCode;
use actix_web::web;
use serde::Deserialize;
use serde_json::{json, Value};
use weir::ids::JobId;

use super::handlers::{
    body, fail, find_job, ok, parse_format, refuse_ended, respond, ApiError, Reply, RestState,
};
use super::triggers::{OperationKind, OperationResult, OperationStatus};

pub(super) fn start(
    state: &RestState,
    job: Option<JobId>,
    kind: OperationKind,
    trigger: Option<String>,
) -> Result<String, ApiError> {
    state
        .triggers
        .start(job, kind, trigger)
        .map_err(|m| fail(StatusCode::CONFLICT, m))
}

pub(super) fn accepted(trigger: &str) -> Reply {
    Ok(respond(
        StatusCode::ACCEPTED,
        &json!({ "request-id": trigger }),
    ))
}

pub(super) fn failure_cause(message: &str) -> Value {
    json!({ "class": "weir::ControlError", "stack-trace": message })
}

pub(super) fn operation_reply(status: Option<OperationStatus>, trigger: &str) -> Reply {
    let status = status.ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
            format!("no operation with trigger id `{trigger}`"),
        )
    })?;
    ok(&match status {
        OperationStatus::InProgress => json!({"status": {"id": "IN_PROGRESS"}, "operation": null}),
        OperationStatus::Completed(result) => {
            let operation = match result {
                OperationResult::Location(path) => json!({ "location": path }),
                OperationResult::CheckpointId(id) => json!({ "checkpointId": id }),
                OperationResult::Done => json!({}),
                OperationResult::Failed(m) => json!({ "failure-cause": failure_cause(&m) }),
            };
            json!({"status": {"id": "COMPLETED"}, "operation": operation})
        }
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckpointRequest {
    #[serde(rename = "checkpointType")]
    checkpoint_type: Option<String>,
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
}

pub(super) async fn trigger_checkpoint(
    state: web::Data<RestState>,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Reply {
    let job = find_job(&state, &path)?;
    let request: CheckpointRequest = body(&bytes)?;
    let full = match request
        .checkpoint_type
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("CONFIGURED") => false,
        Some("FULL") => true,
        Some("INCREMENTAL") => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "checkpointType INCREMENTAL cannot be requested: use CONFIGURED or FULL",
            ))
        }
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("unknown checkpointType `{other}`: use CONFIGURED or FULL"),
            ))
        }
    };
    refuse_ended(&job, "checkpoint")?;
    let job_id = job.handle.job_id;
    let trigger = start(
        &state,
        Some(job_id),
        OperationKind::Checkpoint,
        request.trigger_id,
    )?;
    let (handle, triggers, t) = (job.handle.clone(), state.triggers.clone(), trigger.clone());
    actix_web::rt::spawn(async move {
        let result = match handle.checkpoint(full).await {
            Ok(c) => OperationResult::CheckpointId(c.id.0),
            Err(e) => OperationResult::Failed(e.to_string()),
        };
        triggers.complete(Some(job_id), &t, result);
    });
    accepted(&trigger)
}

pub(super) async fn checkpoint_status(
    state: web::Data<RestState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (job, trigger) = path.into_inner();
    let job = find_job(&state, &job)?;
    let status = state
        .triggers
        .get(Some(job.handle.job_id), OperationKind::Checkpoint, &trigger);
    operation_reply(status, &trigger)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SavepointRequest {
    #[serde(rename = "target-directory")]
    target_directory: Option<String>,
    #[serde(rename = "cancel-job", default)]
    cancel_job: bool,
    #[serde(rename = "formatType")]
    format_type: Option<String>,
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
}

pub(super) async fn trigger_savepoint(
    state: web::Data<RestState>,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Reply {
    let job = find_job(&state, &path)?;
    let request: SavepointRequest = body(&bytes)?;
    let format = parse_format(request.format_type.as_deref())?;
    refuse_ended(&job, "savepoint")?;
    let job_id = job.handle.job_id;
    let trigger = start(
        &state,
        Some(job_id),
        OperationKind::Savepoint,
        request.trigger_id,
    )?;
    let (handle, triggers, t) = (job.handle.clone(), state.triggers.clone(), trigger.clone());
    let (dir, cancel) = (request.target_directory, request.cancel_job);
    actix_web::rt::spawn(async move {
        let result = match handle.savepoint(dir, format).await {
            Ok(c) => {
                if cancel {
                    handle.cancel().await;
                }
                OperationResult::Location(c.external_path)
            }
            Err(e) => OperationResult::Failed(e.to_string()),
        };
        triggers.complete(Some(job_id), &t, result);
    });
    accepted(&trigger)
}

pub(super) async fn savepoint_status(
    state: web::Data<RestState>,
    path: web::Path<(String, String)>,
) -> Reply {
    let (job, trigger) = path.into_inner();
    let job = find_job(&state, &job)?;
    let status = state
        .triggers
        .get(Some(job.handle.job_id), OperationKind::Savepoint, &trigger);
    operation_reply(status, &trigger)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StopRequest {
    #[serde(rename = "targetDirectory")]
    target_directory: Option<String>,
    #[serde(default)]
    drain: bool,
    #[serde(rename = "formatType")]
    format_type: Option<String>,
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
}

pub(super) async fn stop(
    state: web::Data<RestState>,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Reply {
    let job = find_job(&state, &path)?;
    let request: StopRequest = body(&bytes)?;
    let format = parse_format(request.format_type.as_deref())?;
    refuse_ended(&job, "stop-with-savepoint")?;
    let job_id = job.handle.job_id;
    let trigger = start(
        &state,
        Some(job_id),
        OperationKind::Savepoint,
        request.trigger_id,
    )?;
    let (handle, triggers, t) = (job.handle.clone(), state.triggers.clone(), trigger.clone());
    let message = crate::StopWithSavepoint {
        target_dir: request.target_directory,
        format,
        drain: request.drain,
    };
    actix_web::rt::spawn(async move {
        let reply = handle
            .addr
            .send(message)
            .await
            .unwrap_or(Err(crate::ControlError::Gone));
        let result = match reply {
            Ok(c) => OperationResult::Location(c.external_path),
            Err(e) => OperationResult::Failed(e.to_string()),
        };
        triggers.complete(Some(job_id), &t, result);
    });
    accepted(&trigger)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisposalRequest {
    #[serde(rename = "savepoint-path")]
    savepoint_path: Option<String>,
}

pub(super) async fn dispose(state: web::Data<RestState>, bytes: web::Bytes) -> Reply {
    let request: DisposalRequest = body(&bytes)?;
    let path = request.savepoint_path.ok_or_else(|| {
        fail(
            StatusCode::BAD_REQUEST,
            "missing field `savepoint-path`: the savepoint to dispose of",
        )
    })?;
    let trigger = start(&state, None, OperationKind::Disposal, None)?;
    let (triggers, t) = (state.triggers.clone(), trigger.clone());
    actix_web::rt::spawn(async move {
        let result = match weir::checkpoint::storage::dispose_snapshot(&path).await {
            Ok(()) => OperationResult::Done,
            Err(e) => OperationResult::Failed(e.to_string()),
        };
        triggers.complete(None, &t, result);
    });
    accepted(&trigger)
}

pub(super) async fn disposal_status(state: web::Data<RestState>, path: web::Path<String>) -> Reply {
    let status = state.triggers.get(None, OperationKind::Disposal, &path);
    operation_reply(status, &path)
}
