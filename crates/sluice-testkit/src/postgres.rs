//! A PostgreSQL server for tests: the one `DATABASE_URL` names, or a throwaway
//! cluster in a temporary directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use crate::command::run;
use crate::names::unique_parts;
use crate::port::free_port;
use crate::watchdog::Watchdog;

/// How long `pg_ctl start -w` may take before it gives up.
const START_TIMEOUT_SECS: &str = "60";

/// A PostgreSQL server. Dropping it stops a throwaway server and removes its files;
/// a server named by `DATABASE_URL` is left alone.
pub struct Postgres {
    url: String,
    /// Stops the throwaway server and removes its directory; `None` for
    /// `DATABASE_URL`.
    _watchdog: Option<Watchdog>,
}

impl Postgres {
    /// Uses `DATABASE_URL` if set, else starts a throwaway server on a free
    /// loopback port, and waits until it accepts connections.
    ///
    /// Panics with the server's output if it does not come up.
    pub async fn start() -> Postgres {
        let postgres = match std::env::var("DATABASE_URL") {
            Ok(url) => Ok(Postgres {
                url,
                _watchdog: None,
            }),
            Err(_) => match tokio::task::spawn_blocking(start_cluster).await {
                Ok(started) => started,
                Err(join) => Err(io::Error::other(join)),
            },
        };
        let postgres =
            postgres.unwrap_or_else(|e| panic!("sluice-testkit: could not start PostgreSQL: {e}"));
        if let Err(e) = connect(&postgres.url).await {
            panic!(
                "sluice-testkit: PostgreSQL at {} refuses connections: {e}",
                postgres.url
            );
        }
        postgres
    }

    /// One server for the whole test binary, started by the first caller. It stops
    /// when the process exits; tests sharing it should each take a
    /// [`Postgres::fresh_database`].
    pub async fn shared() -> &'static Postgres {
        static SHARED: OnceCell<Postgres> = OnceCell::const_new();
        SHARED.get_or_init(Self::start).await
    }

    /// The URL of the server's maintenance database (`postgres://...`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates a database no other test uses and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let (pid, nanos, n) = unique_parts();
        let name = format!("sluice_test_{pid}_{nanos}_{n}");
        let client = connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("sluice-testkit: connecting to {}: {e}", self.url));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("sluice-testkit: CREATE DATABASE {name}: {e}"));
        with_database(&self.url, &name)
    }
}

/// Connects and runs `SELECT 1`; the connection lives as long as the client.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    client.simple_query("SELECT 1").await?;
    Ok(client)
}

/// `url` with its database replaced by `database`. Only the URL form of a
/// connection string is supported; that is what `DATABASE_URL` holds.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Starts a cluster in a new temporary directory; blocking.
fn start_cluster() -> io::Result<Postgres> {
    let bin = find_bin_dir()?;
    let pg_ctl = bin.join("pg_ctl");
    // Kept, not auto-deleted: the watchdog removes it, after stopping the server,
    // even when this process dies.
    let dir = tempfile::Builder::new()
        .prefix("sluice-pg-")
        .tempdir()?
        .keep();
    let data = dir.join("data");
    let socket_dir = dir.join("socket");
    let log = dir.join("server.log");
    // initdb and postgres refuse to run as root (CI runs as root): then the
    // directory goes to the `postgres` user and every server command runs as it.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_postgres_user = unsafe { libc::geteuid() } == 0;
    let run_as = if as_postgres_user {
        "runuser -u postgres -- "
    } else {
        ""
    };
    // Started before the cluster exists, so a death during initdb or start is
    // cleaned up too; `pg_ctl stop` just fails if there is no server yet.
    let watchdog = Watchdog::spawn(
        &format!(r#"{run_as}"$1" stop -D "$2" -m immediate -w; rm -rf "$3""#),
        &[pg_ctl.as_os_str(), data.as_os_str(), dir.as_os_str()],
    )
    .inspect_err(|_| {
        let _ = fs::remove_dir_all(&dir);
    })?;
    fs::create_dir(&socket_dir)?;
    if as_postgres_user {
        run(
            Command::new("chown").args(["-R", "postgres:"]).arg(&dir),
            "chown to postgres",
        )?;
    }
    let server_command = |program: &Path| {
        let mut command = if as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be able to enter the test's working directory.
        command.current_dir(&dir);
        command
    };

    run(
        server_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync"),
        "initdb",
    )?;

    // The free port can be taken before postgres binds it; then try another.
    let mut attempt = 1;
    let port = loop {
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c fsync=off -c max_connections=200",
            socket_dir.display()
        );
        let started = run(
            server_command(&pg_ctl)
                .arg("start")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", START_TIMEOUT_SECS, "-o", &options]),
            "pg_ctl start",
        );
        match started {
            Ok(()) => break port,
            Err(_) if attempt < 3 => attempt += 1,
            Err(e) => {
                let server_log = fs::read_to_string(&log).unwrap_or_default();
                return Err(io::Error::other(format!("{e}\nserver log:\n{server_log}")));
            }
        }
    };
    Ok(Postgres {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        _watchdog: Some(watchdog),
    })
}

/// The directory holding `initdb` and `pg_ctl`: the PATH first, then Debian's
/// versioned `/usr/lib/postgresql/<version>/bin`, highest version.
fn find_bin_dir() -> io::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let mut debian: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    debian.sort();
    on_path
        .chain(debian.into_iter().rev().map(|(_, bin)| bin))
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "initdb and pg_ctl are neither on the PATH nor in /usr/lib/postgresql/*/bin \
                 (install PostgreSQL, or set DATABASE_URL)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "t2"), "postgres://h:1/t2");
        assert_eq!(with_database("postgresql://h/", "t3"), "postgresql://h/t3");
    }
}
