//! Exactly-once word count embedded in an actix application.
//!
//! ```sh
//! cargo run --release --example word_count -- INPUT.txt OUTPUT_DIR
//! ```
//!
//! Reads INPUT.txt line by line, splits words, keeps a running count per word in keyed state and
//! writes `["word", n]` JSON lines to OUTPUT_DIR with the exactly-once file sink. Checkpoints
//! every 100 ms go to /tmp/weir-checkpoints; the job finishes when the file is read.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_actors::weir::checkpoint::{CheckpointConfig, ExternalizedRetention, StorageConfig};
use weir_actors::weir::connectors::file_lines::FileLinesSource;
use weir_actors::weir::connectors::file_sink::{committed_lines, ExactlyOnceFileSink};
use weir_actors::weir::functions::Count;
use weir_actors::weir::stream::StreamEnvironment;
use weir_actors::{logging, submit, JobOptions};

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    logging::init();
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "README.md".into());
    let output = args.next().unwrap_or_else(|| "/tmp/weir-out".into());
    if std::path::Path::new(&output).exists() {
        std::fs::remove_dir_all(&output)?;
    }

    let env = StreamEnvironment::new("word count");
    env.set_parallelism(2);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(100)),
        storage: StorageConfig::FileSystem {
            dir: "/tmp/weir-checkpoints".into(),
        },
        externalized_retention: ExternalizedRetention::RetainOnCancellation,
        ..CheckpointConfig::default()
    });
    env.add_source("lines", FileLinesSource::new(&input))
        .parallelism(1)
        .flat_map("split", |line: String, out: &mut Vec<String>| {
            out.extend(
                line.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase),
            )
        })
        .key_by(|w: &String| w.clone())
        .process("count", Count::default())
        .add_sink("out", ExactlyOnceFileSink::new(&output));

    let mut job = submit(env.build()?, JobOptions::default())?;
    println!("job {} submitted", job.job_id);
    let state = job.wait().await;
    println!(
        "job {} {} after {} completed checkpoints",
        state.job_id, state.status, state.completed_checkpoints
    );
    if let Some(f) = state.failure {
        eprintln!("failure: {f}");
    }

    let mut finals: BTreeMap<String, u64> = BTreeMap::new();
    for line in committed_lines(&output)? {
        let (word, n): (String, u64) = serde_json::from_str(&line)?;
        let e = finals.entry(word).or_default();
        *e = (*e).max(n);
    }
    let mut top: Vec<_> = finals.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("top words (committed output in {output}):");
    for (w, n) in top.iter().take(10) {
        println!("{n:>6} {w}");
    }
    Ok(())
}
