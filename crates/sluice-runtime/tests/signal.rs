//! SIGTERM resolves shutdown_signal. Its own test binary: the handler, once
//! installed, stays for the life of the process.

use std::process::Command;
use std::time::Duration;

use sluice_runtime::shutdown_signal;

#[tokio::test]
async fn sigterm_resolves_shutdown_signal() {
    let signal = shutdown_signal().unwrap();
    // Sent before anyone polls `signal`: installing the handler up front is
    // what keeps this from being lost or killing the process.
    let status = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(5), signal)
        .await
        .expect("SIGTERM resolves the future");
}
