//! A browser script of `tests/browser/` (node + playwright-core, Debian's Chromium), driven
//! line by line: one JSON command on its stdin, one JSON answer on its stdout.

use super::browser_node_path;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

pub struct Browser {
    stdin: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    _child: tokio::process::Child,
}

impl Browser {
    /// Runs `tests/browser/{script}` with `args`, finding `packages` where the test script
    /// installed them; killed when dropped.
    pub fn start(script: &str, args: &[&std::ffi::OsStr], packages: &[&str]) -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/browser")
            .join(script);
        let mut child = tokio::process::Command::new("node")
            .arg(path)
            .args(args)
            .env("NODE_PATH", browser_node_path(packages))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (scripts/test.sh installs Node.js)");
        let stdin = child.stdin.take().expect("stdin");
        let answers = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Browser {
            stdin,
            answers,
            _child: child,
        }
    }

    /// The next answer (at most 60 s away).
    pub async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.answers.next_line())
            .await
            .expect("the browser answers within 60 s")
            .expect("read")
            .expect("the browser is still there (see its stderr)");
        serde_json::from_str(&line).expect("one JSON line")
    }

    pub async fn ask(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write");
        self.answer().await
    }

    /// Has the script check its page with axe-core (`{"axe": true, "dark", "width"}`) light
    /// and dark at `wide` and at 360 px: fails on any WCAG 2.1 A/AA violation, or on content
    /// wider than the window.
    pub async fn assert_accessible(&mut self, wide: u32) {
        for (dark, width) in [(false, wide), (true, wide), (false, 360), (true, 360)] {
            let checked = self
                .ask(serde_json::json!({"axe": true, "dark": dark, "width": width}))
                .await;
            assert_eq!(
                checked["violations"],
                serde_json::json!([]),
                "dark {dark}, {width} px: {checked}"
            );
            assert!(
                checked["overflow"]
                    .as_f64()
                    .is_some_and(|overflow| overflow <= 0.0),
                "dark {dark}, {width} px: {checked}"
            );
        }
    }
}
