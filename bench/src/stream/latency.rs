//! Publish-to-receipt latency with many subscribers, at rising publish rates.
//!
//! `--subscribers` connections are spread evenly over `--teams` teams. Each step publishes at
//! one rate (messages per second over all teams, round-robin, open loop: every message is sent
//! at its scheduled time whether or not earlier ones are done) and every message reaches each
//! subscriber of its team. A message carries the time the bench sent it; the subscriber that
//! receives it records the difference, so a server slow to take a publish shows as latency
//! too. A step lasts `--step`, or longer until it has published `--min-messages`. After the
//! step's last publish the run waits `--drain` for stragglers, then counts what is missing.
//! A step fails when p99 passes 1 s or any delivery is missing; the run stops at the first
//! failing step of each side.
//!
//! bichito's messages are published as its api's relay publishes them: to JetStream on
//! `bichito.team.<team>.bug.created`, then the notice the feeds follow; nchan's are POSTed to
//! its publisher location.

use super::sides::{BichitoSide, NchanSide, Programs, SUBJECT_PREFIX, WorkFolder, team_names};
use super::subscriber::{EventReader, Subscriber, subscribe};
use crate::Result;
use crate::load::cpu_time;
use clap::Args;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    /// Subscribers, spread evenly over the teams.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 100)]
    pub teams: usize,
    /// Publish rates to step through, in messages per second over all teams.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 25, 50, 100, 200, 400, 800, 1600])]
    pub rates: Vec<u32>,
    /// How long each rate is held, at least.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub step: Duration,
    /// A step is held until it has published this many messages: at 10 msg/s a 5 s step has
    /// 50, and its p99 over the team's subscribers is then the one slowest message.
    #[arg(long, default_value_t = 500)]
    pub min_messages: u64,
    /// Wait after a step's last publish for its deliveries.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Size of each message's JSON, about that of a real `bug.created`.
    #[arg(long, default_value_t = 400)]
    pub payload_bytes: usize,
    /// Runs of both sides, alternating (bichito, nchan, bichito, …); with more than one, a
    /// summary gives each rate's median p99, so that one noisy run does not decide.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub programs: Programs,
}

/// p99 above this fails a step.
const P99_LIMIT: Duration = Duration::from_secs(1);

pub async fn latency(args: LatencyArgs) -> Result<()> {
    if args.teams == 0 || args.subscribers < args.teams {
        return Err("--subscribers must be at least --teams, and --teams at least 1".into());
    }
    let work = WorkFolder::create("latency")?;
    let teams = team_names(args.teams);
    let mut rounds = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let ours = run_bichito(&args, &teams).await?;
        let theirs = run_nchan(&args, &work, &teams).await?;
        rounds.push((ours, theirs));
    }
    print_report(&args, &rounds);
    Ok(())
}

async fn run_bichito(args: &LatencyArgs, teams: &[String]) -> Result<Vec<Step>> {
    let side = BichitoSide::start(&args.programs, teams).await?;
    // Published as the api's relay does: to the stream, then the notice the feeds follow.
    let defaults = bichito::config::StreamArgs::default();
    let bus = bichito::bus::nats::NatsBus::connect(bichito::bus::nats::NatsSettings {
        url: side.nats_url.clone(),
        stream_name: defaults.nats_stream,
        subject_prefix: SUBJECT_PREFIX.to_owned(),
        replicas: 1,
        retention: defaults.replay_window,
        queue_size: defaults.sse_queue_size,
    })
    .await?;
    let publisher = Publisher::Nats {
        bus: Box::new(bus),
        next_id: std::sync::atomic::AtomicI64::new(1),
    };
    let requests: Vec<String> = teams.iter().map(|team| side.request(team)).collect();
    let cpu = || {
        let (bichito, nats) = side.cpu();
        vec![bichito, nats]
    };
    let steps = run_side(args, &side.address, &requests, publisher, teams, cpu).await;
    side.stop().await;
    steps
}

