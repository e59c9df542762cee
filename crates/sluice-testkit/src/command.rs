//! Running setup commands with their output kept for the error message.

use std::io;
use std::process::Command;

/// Runs `cmd` to completion; on failure the error carries its output, since that
/// is the only clue a test author gets when initdb or pip fails on CI.
pub(crate) fn run(cmd: &mut Command, what: &str) -> io::Result<()> {
    let output = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("could not run {what}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    )))
}
