//! The commands that talk to a running `weir run` over REST: `list`, `savepoint`, `stop`,
//! `cancel`, `checkpoint`. Asynchronous operations are triggered with a `POST` and polled with
//! `GET .../:triggerid` until they complete, as Flink's CLI does.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::{CheckpointArgs, ClientArgs, JobArgs, SavepointArgs, StopArgs};
use super::exit::CliError;
use super::http::{self, Response};
use super::overrides;

/// How often a trigger is polled.
const POLL: Duration = Duration::from_millis(100);
/// How long an operation may take before the CLI gives up waiting (the operation goes on).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// `host:port` of the REST API: `--address`, else 127.0.0.1 and the configured `rest.port`.
///
/// # Errors
/// A bad configuration or a malformed address (usage errors).
pub fn address(args: &ClientArgs) -> Result<String, CliError> {
    let (config, _) = weir::config::load_from_env(
        args.config.config.as_deref(),
        None,
        &overrides(&args.config.define)?,
    )?;
    let port = config.rest.port;
    let Some(given) = &args.address else {
        return Ok(format!("127.0.0.1:{port}"));
    };
    let bare = given
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if bare.is_empty() || bare.contains('/') || given.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "--address {given}: expected HOST, HOST:PORT or http://HOST:PORT"
        )));
    }
    let has_port = bare
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !bare.ends_with(']');
    Ok(if has_port {
        bare.to_owned()
    } else {
        format!("{bare}:{port}")
    })
}

