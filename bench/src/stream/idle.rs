//! Idle connections held and resident memory per connection, at rising connection counts.
//! A connection counts once its response head says 200. Memory is resident memory growth over
//! a baseline taken after one connection was opened and closed (a warm-up).

use super::sides::{BichitoSide, NchanSide, Programs, WorkFolder, team_names};
use super::subscriber::subscribe;
use crate::Result;
use clap::Args;
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connection counts to measure at, rising; connections stay open from one to the next.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000, 10000, 18000])]
    pub counts: Vec<usize>,
    /// Teams the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub teams: usize,
    #[command(flatten)]
    pub programs: Programs,
}

/// Memory at each connection count, for one side.
struct Ramp {
    baseline: u64,
    at: Vec<(usize, u64)>,
}

pub async fn idle(args: IdleArgs) -> Result<()> {
    let work = WorkFolder::create("idle")?;
    let teams = team_names(args.teams);
    let ours = {
        let side = BichitoSide::start(&args.programs, &teams).await?;
        let requests: Vec<String> = teams.iter().map(|team| side.request(team)).collect();
        let ramp = ramp(&side.address, &requests, &args.counts, || side.memory()).await;
        side.stop().await;
        ramp?
    };
    let theirs = {
        let side = NchanSide::start(&args.programs, &work.0).await?;
        let requests: Vec<String> = teams.iter().map(|team| side.request(team)).collect();
        let ramp = ramp(&side.address, &requests, &args.counts, || side.memory()).await;
        side.stop().await;
        ramp?
    };
    println!(
        "idle SSE connections over {} teams: resident memory growth per connection",
        args.teams
    );
    println!();
    println!(
        "| connections | bichito sse + NATS MiB | per connection KiB | nginx + nchan MiB | per connection KiB | ratio bichito/nchan |"
    );
    println!("|---|---|---|---|---|---|");
    for ((count, our_rss), (_, their_rss)) in ours.at.iter().zip(&theirs.at) {
        let per = |rss: u64, base: u64| (rss.saturating_sub(base)) as f64 / *count as f64 / 1024.0;
        let our_per = per(*our_rss, ours.baseline);
        let their_per = per(*their_rss, theirs.baseline);
        println!(
            "| {count} | {:.1} | {our_per:.2} | {:.1} | {their_per:.2} | {:.2} |",
            *our_rss as f64 / 1048576.0,
            *their_rss as f64 / 1048576.0,
            our_per / their_per.max(f64::EPSILON)
        );
    }
    Ok(())
}

/// Opens connections up to each count in turn, measuring `memory` after each step.
async fn ramp(
    address: &str,
    requests: &[String],
    counts: &[usize],
    memory: impl Fn() -> u64,
) -> Result<Ramp> {
    // One connection first, opened and closed before the baseline: what a server does once on
    // its first request (bichito faults in about 1.7 MiB of its own code then, per smaps) is
    // not memory per connection.
    drop(subscribe(address, &requests[0]).await?.stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = memory();
    let mut open: Vec<TcpStream> = Vec::new();
    let mut at = Vec::new();
    for &count in counts {
        while open.len() < count {
            let batch = (count - open.len()).min(200);
            let mut opening = Vec::with_capacity(batch);
            for index in open.len()..open.len() + batch {
                let request = requests[index % requests.len()].clone();
                let address = address.to_owned();
                opening.push(tokio::spawn(
                    async move { subscribe(&address, &request).await },
                ));
            }
            for task in opening {
                open.push(task.await??.stream);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        at.push((count, memory()));
    }
    drop(open);
    Ok(Ramp { baseline, at })
}
