//! Single-machine mode as a user runs it: `sluice up` as one process on a
//! fresh data directory, and its embedded warehouse read back with
//! `sluice sql --csv` while it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binaries::binaries;
use crate::pipeline::free_address;
use crate::sender::CollectorAddress;
use crate::stage::Stage;

pub struct SingleMachine {
    pub up: Stage,
    pub address: CollectorAddress,
    pub data_dir: PathBuf,
    _dir: TempDir,
}

impl SingleMachine {
    /// `sluice up` on free ports, once its collector listens.
    pub async fn start() -> SingleMachine {
        let dir = tempfile::tempdir().expect("a data directory");
        let address = CollectorAddress {
            http: free_address(),
            grpc: free_address(),
            // `sluice up` accepts any write key until keys are configured.
            write_key: "wk_any".to_owned(),
        };
        let ports = [
            address.http.port().to_string(),
            address.grpc.port().to_string(),
            free_address().port().to_string(),
        ];
        let data_dir = dir.path().join("data");
        let up = Stage::start(
            "sluice-up",
            &binaries().sluice,
            &[
                "up",
                "--data-dir",
                data_dir.to_str().expect("a UTF-8 path"),
                "--http-port",
                &ports[0],
                "--grpc-port",
                &ports[1],
                "--admin-port",
                &ports[2],
            ],
            Vec::new(),
            dir.path(),
        );
        let mut single = SingleMachine {
            up,
            address,
            data_dir,
            _dir: dir,
        };
        single.wait_until_listening().await;
        single
    }

    /// Waits until both collector ports accept connections (after a start
    /// or a restart).
    pub async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for address in [self.address.http, self.address.grpc] {
            while tokio::net::TcpStream::connect(address).await.is_err() {
                self.up.assert_running();
                assert!(
                    Instant::now() < deadline,
                    "sluice up does not listen on {address}; its log:\n{}",
                    self.up.log_tail(40)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub fn warehouse_path(&self) -> PathBuf {
        self.data_dir.join("warehouse.db")
    }

    /// The rows of `query` (without the header) through `sluice sql --csv`,
    /// or `None` while the table it reads does not exist yet.
    pub fn sql(&self, query: &str) -> Option<Vec<Vec<String>>> {
        let data_dir = self.data_dir.to_str().expect("a UTF-8 path");
        let out = Command::new(&binaries().sluice)
            .args(["sql", "--data-dir", data_dir, "--csv", query])
            .output()
            .expect("run sluice sql");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let not_yet = stderr.contains("no such table") || stderr.contains("no warehouse at");
            assert!(not_yet, "sluice sql {query:?} failed: {stderr}");
            return None;
        }
        let text = String::from_utf8(out.stdout).expect("UTF-8 CSV");
        Some(parse_csv(&text).into_iter().skip(1).collect())
    }

    /// How many rows each id has in `tables` together.
    pub fn id_counts(&self, tables: &[&str]) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for table in tables {
            for row in self
                .sql(&format!("SELECT id FROM {table}"))
                .unwrap_or_default()
            {
                *counts.entry(row[0].clone()).or_default() += 1;
            }
        }
        counts
    }

    /// Waits until `tables` hold at least `expected` rows and have not
    /// changed for a few seconds (so late duplicates get their chance to
    /// show), or `timeout` passes. Returns the last count.
    pub async fn wait_for_rows(&self, tables: &[&str], expected: u64, timeout: Duration) -> u64 {
        const SETTLE: Duration = Duration::from_secs(3);
        let started = Instant::now();
        let (mut last, mut changed_at) = (u64::MAX, Instant::now());
        loop {
            let count = self.id_counts(tables).values().sum();
            if count != last {
                (last, changed_at) = (count, Instant::now());
            }
            let settled = count >= expected && changed_at.elapsed() >= SETTLE;
            if settled || started.elapsed() >= timeout {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// RFC 4180 CSV, as `sluice sql --csv` prints it.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}
