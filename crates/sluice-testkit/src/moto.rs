//! A moto_server on a free loopback port, for the AWS backends' integration tests.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

use crate::moto_install::ensure_moto_server;
use crate::port::free_port;
use crate::watchdog::Watchdog;

/// moto imports its whole service catalogue at start; a cold start on a busy
/// 2-core CI machine takes several seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto_server. Dropping it stops the server.
pub struct MotoServer {
    port: u16,
    log_path: PathBuf,
    /// Kills moto and removes the log; `None` only while being dropped.
    watchdog: Option<Watchdog>,
    server: Child,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // The watchdog kills moto while moto is still our unreaped child, so the
        // pid it signals cannot have been reused; then we reap it.
        drop(self.watchdog.take());
        let _ = self.server.wait();
    }
}

impl MotoServer {
    /// Installs moto on first use, starts a server and waits until it answers HTTP.
    ///
    /// Panics with moto's output if the server does not come up.
    pub async fn start() -> MotoServer {
        match Self::try_start().await {
            Ok(server) => server,
            Err(e) => panic!("sluice-testkit: could not start moto_server: {e}"),
        }
    }

    /// One server for the whole test binary, started by the first caller. It stops
    /// when the process exits; tests sharing it must name resources with
    /// [`crate::unique_name`].
    pub async fn shared() -> &'static MotoServer {
        static SHARED: OnceCell<MotoServer> = OnceCell::const_new();
        SHARED.get_or_init(Self::start).await
    }

    /// The base URL to give the AWS SDK as its endpoint: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn try_start() -> io::Result<MotoServer> {
        let moto_server = tokio::task::spawn_blocking(ensure_moto_server).await??;
        // The free port can be taken between our probe and moto's bind; moto then
        // exits at once, and a new port is worth a second try.
        let mut attempt = 1;
        loop {
            let mut moto = Self::spawn(&moto_server)?;
            match moto.wait_until_answering().await {
                Ok(()) => return Ok(moto),
                Err(StartError::Exited(_)) if attempt < 3 => attempt += 1,
                Err(StartError::Exited(e) | StartError::Other(e)) => return Err(e),
            }
        }
    }

    fn spawn(moto_server: &Path) -> io::Result<MotoServer> {
        let port = free_port()?;
        // moto logs every request; a file (not a pipe nobody drains) cannot fill up
        // and block it, and keeps the output for the error message.
        let (log, log_path) = tempfile::Builder::new()
            .prefix("sluice-moto-")
            .suffix(".log")
            .tempfile()?
            .keep()
            .map_err(|e| e.error)?;
        let mut server = Command::new(moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", moto_server.display())))?;
        let watchdog = Watchdog::spawn(
            r#"kill -KILL "$1"; rm -f "$2""#,
            &[OsStr::new(&server.id().to_string()), log_path.as_os_str()],
        )
        .inspect_err(|_| {
            let _ = server.kill();
            let _ = server.wait();
            let _ = fs::remove_file(&log_path);
        })?;
        Ok(MotoServer {
            port,
            log_path,
            watchdog: Some(watchdog),
            server,
        })
    }

    async fn wait_until_answering(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.server.try_wait().map_err(StartError::Other)? {
                return Err(StartError::Exited(io::Error::other(format!(
                    "moto_server exited ({status}) before answering; its output:\n{}",
                    self.log()
                ))));
            }
            if answers_http(self.port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "moto_server did not answer on port {} within {START_TIMEOUT:?}; its output:\n{}",
                        self.port,
                        self.log()
                    ),
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

enum StartError {
    /// The server died; worth retrying on another port.
    Exited(io::Error),
    Other(io::Error),
}

/// Whether an HTTP request to moto's own API gets any HTTP response: moto binds
/// its port before it has loaded its services, so a TCP connect is not enough.
async fn answers_http(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                b"GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        io::Result::Ok(head.starts_with(b"HTTP/1."))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), exchange).await,
        Ok(Ok(true))
    )
}