async fn run_nchan(args: &LatencyArgs, work: &WorkFolder, teams: &[String]) -> Result<Vec<Step>> {
    let side = NchanSide::start(&args.programs, &work.0).await?;
    let publisher = Publisher::Nchan {
        client: reqwest::Client::new(),
        base: format!("http://{}", side.address),
    };
    let requests: Vec<String> = teams.iter().map(|team| side.request(team)).collect();
    let steps = run_side(args, &side.address, &requests, publisher, teams, || {
        vec![side.cpu()]
    })
    .await;
    side.stop().await;
    steps
}

/// What one step measured.
struct Step {
    rate: u32,
    deliveries_per_second: f64,
    latencies: Latencies,
    expected: u64,
    received: u64,
    /// Publishes the server refused or failed.
    failed_publishes: u64,
    /// `stream.gap` events and subscribers the server closed.
    gaps: u64,
    /// CPU time per server process, then the bench's own, as a share of one core.
    cpu: Vec<f64>,
}

impl Step {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    fn passed(&self) -> bool {
        self.lost() == 0
            && self.failed_publishes == 0
            && self.gaps == 0
            && self.latencies.p99 <= P99_LIMIT.as_secs_f64() * 1000.0
    }
}

enum Publisher {
    Nats {
        bus: Box<bichito::bus::nats::NatsBus>,
        /// Outbox ids: each publish is a new event.
        next_id: std::sync::atomic::AtomicI64,
    },
    Nchan {
        client: reqwest::Client,
        base: String,
    },
}

impl Publisher {
    async fn publish(&self, team: &str, payload: String) -> bool {
        match self {
            Publisher::Nats { bus, next_id } => {
                use bichito::bus::Publish;
                let event = bichito_core::events::OutboxEvent {
                    id: next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    team_id: team.to_owned(),
                    event_type: bichito_core::events::EventType::BugCreated,
                    payload,
                    created_at: chrono::Utc::now(),
                };
                bus.publish(&event).await.is_ok()
            }
            Publisher::Nchan { client, base } => client
                .post(format!("{base}/pub/{team}"))
                .header("content-type", "application/json")
                .body(payload)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success()),
        }
    }
}

/// Where subscribers record what they receive: deliveries per step, and gaps.
struct Sink {
    steps: Vec<Mutex<Vec<Delivery>>>,
    gaps: AtomicU64,
}

/// One subscriber's receipt of a message: the message's number in its step, and how long after
/// the bench sent it it arrived.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    seq: u32,
    micros: u32,
}

impl Sink {
    fn record(&self, event: &str, data: &str, now_us: u64) {
        if event == "stream.gap" {
            self.gaps.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (Some(step), Some(seq), Some(sent_us)) = (
            number_after(data, "\"step\":"),
            number_after(data, "\"seq\":"),
            number_after(data, "\"sent_us\":"),
        ) else {
            return;
        };
        let Some(deliveries) = usize::try_from(step)
            .ok()
            .and_then(|step| self.steps.get(step))
        else {
            return;
        };
        let delivery = Delivery {
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            micros: u32::try_from(now_us.saturating_sub(sent_us)).unwrap_or(u32::MAX),
        };
        deliveries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(delivery);
    }
}

/// A step's latency percentiles, in milliseconds. `first_p99` and `fan_out_p99` split each
/// message's latency in two: until its first subscriber had it (publishing, the hop to the
/// server that writes to subscribers, and that first write), and from then until its last
/// subscriber had it (the writes to the rest of the team).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Latencies {
    p50: f64,
    p99: f64,
    p999: f64,
    first_p99: f64,
    fan_out_p99: f64,
}

