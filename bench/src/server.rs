//! The `bichito` process under test: started from its binary, optionally pinned to a CPU, and
//! found at the address it prints.

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub base: String,
    pub pid: String,
}

impl Server {
    /// Starts `binary args…` (under `taskset -c cpu` when given) and waits for its
    /// `listening on` line.
    pub async fn start(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cpu: Option<usize>,
    ) -> Result<Self> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(cpu.to_string()).arg(binary);
                taskset
            }
            None => Command::new(binary),
        };
        command
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let pid = child.id().ok_or("the server exited at once")?.to_string();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(base) = line.strip_prefix("listening on ") {
                    return Ok::<_, std::io::Error>(Some(base.to_owned()));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|_| "the server did not print `listening on` within 60 s")??
        .ok_or("the server exited before listening")?;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, base, pid })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The `bichito` binary: `explicit`, or the one next to this benchmark's own binary (both are
/// built into the same target folder).
pub fn bichito_binary(explicit: Option<PathBuf>) -> Result<PathBuf> {
    binary("bichito", explicit)
}

/// The binary `name`: `explicit`, or the one next to this benchmark's own binary.
pub fn binary(name: &str, explicit: Option<PathBuf>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        None => {
            let own = std::env::current_exe()?;
            let folder = own.parent().ok_or("no folder for this binary")?;
            // Test binaries live one level down, in `deps/`.
            let candidates = [folder.join(name), folder.join("..").join(name)];
            candidates
                .into_iter()
                .find(|candidate| candidate.exists())
                .ok_or_else(|| format!("no {name} binary next to this one: cargo build --release -p {name}, or pass its path"))?
        }
    };
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()).into());
    }
    Ok(path)
}
