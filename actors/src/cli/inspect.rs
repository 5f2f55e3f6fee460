//! `weir checkpoints DIR`: what is stored under a checkpoint or savepoint directory, offline —
//! for each snapshot its id, kind, time, size (stored, and raw when compressed), operators with their parallelism, and whether it
//! is complete, incomplete (no `_metadata`) or damaged (and why).

use serde_json::{json, Value};
use weir::checkpoint::storage::{list_snapshots, SnapshotListing, SnapshotStatus, StorageError};

use super::args::CheckpointsArgs;
use super::exit::CliError;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (UTC); from the last days of
/// the year 9999 on (past `jiff`'s range; no real snapshot gets there), the milliseconds.
pub fn format_timestamp(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| format!("{ms} ms after the epoch"), |t| format!("{t:.3}"))
}

/// One listing as JSON: `path`, `id`, `status` (COMPLETE / INCOMPLETE / DAMAGED), and for a
/// complete one `kind`, `job_id`, `trigger_timestamp`, `completion_timestamp`, `time`,
/// `state_size` (stored), `raw_state_size` (before compression), `unaligned`, `persisted_data`
/// (bytes of in-flight data of an unaligned checkpoint), `operators` [{uid, name, parallelism,
/// max_parallelism}]; for a damaged one
/// `reason`.
pub fn listing_json(l: &SnapshotListing) -> Value {
    let mut v = json!({
        "path": l.path,
        "id": l.checkpoint_id.map(|c| c.0),
    });
    let o = v.as_object_mut().expect("object");
    match &l.status {
        SnapshotStatus::Complete(md) => {
            o.insert("id".into(), json!(md.checkpoint_id.0));
            o.insert("status".into(), json!("COMPLETE"));
            o.insert("kind".into(), json!(md.kind.rest_name()));
            o.insert("job_id".into(), json!(md.job_id.to_string()));
            o.insert("trigger_timestamp".into(), json!(md.trigger_timestamp_ms));
            o.insert(
                "completion_timestamp".into(),
                json!(md.completion_timestamp_ms),
            );
            o.insert(
                "time".into(),
                json!(format_timestamp(md.completion_timestamp_ms)),
            );
            o.insert("state_size".into(), json!(md.state_size()));
            o.insert("unaligned".into(), json!(md.unaligned));
            o.insert("persisted_data".into(), json!(md.persisted_data()));
            // Before compression (`snapshot-compression`); equal to state_size without it.
            o.insert(
                "raw_state_size".into(),
                json!(l.raw_state_size.unwrap_or(md.state_size())),
            );
            let ops: Vec<Value> = md
                .operators
                .iter()
                .map(|op| {
                    json!({
                        "uid": op.uid,
                        "name": op.name,
                        "parallelism": op.parallelism,
                        "max_parallelism": op.max_parallelism,
                    })
                })
                .collect();
            o.insert("operators".into(), json!(ops));
        }
        SnapshotStatus::Incomplete => {
            o.insert("status".into(), json!("INCOMPLETE"));
            o.insert(
                "reason".into(),
                json!("no _metadata: aborted or unfinished"),
            );
        }
        SnapshotStatus::Damaged(reason) => {
            o.insert("status".into(), json!("DAMAGED"));
            o.insert("reason".into(), json!(reason));
        }
    }
    v
}

fn table(listings: &[SnapshotListing]) {
    if listings.is_empty() {
        println!("No checkpoints or savepoints.");
        return;
    }
    for l in listings {
        let v = listing_json(l);
        match &l.status {
            SnapshotStatus::Complete(md) => {
                let ops: Vec<String> = md
                    .operators
                    .iter()
                    .map(|op| format!("{}({})", op.uid, op.parallelism))
                    .collect();
                let stored = md.state_size();
                let raw = l.raw_state_size.unwrap_or(stored);
                let size = if raw == stored {
                    super::status::human_size(stored)
                } else {
                    format!(
                        "{} stored ({} raw)",
                        super::status::human_size(stored),
                        super::status::human_size(raw)
                    )
                };
                let unaligned = if md.unaligned {
                    format!(
                        "  unaligned ({} in flight)",
                        super::status::human_size(md.persisted_data())
                    )
                } else {
                    String::new()
                };
                println!(
                    "{}\n  id {}  {}  COMPLETE  {}  {}{}  operators: {}",
                    l.path,
                    md.checkpoint_id,
                    md.kind.rest_name(),
                    v["time"].as_str().unwrap_or(""),
                    size,
                    unaligned,
                    if ops.is_empty() {
                        "-".to_owned()
                    } else {
                        ops.join(" ")
                    }
                );
            }
            _ => println!(
                "{}\n  id {}  {}: {}",
                l.path,
                l.checkpoint_id.map_or("-".to_owned(), |c| c.to_string()),
                v["status"].as_str().unwrap_or(""),
                v["reason"].as_str().unwrap_or("")
            ),
        }
    }
    let count = |want: &str| {
        listings
            .iter()
            .filter(|l| listing_json(l)["status"] == want)
            .count()
    };
    println!(
        "{} complete, {} incomplete, {} damaged",
        count("COMPLETE"),
        count("INCOMPLETE"),
        count("DAMAGED")
    );
}

/// `weir checkpoints DIR [--json]`.
///
/// # Errors
/// A directory that does not exist or is not one (usage, exit 2); a storage error (exit 1).
pub fn checkpoints(args: &CheckpointsArgs) -> Result<(), CliError> {
    super::configure_s3(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start a runtime: {e}")))?;
    let listings = runtime
        .block_on(list_snapshots(&args.dir))
        .map_err(|e| match e {
            StorageError::DirectoryNotFound { .. }
            | StorageError::NotADirectory { .. }
            | StorageError::UnsupportedScheme { .. }
            | StorageError::S3Config { .. }
            | StorageError::InvalidLocation { .. } => CliError::Usage(e.to_string()),
            other => CliError::Failed(other.to_string()),
        })?;
    if args.json {
        let all: Vec<Value> = listings.iter().map(listing_json).collect();
        println!("{}", Value::Array(all));
    } else {
        table(&listings);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_iso_8601() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(951_782_400_123),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            format_timestamp(1_700_000_000_000),
            "2023-11-14T22:13:20.000Z"
        );
    }

    #[test]
    fn timestamps_past_the_year_9999_are_plain_milliseconds() {
        assert_eq!(
            format_timestamp(253_370_764_800_001),
            "9999-01-01T00:00:00.001Z"
        );
        for ms in [253_402_300_800_000, i64::MAX as u64, u64::MAX] {
            assert_eq!(format_timestamp(ms), format!("{ms} ms after the epoch"));
        }
    }
}