impl Latencies {
    fn of(deliveries: &[Delivery]) -> Self {
        let mut all: Vec<u32> = deliveries.iter().map(|delivery| delivery.micros).collect();
        all.sort_unstable();
        let mut by_message: std::collections::HashMap<u32, (u32, u32)> =
            std::collections::HashMap::new();
        for delivery in deliveries {
            let (first, last) = by_message
                .entry(delivery.seq)
                .or_insert((delivery.micros, delivery.micros));
            *first = (*first).min(delivery.micros);
            *last = (*last).max(delivery.micros);
        }
        let mut firsts: Vec<u32> = by_message.values().map(|&(first, _)| first).collect();
        let mut fan_outs: Vec<u32> = by_message
            .values()
            .map(|&(first, last)| last - first)
            .collect();
        firsts.sort_unstable();
        fan_outs.sort_unstable();
        Self {
            p50: percentile_ms(&all, 50.0),
            p99: percentile_ms(&all, 99.0),
            p999: percentile_ms(&all, 99.9),
            first_p99: percentile_ms(&firsts, 99.0),
            fan_out_p99: percentile_ms(&fan_outs, 99.0),
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// The message of step `step`, number `seq`, sent at `sent_us`, padded to `bytes`.
fn payload(step: usize, seq: u64, sent_us: u64, bytes: usize) -> String {
    let head = format!(
        "{{\"id\":\"bench-{step}-{seq}\",\"bench\":{{\"step\":{step},\"seq\":{seq},\"sent_us\":{sent_us}}},\"title\":\""
    );
    let padding = bytes.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(padding))
}

/// Opens the subscribers, runs the steps until one fails, closes the subscribers.
async fn run_side(
    args: &LatencyArgs,
    address: &str,
    requests: &[String],
    publisher: Publisher,
    teams: &[String],
    server_cpu: impl Fn() -> Vec<Duration>,
) -> Result<Vec<Step>> {
    let sink = Arc::new(Sink {
        steps: args.rates.iter().map(|_| Mutex::new(Vec::new())).collect(),
        gaps: AtomicU64::new(0),
    });
    let closed = Arc::new(AtomicU64::new(0));
    let mut per_team = vec![0u64; teams.len()];
    let mut followers: Vec<JoinHandle<()>> = Vec::with_capacity(args.subscribers);
    while followers.len() < args.subscribers {
        let batch = (args.subscribers - followers.len()).min(200);
        let mut opening = Vec::with_capacity(batch);
        for index in followers.len()..followers.len() + batch {
            let request = requests[index % requests.len()].clone();
            let address = address.to_owned();
            per_team[index % teams.len()] += 1;
            opening.push(tokio::spawn(
                async move { subscribe(&address, &request).await },
            ));
        }
        for task in opening {
            let subscriber = task.await??;
            let (sink, closed) = (sink.clone(), closed.clone());
            followers.push(tokio::spawn(async move {
                if follow(subscriber, &sink).await.is_err() {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let publisher = Arc::new(publisher);
    let mut steps = Vec::new();
    for (index, &rate) in args.rates.iter().enumerate() {
        let cpu_before = [server_cpu(), vec![cpu_time("self").unwrap_or_default()]].concat();
        let gaps_before = sink.gaps.load(Ordering::Relaxed) + closed.load(Ordering::Relaxed);
        let started = Instant::now();
        let (expected, failed_publishes) =
            publish_step(args, index, rate, &publisher, teams, &per_team).await;
        tokio::time::sleep(args.drain).await;
        let wall = started.elapsed().as_secs_f64();
        let cpu_after = [server_cpu(), vec![cpu_time("self").unwrap_or_default()]].concat();
        let deliveries = std::mem::take(
            &mut *sink.steps[index]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let step = Step {
            rate,
            deliveries_per_second: deliveries.len() as f64 / step_length(args, rate).as_secs_f64(),
            latencies: Latencies::of(&deliveries),
            expected,
            received: deliveries.len() as u64,
            failed_publishes,
            gaps: sink.gaps.load(Ordering::Relaxed) + closed.load(Ordering::Relaxed) - gaps_before,
            cpu: cpu_before
                .iter()
                .zip(&cpu_after)
                .map(|(before, after)| after.saturating_sub(*before).as_secs_f64() / wall)
                .collect(),
        };
        let passed = step.passed();
        steps.push(step);
        if !passed {
            break;
        }
    }
    for follower in followers {
        follower.abort();
    }
    Ok(steps)
}

/// How many messages a step at `rate` publishes: `--step` worth, and at least `--min-messages`.
fn messages_in_step(args: &LatencyArgs, rate: u32) -> u64 {
    let in_step = (f64::from(rate) * args.step.as_secs_f64()).round() as u64;
    in_step.max(args.min_messages)
}

/// How long a step at `rate` publishes for.
fn step_length(args: &LatencyArgs, rate: u32) -> Duration {
    Duration::from_secs_f64(messages_in_step(args, rate) as f64 / f64::from(rate.max(1)))
}

/// Publishes one step's messages on schedule; answers the deliveries they owe and how many
/// publishes failed.
async fn publish_step(
    args: &LatencyArgs,
    index: usize,
    rate: u32,
    publisher: &Arc<Publisher>,
    teams: &[String],
    per_team: &[u64],
) -> (u64, u64) {
    let total = messages_in_step(args, rate);
    let interval = 1.0 / f64::from(rate.max(1));
    let start = Instant::now();
    let mut expected = 0;
    let mut publishes = Vec::with_capacity(total as usize);
    for seq in 0..total {
        let offset = Duration::from_secs_f64(interval * seq as f64);
        tokio::time::sleep_until(start + offset).await;
        let team = seq as usize % teams.len();
        expected += per_team[team];
        let (publisher, team) = (publisher.clone(), teams[team].clone());
        let bytes = args.payload_bytes;
        publishes.push(tokio::spawn(async move {
            // Stamped as it is sent, not with its slot in the schedule: tokio's timer fires up
            // to 1 ms after a deadline, by an offset that depends on where the step started
            // within a millisecond, which moved whole steps' p99 by up to 1 ms.
            let payload = payload(index, seq, unix_us(), bytes);
            publisher.publish(&team, payload).await
        }));
    }
    let mut failed = 0;
    for publish in publishes {
        if !publish.await.unwrap_or(false) {
            failed += 1;
        }
    }
    (expected, failed)
}

/// Reads one subscription until it ends, recording every event.
async fn follow(mut subscriber: Subscriber, sink: &Sink) -> Result<()> {
    let mut reader = EventReader::new(subscriber.chunked);
    let record = |event: super::subscriber::SseEvent<'_>, now_us: u64| {
        sink.record(event.event, event.data, now_us);
    };
    let now_us = unix_us();
    reader.feed(&subscriber.body, |event| record(event, now_us))?;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = subscriber.stream.read(&mut buffer).await?;
        if read == 0 {
            return Err("the server closed the stream".into());
        }
        let now_us = unix_us();
        reader.feed(&buffer[..read], |event| record(event, now_us))?;
    }
}

fn print_report(args: &LatencyArgs, rounds: &[(Vec<Step>, Vec<Step>)]) {
    println!(
        "publish-to-receipt latency: {} subscribers over {} teams, {} per step (at least {} messages) + {} drain, {} B messages, {} round(s)",
        args.subscribers,
        args.teams,
        humantime::format_duration(args.step),
        args.min_messages,
        humantime::format_duration(args.drain),
        args.payload_bytes,
        rounds.len()
    );
    println!();
    for (index, (ours, theirs)) in rounds.iter().enumerate() {
        if rounds.len() > 1 {
            println!("round {}", index + 1);
            println!();
        }
        print_round(ours, theirs);
    }
    if rounds.len() > 1 {
        print_summary(&args.rates, rounds);
    }
}

fn print_round(ours: &[Step], theirs: &[Step]) {
    print_side("bichito sse + NATS", &["bichito sse", "nats-server"], ours);
    print_side("nginx + nchan", &["nginx"], theirs);
    println!("| publish msg/s | bichito p99 ms | nchan p99 ms | ratio bichito/nchan p99 |");
    println!("|---|---|---|---|");
    for (our, their) in ours.iter().zip(theirs) {
        println!(
            "| {} | {:.1} | {:.1} | {:.2} |",
            our.rate,
            our.latencies.p99,
            their.latencies.p99,
            our.latencies.p99 / their.latencies.p99.max(f64::EPSILON)
        );
    }
    println!();
    let capped = |steps: &[Step]| {
        if steps.iter().all(Step::passed) {
            " (every step passed: the most was not reached)"
        } else {
            ""
        }
    };
    let (our_best, their_best) = (most_deliveries(ours), most_deliveries(theirs));
    println!(
        "most deliveries/s with p99 <= 1 s and nothing lost: bichito {our_best:.0}{}, nchan {their_best:.0}{}, ratio bichito/nchan: {:.2}",
        capped(ours),
        capped(theirs),
        our_best / their_best.max(f64::EPSILON)
    );
    println!();
}

fn most_deliveries(steps: &[Step]) -> f64 {
    steps
        .iter()
        .filter(|step| step.passed())
        .map(|step| step.deliveries_per_second)
        .fold(0.0, f64::max)
}

/// The p99 of `rate` in one run; a step that failed, or was not reached because an earlier
/// one failed, counts as infinitely slow.
fn p99_at(steps: &[Step], rate: u32) -> f64 {
    steps
        .iter()
        .find(|step| step.rate == rate && step.passed())
        .map_or(f64::INFINITY, |step| step.latencies.p99)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => values[len / 2],
        len => (values[len / 2 - 1] + values[len / 2]) / 2.0,
    }
}

fn milliseconds(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.1}")
    } else {
        "failed".into()
    }
}

fn print_summary(rates: &[u32], rounds: &[(Vec<Step>, Vec<Step>)]) {
    println!(
        "summary over {} rounds: median p99 (lowest–highest)",
        rounds.len()
    );
    println!();
    println!(
        "| publish msg/s | bichito p99 ms | nchan p99 ms | ratio of medians | rounds where bichito's p99 was lower |"
    );
    println!("|---|---|---|---|---|");
    for &rate in rates {
        let ours: Vec<f64> = rounds.iter().map(|(ours, _)| p99_at(ours, rate)).collect();
        let theirs: Vec<f64> = rounds
            .iter()
            .map(|(_, theirs)| p99_at(theirs, rate))
            .collect();
        let lower = ours.iter().zip(&theirs).filter(|(o, t)| o < t).count();
        let (our_median, their_median) = (median(ours.clone()), median(theirs.clone()));
        let range = |values: &[f64], median: f64| {
            let low = values.iter().copied().fold(f64::INFINITY, f64::min);
            let high = values.iter().copied().fold(0.0, f64::max);
            format!(
                "{} ({}–{})",
                milliseconds(median),
                milliseconds(low),
                milliseconds(high)
            )
        };
        let ratio = if our_median.is_finite() && their_median.is_finite() {
            format!("{:.2}", our_median / their_median.max(f64::EPSILON))
        } else {
            "-".into()
        };
        println!(
            "| {rate} | {} | {} | {ratio} | {lower} of {} |",
            range(&ours, our_median),
            range(&theirs, their_median),
            rounds.len()
        );
    }
    println!();
    let ours = median(
        rounds
            .iter()
            .map(|(ours, _)| most_deliveries(ours))
            .collect(),
    );
    let theirs = median(
        rounds
            .iter()
            .map(|(_, theirs)| most_deliveries(theirs))
            .collect(),
    );
    println!(
        "median of the most deliveries/s with p99 <= 1 s and nothing lost: bichito {ours:.0}, nchan {theirs:.0}, ratio bichito/nchan: {:.2}",
        ours / theirs.max(f64::EPSILON)
    );
}

fn print_side(name: &str, processes: &[&str], steps: &[Step]) {
    println!("{name}");
    println!();
    let cpu_headers: Vec<String> = processes
        .iter()
        .chain(&["bench client"])
        .map(|process| format!("CPU {process} %"))
        .collect();
    println!(
        "| publish msg/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | first receipt p99 ms | fan-out p99 ms | lost | gaps | failed publishes | {} | passed |",
        cpu_headers.join(" | ")
    );
    println!("|{}", "---|".repeat(11 + cpu_headers.len()));
    for step in steps {
        let cpu: Vec<String> = step
            .cpu
            .iter()
            .map(|share| format!("{:.0}", share * 100.0))
            .collect();
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            step.rate,
            step.deliveries_per_second,
            step.latencies.p50,
            step.latencies.p99,
            step.latencies.p999,
            step.latencies.first_p99,
            step.latencies.fan_out_p99,
            step.lost(),
            step.gaps,
            step.failed_publishes,
            cpu.join(" | "),
            if step.passed() { "yes" } else { "no" }
        );
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latencies(p99: f64) -> Latencies {
        Latencies {
            p50: 1.0,
            p99,
            p999: p99,
            first_p99: 1.0,
            fan_out_p99: 1.0,
        }
    }

    #[test]
    fn a_message_s_latency_splits_into_its_first_receipt_and_its_fan_out() {
        let delivery = |seq, micros| Delivery { seq, micros };
        // 100 messages, each received by two subscribers: first at seq ms, then 1 ms later;
        // message 99 first at 99 ms, its second subscriber 50 ms after that.
        let mut deliveries = Vec::new();
        for seq in 0..100 {
            deliveries.push(delivery(seq, seq * 1000));
            let fan_out = if seq == 99 { 50_000 } else { 1000 };
            deliveries.push(delivery(seq, seq * 1000 + fan_out));
        }
        let figures = Latencies::of(&deliveries);
        assert_eq!(figures.first_p99, 98.0);
        assert_eq!(figures.fan_out_p99, 1.0);
        assert_eq!(figures.p50, 50.0);
        assert_eq!(figures.p99, 99.0);
        assert_eq!(figures.p999, 149.0);
        assert!(Latencies::of(&[]).p99.is_nan());
    }

    #[test]
    fn payloads_have_the_requested_size_and_carry_step_and_send_time() {
        let payload = payload(3, 17, 1_700_000_000_123_456, 400);
        assert_eq!(payload.len(), 400);
        assert!(serde_json::from_str::<serde_json::Value>(&payload).is_ok());
        assert_eq!(number_after(&payload, "\"step\":"), Some(3));
        assert_eq!(
            number_after(&payload, "\"sent_us\":"),
            Some(1_700_000_000_123_456)
        );
    }

    #[test]
    fn a_failed_or_unreached_step_counts_as_infinitely_slow_in_the_median() {
        let run = |p99s: &[(u32, f64)]| -> Vec<Step> {
            p99s.iter()
                .map(|&(rate, p99_ms)| Step {
                    rate,
                    deliveries_per_second: 0.0,
                    latencies: latencies(p99_ms),
                    expected: 1,
                    received: 1,
                    failed_publishes: 0,
                    gaps: 0,
                    cpu: Vec::new(),
                })
                .collect()
        };
        let rounds = [
            run(&[(10, 4.0), (20, 2000.0)]),
            run(&[(10, 6.0)]),
            run(&[(10, 5.0), (20, 8.0)]),
        ];
        assert_eq!(
            median(rounds.iter().map(|steps| p99_at(steps, 10)).collect()),
            5.0
        );
        assert!(median(rounds.iter().map(|steps| p99_at(steps, 20)).collect()).is_infinite());
        assert_eq!(median(vec![1.0, 3.0]), 2.0);
    }

    #[test]
    fn a_step_is_held_until_it_has_published_the_least_number_of_messages() {
        let parse = |step: &str, min_messages: &str| {
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                latency: LatencyArgs,
            }
            <Cli as clap::Parser>::parse_from([
                "latency",
                "--step",
                step,
                "--min-messages",
                min_messages,
            ])
            .latency
        };
        let args = parse("5s", "500");
        assert_eq!(messages_in_step(&args, 10), 500);
        assert_eq!(step_length(&args, 10), Duration::from_secs(50));
        assert_eq!(messages_in_step(&args, 400), 2000);
        assert_eq!(step_length(&args, 400), Duration::from_secs(5));
    }

    #[test]
    fn a_step_fails_on_loss_gaps_or_a_slow_p99() {
        let step = |received, gaps, p99_ms| Step {
            rate: 10,
            deliveries_per_second: 0.0,
            latencies: latencies(p99_ms),
            expected: 100,
            received,
            failed_publishes: 0,
            gaps,
            cpu: Vec::new(),
        };
        assert!(step(100, 0, 999.0).passed());
        assert!(!step(99, 0, 5.0).passed());
        assert!(!step(100, 1, 5.0).passed());
        assert!(!step(100, 0, 1001.0).passed());
    }
}
