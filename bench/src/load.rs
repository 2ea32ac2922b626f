//! Load generators and their statistics.
//!
//! The closed loop finds the most a server takes: `concurrency` workers each send a request as
//! soon as their previous one is answered. The open loop measures latency at a fixed rate:
//! requests start on a schedule whether or not earlier ones are done, and each latency counts
//! from its scheduled start, so a stall shows in the percentiles instead of slowing the load
//! (no coordinated omission).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
}

impl Stats {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile latency (0–100) in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[index].as_secs_f64() * 1000.0
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
    }
}

/// Runs `concurrency` workers calling `request` back to back for `warmup + duration`; counts
/// only what finishes after the warm-up. `request` answers whether the call succeeded.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    request: F,
) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let start = Instant::now();
    let measured_from = start + warmup;
    let end = measured_from + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let ok = request().await;
                let done = Instant::now();
                if sent < measured_from || done > end {
                    continue;
                }
                if ok {
                    stats.ok += 1;
                    stats.latencies.push(done - sent);
                } else {
                    stats.errors += 1;
                }
            }
            stats
        }));
    }
    let mut total = Stats::default();
    for worker in workers {
        if let Ok(stats) = worker.await {
            total.merge(stats);
        }
    }
    total.elapsed = duration;
    total.latencies.sort_unstable();
    total
}

/// Starts `request` `rate` times per second for `duration`, each latency measured from its
/// scheduled start.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut ticks = tokio::time::interval(period);
    let results = Arc::new(Mutex::new(Stats::default()));
    let start = Instant::now();
    let mut in_flight = Vec::new();
    loop {
        let scheduled = ticks.tick().await;
        if scheduled - start >= duration {
            break;
        }
        let call = request();
        let results = results.clone();
        in_flight.push(tokio::spawn(async move {
            let ok = call.await;
            let latency = scheduled.elapsed();
            let mut results = results.lock().await;
            if ok {
                results.ok += 1;
                results.latencies.push(latency);
            } else {
                results.errors += 1;
            }
        }));
    }
    for call in in_flight {
        let _ = call.await;
    }
    let mut total = std::mem::take(&mut *results.lock().await);
    total.elapsed = duration;
    total.latencies.sort_unstable();
    total
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time used so far by each process named `command` (e.g. Postgres's backends), by pid.
pub fn cpu_times_of_command(command: &str) -> HashMap<String, Duration> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|byte| byte.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == command)
        })
        .filter_map(|pid| cpu_time(&pid).map(|cpu| (pid, cpu)))
        .collect()
}

/// CPU time the processes named `command` used since `before` was read: each living process's
/// growth (a process started since counts whole). One that exited in between takes its time
/// with it, so read while the connections being measured are still open.
pub fn cpu_time_of_command_since(command: &str, before: &HashMap<String, Duration>) -> Duration {
    cpu_times_of_command(command)
        .into_iter()
        .map(|(pid, now)| now.saturating_sub(before.get(&pid).copied().unwrap_or_default()))
        .sum()
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let stats = Stats {
            ok: 100,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latencies: (1..=100).map(Duration::from_millis).collect(),
        };
        assert_eq!(stats.percentile_ms(50.0), 50.0);
        assert_eq!(stats.percentile_ms(99.0), 99.0);
        assert_eq!(stats.percentile_ms(100.0), 100.0);
        assert_eq!(stats.rate(), 100.0);
    }

    #[tokio::test]
    async fn the_closed_loop_counts_only_after_the_warm_up() {
        let stats = closed_loop(
            2,
            Duration::from_millis(50),
            Duration::from_millis(200),
            || async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                true
            },
        )
        .await;
        // Two workers at about 10 ms a call for 200 ms: about 40 calls, never the warm-up's.
        assert!((20..=42).contains(&stats.ok), "{}", stats.ok);
        assert_eq!(stats.errors, 0);
    }

    #[test]
    fn this_process_has_a_cpu_time_and_a_resident_size() {
        assert!(cpu_time("self").is_some());
        assert!(rss_bytes("self").is_some_and(|rss| rss > 0));
    }

    #[test]
    fn cpu_time_of_a_command_sums_its_processes() {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        // Spin so that this process has used at least one clock tick.
        let start = std::time::Instant::now();
        while cpu_time("self").unwrap_or_default() < Duration::from_millis(20)
            && start.elapsed() < Duration::from_secs(5)
        {
            std::hint::black_box((0..1000).sum::<u64>());
        }
        let comm = comm.trim_end();
        let own = cpu_times_of_command(comm)
            .get(&std::process::id().to_string())
            .copied();
        assert!(
            own.is_some_and(|cpu| cpu >= Duration::from_millis(20)),
            "{own:?}"
        );
        assert!(cpu_times_of_command("no-such-command-here").is_empty());
        // Since an empty reading, a living process counts whole.
        assert!(cpu_time_of_command_since(comm, &HashMap::new()) >= Duration::from_millis(20));
    }
}
