//! The benchmarks must not rot: each runs here with tiny numbers against the debug build, and
//! must produce its table with every side measured.

use std::process::Command;

/// The table row of `text` whose first cell is `first`.
fn row<'a>(text: &'a str, first: &str) -> Option<&'a str> {
    let start = format!("| {first} |");
    text.lines().find(|line| line.starts_with(&start))
}

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
        let row = row(&stdout, side).unwrap_or_else(|| panic!("no row for {side}:\n{stdout}"));
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
        let row = row(&stdout, count)
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

#[test]
fn the_stream_latency_benchmark_delivers_everything_on_both_sides_at_a_low_rate() {
    let output = Command::new(env!("CARGO_BIN_EXE_bichito-bench"))
        .args([
            "stream-latency",
            "--subscribers",
            "20",
            "--teams",
            "5",
            "--rates",
            "5,10",
            "--step",
            "600ms",
            "--min-messages",
            "4",
            "--drain",
            "1s",
            "--rounds",
            "2",
        ])
        .output()
        .expect("run bichito-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches("bichito sse + NATS\n").count(),
        2,
        "two rounds: {stdout}"
    );
    let summary = stdout
        .split("summary over 2 rounds")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    for rate in ["5", "10"] {
        let row =
            row(summary, rate).unwrap_or_else(|| panic!("no summary row for {rate}/s:\n{stdout}"));
        assert!(
            !row.contains("failed"),
            "both sides passed at {rate}/s in every round: {row}"
        );
    }
    for side in ["bichito sse + NATS", "nginx + nchan"] {
        let table = stdout
            .split(&format!("{side}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no table for {side}:\n{stdout}"));
        for rate in ["5", "10"] {
            let row = row(table, rate)
                .unwrap_or_else(|| panic!("no row for {rate}/s on {side}:\n{stdout}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            // | rate | deliveries/s | p50 | p99 | p99.9 | first p99 | fan-out p99 | lost | gaps |
            // failed | cpu… | passed |
            assert_eq!(cells[8], "0", "{side} lost nothing at {rate}/s: {row}");
            assert_eq!(cells[9], "0", "{side} had no gaps at {rate}/s: {row}");
            assert!(row.ends_with("| yes |"), "{side} passed at {rate}/s: {row}");
            let p99: f64 = cells[4].parse().expect("p99");
            assert!(p99 > 0.0, "{side} measured a latency: {row}");
            let first: f64 = cells[6].parse().expect("first receipt p99");
            let fan_out: f64 = cells[7].parse().expect("fan-out p99");
            assert!(
                first > 0.0 && fan_out >= 0.0 && first <= p99,
                "{side} split its latency: {row}"
            );
        }
    }
    assert!(
        stdout.contains("most deliveries/s with p99 <= 1 s and nothing lost: bichito "),
        "{stdout}"
    );
}

#[test]
fn the_operator_benchmark_reaches_all_ready_bounded_and_unbounded() {
    let output = Command::new(env!("CARGO_BIN_EXE_bichito-bench"))
        .args([
            "operator",
            "--counts",
            "40",
            "--namespaces",
            "4",
            "--timeout",
            "2m",
        ])
        .output()
        .expect("run bichito-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for side in ["8", "unbounded (reference)"] {
        let row = row(&stdout, side).unwrap_or_else(|| panic!("no row for {side}:\n{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | side | Honeycombs | fresh s | fresh MiB | fresh failures | restart s | restart MiB |
        // restart failures |
        assert_eq!(cells[2], "40", "{row}");
        for (at, what) in [(4, "fresh peak RSS"), (7, "restart peak RSS")] {
            let mib: f64 = cells[at]
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {row}"));
            assert!(mib > 0.0, "{side}: {what} measured: {row}");
        }
    }
}

#[test]
fn the_inbox_benchmark_loads_both_pages_and_follows_live_reports() {
    let output = Command::new(env!("CARGO_BIN_EXE_bichito-bench"))
        .args([
            "inbox",
            "--reports",
            "30",
            "--rate",
            "10",
            "--duration",
            "1s",
        ])
        .args(["--runs", "1"])
        .output()
        .expect("run bichito-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for side in ["inbox", "reference: the same rows as a static table"] {
        let row = row(&stdout, side).unwrap_or_else(|| panic!("no row for {side}:\n{stdout}"));
        let kilobytes: f64 = row
            .split('|')
            .nth(2)
            .and_then(|cell| cell.trim().parse().ok())
            .unwrap_or_else(|| panic!("no size in {row}"));
        assert!(kilobytes > 0.0, "{side} transferred nothing: {row}");
    }
    assert!(
        stdout.contains("live: 10 reports") && stdout.contains("40 rows drawn without a gap"),
        "{stdout}"
    );
}
