//! The benchmarks must not rot: each runs here with tiny numbers against the debug build, and
//! must produce its table with every side measured.

use std::process::Command;

#[test]
fn the_ingest_benchmark_runs_and_compares_both_sides() {
    let output = Command::new(env!("CARGO_BIN_EXE_bichito-bench"))
        .args([
            "ingest",
            "--concurrency",
            "2",
            "--connections",
            "2",
            "--duration",
            "700ms",
            "--warmup",
            "200ms",
        ])
        .output()
        .expect("run bichito-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for side in [
        "bichito (Postgres)",
        "raw INSERT (Postgres)",
        "bichito (SQLite)",
    ] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(&format!("| {side} |")))
            .unwrap_or_else(|| panic!("no row for {side}:\n{stdout}"));
        let rate: f64 = row
            .split('|')
            .nth(2)
            .and_then(|cell| cell.trim().parse().ok())
            .unwrap_or_else(|| panic!("no rate in {row}"));
        assert!(rate > 0.0, "{side} measured nothing: {row}");
    }
    assert!(
        stdout.contains("ratio bichito/raw INSERT (Postgres): "),
        "{stdout}"
    );
}

#[test]
fn the_idle_stream_benchmark_holds_connections_on_both_sides() {
    let output = Command::new(env!("CARGO_BIN_EXE_bichito-bench"))
        .args(["stream-idle", "--counts", "20,50", "--teams", "5"])
        .output()
        .expect("run bichito-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for count in ["20", "50"] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(&format!("| {count} |")))
            .unwrap_or_else(|| panic!("no row for {count} connections:\n{stdout}"));
        let cells: Vec<f64> = row
            .split('|')
            .filter_map(|cell| cell.trim().parse().ok())
            .collect();
        // connections, bichito MiB, per connection, nginx MiB, per connection, ratio
        assert_eq!(cells.len(), 6, "{row}");
        assert!(
            cells[1] > 0.0 && cells[3] > 0.0,
            "both sides measured: {row}"
        );
    }
}
