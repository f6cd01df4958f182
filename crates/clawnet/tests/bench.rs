//! `clawnet bench` as a person runs it: the real binary drives real hubs.

use std::process::Command;

/// Regression: each SQLite run of `clawnet bench tasks` deleted the
/// database and its WAL, but left the audit trail and quarantine ledger the
/// hub writes beside it (`PATH.audit.jsonl`, about 100 MB per closed-loop
/// run): a day of benchmarking filled 8 GB of /tmp.
#[test]
fn bench_runs_left_the_hubs_audit_and_quarantine_files_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let out = Command::new(env!("CARGO_BIN_EXE_clawnet"))
        .args([
            "bench",
            "tasks",
            "--backends",
            "sqlite",
            "--scenarios",
            "drain",
        ])
        .args(["--concurrency", "1", "--reps", "1", "--drain-total", "40"])
        .args([
            "--noise-retries",
            "0",
            "--workers",
            "2",
            "--dispatchers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--log-dir")
        .arg(&logs)
        .output()
        .expect("run clawnet bench tasks");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let drained = &report["backends"]["sqlite"]["median"]["drain_c1"]["completed"];
    assert_eq!(drained.as_f64(), Some(40.0), "{report}");
    let left: Vec<_> = std::fs::read_dir(&data)
        .expect("data dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "files left in the data dir: {left:?}");
}
