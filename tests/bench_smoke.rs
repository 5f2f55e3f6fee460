//! The benchmark harness (`actors/benches/harness`, run by `cargo bench -p weir-actors --bench
//! weir_bench`) at tiny sizes, so it cannot rot: every section runs in-process and must produce
//! correct output (the checksums are checked inside), captured checkpoint statistics, a report
//! and a plot. Nothing here asserts a timing.

#[path = "../actors/benches/harness/mod.rs"]
mod harness;

use harness::job::Checksum;
use harness::limit::{plain_loop, LimitHasher};
use harness::plan::{self, Options};

#[test]
fn the_checksum_closed_form_matches_counting() {
    for (records, keys) in [
        (0, 1),
        (1, 1),
        (7, 3),
        (10, 10),
        (9, 10),
        (1000, 7),
        (12345, 999),
    ] {
        let mut counts = vec![0u64; keys as usize];
        let mut folded = Checksum::default();
        for i in 0..records {
            let k = i % keys;
            counts[k as usize] += 1;
            folded.add(k, counts[k as usize]);
        }
        assert_eq!(
            folded,
            Checksum::expected(records, keys),
            "{records} records, {keys} keys"
        );
        for hasher in [LimitHasher::StdDefault, LimitHasher::Stable] {
            assert_eq!(plain_loop(records, keys, hasher).0, folded, "{hasher:?}");
        }
    }
    assert_ne!(Checksum::expected(1000, 7), Checksum::expected(1000, 8));
}

#[test]
fn every_section_runs_tiny_with_correct_output() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::smoke(dir.path().join("out"));
    let results = plan::execute(&opts, &dir.path().join("work"), plan::run_task)
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(results.limits.len(), 2);
    assert_eq!(results.throughput.len(), opts.throughput_jobs().len());
    for (job, runs) in &results.throughput {
        assert_eq!(runs.len(), 1, "{}", job.label());
        assert_eq!(runs[0].records, opts.records);
    }
    let size = &results.sizes[0];
    let cost = &size.cost[0];
    assert!(
        cost.checkpoints.len() >= opts.checkpoints_per_size,
        "checkpoint events were not captured (did a log message of the runtime change? see \
         actors/benches/harness/capture.rs): {cost:?}"
    );
    for c in &cost.checkpoints {
        assert!(c.bytes > 0 && c.end_to_end_ms > 0.0, "{c:?}");
    }
    assert!(cost.retained_bytes > 0, "{cost:?}");
    assert!(size.recovery[0].first_record_seconds > 0.0);
    for (job, runs) in &results.skew {
        // How many checkpoints a 600 ms run completes is timing: only progress is checked.
        assert!(
            runs[0].records_per_sec > 0.0,
            "{}: {:?}",
            job.label(),
            runs[0]
        );
    }

    let report = harness::report::markdown(&opts, &results, "smoke");
    for heading in ["### 1–2.", "### 3.", "### 4.", "### 5.", "### Targets"] {
        assert!(report.contains(heading), "{heading} missing:\n{report}");
    }
    let svg = harness::svg::plot(&results, "smoke");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}
