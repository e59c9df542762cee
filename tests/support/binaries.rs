//! The stage binaries under test, built from the current sources.
//!
//! `env!("CARGO_BIN_EXE_<name>")` only exists for binaries of the test's own
//! package, and cargo cannot depend on another package's binaries on stable.
//! Taking whatever lies next to the test executable in the target directory
//! would test a stale binary whenever only the test crate was rebuilt. So the
//! first caller runs `cargo build --bins` for the stage packages (a no-op when
//! they are fresh), with the profile this crate was built with, and takes
//! each binary's path from cargo's JSON messages: right whatever the target
//! directory, profile or platform.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The packages whose binaries the tests run.
const PACKAGES: &[&str] = &[
    "sluice-collector",
    "sluice-archiver",
    "sluice-transcoder",
    "sluice-loader",
    "sluice-cli",
];

pub struct Binaries {
    pub collector: PathBuf,
    pub archiver: PathBuf,
    pub transcoder: PathBuf,
    pub loader: PathBuf,
    pub sluice: PathBuf,
}

/// Builds the binaries on first use; panics with cargo's verdict if that fails.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let mut built = build();
        let mut take = |name: &str| {
            built.remove(name).unwrap_or_else(|| {
                panic!("cargo build produced no binary {name:?} (has it been renamed?)")
            })
        };
        Binaries {
            collector: take("collector"),
            archiver: take("stream-archiver"),
            transcoder: take("transcoder"),
            loader: take("warehouse-loader"),
            sluice: take("sluice"),
        }
    })
}

/// The workspace root: this crate lives in `<root>/tests`.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in <workspace>/tests")
}

fn build() -> HashMap<String, PathBuf> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(workspace_root()).args([
        "build",
        "--bins",
        "--message-format=json-render-diagnostics",
    ]);
    for package in PACKAGES {
        cargo.args(["-p", package]);
    }
    // A benchmark (built optimised) must measure optimised stages.
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    eprintln!("sluice-e2e: building the stage binaries ({PACKAGES:?})");
    // Cargo's progress and errors go straight to our stderr.
    let output = cargo
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build of the stage binaries failed ({})",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|artifact| {
            let executable = artifact["executable"].as_str()?;
            let name = artifact["target"]["name"].as_str()?;
            Some((name.to_owned(), PathBuf::from(executable)))
        })
        .collect()
}
