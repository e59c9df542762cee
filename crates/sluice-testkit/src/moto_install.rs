//! A Python virtualenv with `moto[server]`, installed once and shared by every test
//! binary of the workspace.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::command::run;

/// moto 5.x is the version docs/AWS-EMULATOR.md was checked against; a new major
/// version is a deliberate upgrade, not something a fresh cache picks up.
const MOTO_REQUIREMENT: &str = "moto[server]>=5,<6";

/// Returns the path of `moto_server`, installing it first if needed.
///
/// Several test binaries may start at once, so installers take an exclusive lock
/// on a file beside the venv; the one that gets it installs, the others wait and
/// then see the marker. The marker is written last and names the requirement, so
/// a half-finished install (a killed run) or an older requirement is redone.
pub(crate) fn ensure_moto_server() -> io::Result<PathBuf> {
    let venv = venv_dir();
    let marker = venv.join(".sluice-install-complete");
    let moto_server = venv.join("bin").join("moto_server");
    if is_installed(&marker) {
        return Ok(moto_server);
    }

    let cache = venv.parent().expect("the venv dir has a parent");
    fs::create_dir_all(cache)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join("moto-venv.lock"))?;
    lock.lock()?;
    if is_installed(&marker) {
        return Ok(moto_server);
    }
    if venv.exists() {
        fs::remove_dir_all(&venv)?;
    }

    eprintln!(
        "sluice-testkit: installing {MOTO_REQUIREMENT} into {} (first use only)",
        venv.display()
    );
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MOTO_REQUIREMENT,
        ]),
        "pip install moto[server]",
    )?;
    fs::write(&marker, MOTO_REQUIREMENT)?;
    Ok(moto_server)
}

fn is_installed(marker: &Path) -> bool {
    fs::read_to_string(marker).is_ok_and(|r| r == MOTO_REQUIREMENT)
}

/// `$SLUICE_TEST_CACHE/moto-venv`, or `<workspace root>/.cache/moto-venv` (a path
/// .gitignore already covers).
fn venv_dir() -> PathBuf {
    match std::env::var_os("SLUICE_TEST_CACHE") {
        Some(cache) => PathBuf::from(cache).join("moto-venv"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the crate sits in <workspace>/crates/")
            .join(".cache")
            .join("moto-venv"),
    }
}