fn call(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Response, CliError> {
    http::request(address, method, path, body).map_err(|e| CliError::Failed(e.to_string()))
}

/// A 2xx answer's body, or the error the status means: 400 is a usage error, anything else
/// a failed operation.
fn expect_ok(response: Response, what: &str) -> Result<Value, CliError> {
    match response.status {
        200..=299 => Ok(response.body),
        400 => Err(CliError::Usage(format!(
            "{what}: {}",
            response.error_message()
        ))),
        _ => Err(CliError::Failed(format!(
            "{what}: {}",
            response.error_message()
        ))),
    }
}

fn check_job_id(job_id: &str) -> Result<(), CliError> {
    job_id.parse::<weir::ids::JobId>().map(|_| ()).map_err(|_| {
        CliError::Usage(format!(
            "`{job_id}` is not a job id: expected 32 hexadecimal digits (see `weir list`)"
        ))
    })
}

/// Triggers with `POST path` and polls `status_path/<trigger>` until the operation completes;
/// returns its `operation` object.
fn trigger_and_wait(
    address: &str,
    path: &str,
    body: &Value,
    status_path: &str,
    what: &str,
) -> Result<Value, CliError> {
    let answer = expect_ok(call(address, "POST", path, Some(body))?, what)?;
    let trigger = answer["request-id"]
        .as_str()
        .ok_or_else(|| CliError::Failed(format!("{what}: no request-id in {answer}")))?
        .to_owned();
    let deadline = Instant::now() + OPERATION_TIMEOUT;
    loop {
        let status = expect_ok(
            call(address, "GET", &format!("{status_path}/{trigger}"), None)?,
            what,
        )?;
        if status["status"]["id"] == "COMPLETED" {
            let operation = status["operation"].clone();
            let cause = operation
                .get("failure-cause")
                .or_else(|| operation.get("failureCause"));
            if let Some(cause) = cause {
                let message = cause["stack-trace"]
                    .as_str()
                    .map_or_else(|| cause.to_string(), str::to_owned);
                return Err(CliError::Failed(format!("{what} failed: {message}")));
            }
            return Ok(operation);
        }
        if Instant::now() > deadline {
            return Err(CliError::Failed(format!(
                "{what}: still in progress after {} s (trigger {trigger}); giving up waiting",
                OPERATION_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// `weir list`.
pub fn list(args: &ClientArgs) -> Result<(), CliError> {
    let address = address(args)?;
    let body = expect_ok(call(&address, "GET", "/jobs/overview", None)?, "list")?;
    let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        println!("No jobs.");
        return Ok(());
    }
    println!(
        "{:<32}  {:<10}  {:>10}  NAME",
        "JOB ID", "STATE", "DURATION"
    );
    for j in jobs {
        let secs = j["duration"].as_u64().unwrap_or(0) / 1000;
        println!(
            "{:<32}  {:<10}  {:>9}s  {}",
            j["jid"].as_str().unwrap_or("?"),
            j["state"].as_str().unwrap_or("?"),
            secs,
            j["name"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `weir savepoint JOB_ID [DIR] [--type]` and `weir savepoint --dispose PATH`.
pub fn savepoint(args: &SavepointArgs) -> Result<(), CliError> {
    if let Some(path) = &args.dispose {
        super::configure_s3(&args.client.config)?;
        return dispose(path);
    }
    let job_id = args
        .job_id
        .as_deref()
        .expect("clap requires JOB_ID without --dispose");
    check_job_id(job_id)?;
    let address = address(&args.client)?;
    let mut body = json!({ "formatType": args.format.flink_name() });
    if let Some(dir) = &args.dir {
        body["target-directory"] = json!(dir);
    }
    let path = format!("/jobs/{job_id}/savepoints");
    let operation = trigger_and_wait(&address, &path, &body, &path, "savepoint")?;
    println!(
        "Savepoint completed. Path: {}",
        operation["location"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn dispose(path: &str) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start a runtime: {e}")))?;
    runtime
        .block_on(weir::checkpoint::storage::dispose_snapshot(path))
        .map_err(|e| CliError::Failed(format!("cannot dispose of savepoint {path}: {e}")))?;
    println!("Savepoint '{path}' disposed.");
    Ok(())
}

/// `weir stop JOB_ID [--savepoint-path DIR] [--drain] [--type]`.
pub fn stop(args: &StopArgs) -> Result<(), CliError> {
    check_job_id(&args.job_id)?;
    let address = address(&args.client)?;
    let mut body = json!({ "drain": args.drain, "formatType": args.format.flink_name() });
    if let Some(dir) = &args.savepoint_path {
        body["targetDirectory"] = json!(dir);
    }
    let operation = trigger_and_wait(
        &address,
        &format!("/jobs/{}/stop", args.job_id),
        &body,
        &format!("/jobs/{}/savepoints", args.job_id),
        "stop-with-savepoint",
    )?;
    println!(
        "Savepoint completed. Path: {}",
        operation["location"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// `weir cancel JOB_ID`: asks for the cancel, then waits (bounded) until the job is CANCELED
/// or its `weir run` has exited.
pub fn cancel(args: &JobArgs) -> Result<(), CliError> {
    check_job_id(&args.job_id)?;
    let address = address(&args.client)?;
    let path = format!("/jobs/{}", args.job_id);
    expect_ok(
        call(&address, "PATCH", &format!("{path}?mode=cancel"), None)?,
        "cancel",
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match http::request(&address, "GET", &path, None) {
            Err(e) if e.is_refused() => break,
            Err(e) => return Err(CliError::Failed(e.to_string())),
            Ok(r) if r.status == 200 => {
                let state = r.body["state"].as_str().unwrap_or("");
                if state == "CANCELED" {
                    break;
                }
                if matches!(state, "FINISHED" | "FAILED") {
                    return Err(CliError::Failed(format!(
                        "job {} ended {state} before it could be canceled",
                        args.job_id
                    )));
                }
            }
            Ok(_) => break,
        }
        std::thread::sleep(POLL);
    }
    println!("Cancelled job {}.", args.job_id);
    Ok(())
}

/// `weir checkpoint JOB_ID [--full]`.
pub fn checkpoint(args: &CheckpointArgs) -> Result<(), CliError> {
    check_job_id(&args.job_id)?;
    let address = address(&args.client)?;
    let path = format!("/jobs/{}/checkpoints", args.job_id);
    let body = json!({ "checkpointType": if args.full { "FULL" } else { "CONFIGURED" } });
    let operation = trigger_and_wait(&address, &path, &body, &path, "checkpoint")?;
    let id = operation["checkpointId"].as_u64().unwrap_or(0);
    let details = http::request(&address, "GET", &format!("{path}/details/{id}"), None)
        .ok()
        .filter(|r| r.status == 200);
    match details
        .as_ref()
        .and_then(|d| d.body["external_path"].as_str())
    {
        Some(p) => println!("Checkpoint {id} completed. Path: {p}"),
        None => println!("Checkpoint {id} completed."),
    }
    Ok(())
}
