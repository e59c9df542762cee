//! Cleanup that runs when the test process is gone, however it went.
//!
//! A watchdog is `sh` blocked in `read` on a pipe whose only write end this
//! process holds. The kernel closes that end when the process exits for any
//! reason: a normal exit, `std::process::exit` skipping destructors, an abort, a
//! SIGKILL. `read` then hits EOF and the shell runs the cleanup script (kill the
//! server, stop PostgreSQL, remove temporary files). Dropping the handle closes
//! the pipe the same way, so a dropped server and a crashed test take one path.
//!
//! Why not `prctl(PR_SET_PDEATHSIG)`: the signal fires when the *thread* that
//! spawned the child exits, and tokio starts servers from worker or blocking-pool
//! threads that come and go, so a server could die in the middle of a test. It
//! also can only signal, not run `pg_ctl stop` or `rm -rf`.
//!
//! Rust opens the pipe close-on-exec, so no other child (a server, another
//! watchdog) inherits the write end and keeps it open past our death.

use std::ffi::OsStr;
use std::io;
use std::process::{Child, Command, Stdio};

pub(crate) struct Watchdog {
    shell: Child,
}

impl Watchdog {
    /// Starts a watchdog that runs the shell script `cleanup`, with `args` as
    /// `$1`, `$2`, ..., once this handle is dropped or this process dies.
    pub(crate) fn spawn(cleanup: &str, args: &[&OsStr]) -> io::Result<Self> {
        // Ctrl-C on `cargo test` signals the whole process group; the watchdog
        // ignores it so that it outlives the test process and still cleans up.
        let script = format!("trap '' INT HUP TERM; read _; {cleanup}");
        let shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sluice-testkit-watchdog")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { shell })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing our end is the signal; waiting makes the cleanup finished (port
        // closed, files gone) by the time the server's handle is dropped.
        drop(self.shell.stdin.take());
        let _ = self.shell.wait();
    }
}
