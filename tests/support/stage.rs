//! One stage as a child process: configured by environment variables only
//! (as a container would be), its output in a log file that survives
//! restarts, killed with SIGKILL or stopped with SIGTERM, and never left
//! running after the test process is gone.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a stage gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Stage {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, OsString)>,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
    kills: u32,
    watchdog: Watchdog,
}

impl Stage {
    /// Starts `program` with `args` and only `env` (plus `PATH`) in its
    /// environment, appending its stdout and stderr to `<log_dir>/<name>.log`.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: Vec<(String, OsString)>,
        log_dir: &Path,
    ) -> Stage {
        let mut stage = Stage {
            name,
            program: program.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            log_path: log_dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
            kills: 0,
            watchdog: Watchdog::spawn(),
        };
        stage.restart();
        stage
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How often it was killed with SIGKILL.
    pub fn kills(&self) -> u32 {
        self.kills
    }

    /// Starts the process again (it must not be running).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the stage log");
        // Marks where each run's output begins, for reading the log after a
        // crash test.
        writeln!(log, "=== {} start #{} ===", self.name, self.starts).expect("write the stage log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        self.watchdog.watch(Some(child.id()));
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
            self.watchdog.watch(None);
            self.kills += 1;
        }
    }

    /// SIGTERM (what Ctrl-C or Kubernetes sends), then waits for the
    /// graceful exit; returns its status, or `None` if it was not running.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on our own unreaped child, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait().expect("wait for a stage") {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    break child.wait().expect("wait for a stage");
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.watchdog.watch(None);
        Some(status)
    }

    /// Panics, with the end of its log, if the process exited on its own.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the stage was started");
        if let Some(status) = child.try_wait().expect("poll a stage") {
            panic!(
                "{} exited on its own ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(60)
            );
        }
    }

    /// The last `lines` lines of its log, all runs included.
    pub fn log_tail(&self, lines: usize) -> String {
        self.last_lines(lines, |_| true)
    }

    /// The last `lines` lines of its log that are not routine: warnings,
    /// errors, panics, and where each run started.
    pub fn log_problems(&self, lines: usize) -> String {
        self.last_lines(lines, |line| {
            !(line.contains(r#""level":"INFO""#) || line.contains(r#""level":"DEBUG""#))
        })
    }

    fn last_lines(&self, lines: usize, wanted: impl Fn(&str) -> bool) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("(no log: {e})"));
        let all: Vec<&str> = text.lines().filter(|l| wanted(l)).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills the stage's current process if the test process dies without
/// dropping the [`Stage`] (a panic that aborts, a SIGKILL, a timeout in CI),
/// so no collector keeps its ports and no loader keeps writing.
///
/// The same mechanism as sluice-testkit's (private) watchdog: `sh` reading a
/// pipe whose write end only we hold, which the kernel closes however we
/// exit. Here the pid changes with every restart, so the shell reads a line
/// per change (the pid, or `-` once the process is reaped, so that a pid the
/// system may have reused is never signalled) and acts on the last one.
struct Watchdog {
    shell: Child,
    /// `None` only while being dropped.
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    fn spawn() -> Watchdog {
        let script = r#"trap '' INT HUP TERM
last=-
while read -r pid; do last=$pid; done
[ "$last" = - ] || kill -KILL "$last""#;
        let mut shell = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the stage watchdog");
        let pipe = shell.stdin.take();
        Watchdog { shell, pipe }
    }

    fn watch(&mut self, pid: Option<u32>) {
        let line = pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let pipe = self.pipe.as_mut().expect("the watchdog is alive");
        writeln!(pipe, "{line}").expect("write to the stage watchdog");
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The stage has been reaped and `-` written by now (the Stage's
        // drop kills it first); closing the pipe ends the shell.
        drop(self.pipe.take());
        let _ = self.shell.wait();
    }
}
