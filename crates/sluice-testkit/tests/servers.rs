//! The servers start, answer, and are gone after drop and after the test process
//! is killed.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sluice_testkit::{MotoServer, Postgres, unique_name};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// Set in the child process of `servers_are_stopped_when_the_test_process_is_killed`.
const CHILD_ENV: &str = "SLUICE_TESTKIT_KILLED_CHILD";

fn moto_addr(moto: &MotoServer) -> SocketAddr {
    moto.endpoint()
        .strip_prefix("http://")
        .expect("endpoint is http")
        .parse()
        .expect("endpoint is host:port")
}

fn postgres_addr(url: &str) -> SocketAddr {
    let config = tokio_postgres::Config::from_str(url).expect("valid url");
    let Host::Tcp(host) = &config.get_hosts()[0] else {
        panic!("tcp host expected in {url}")
    };
    SocketAddr::new(host.parse().expect("ip"), config.get_ports()[0])
}

fn is_listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Polls, since a watchdog runs its cleanup after the process it watched is gone.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn moto_answers_and_is_gone_after_drop() {
    let moto = MotoServer::start().await;
    let addr = moto_addr(&moto);
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));

    // Real S3 calls answered by moto itself, not just an open port.
    let bucket = unique_name("testkit");
    let created = http(addr, "PUT", &format!("/{bucket}"));
    assert!(created.starts_with("HTTP/1.1 200"), "{created}");
    let listed = http(addr, "GET", "/");
    assert!(
        listed.contains(&format!("<Name>{bucket}</Name>")),
        "{listed}"
    );

    drop(moto);
    assert!(!is_listening(addr), "moto still listens on {addr}");
}

#[tokio::test]
async fn shared_moto_is_one_server() {
    let a = MotoServer::shared().await;
    let b = MotoServer::shared().await;
    assert_eq!(a.endpoint(), b.endpoint());
    assert!(is_listening(moto_addr(a)));
}

#[tokio::test]
async fn postgres_fresh_database_answers_and_is_gone_after_drop() {
    let postgres = Postgres::start().await;
    let url = postgres.fresh_database().await;
    let other = postgres.fresh_database().await;
    assert_ne!(url, other);

    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(url.ends_with(&format!("/{db}")), "{url} vs {db}");
    drop(client);
    connection.await.unwrap().unwrap();

    if std::env::var_os("DATABASE_URL").is_none() {
        let addr = postgres_addr(postgres.url());
        drop(postgres);
        assert!(!is_listening(addr), "postgres still listens on {addr}");
    }
}

#[test]
fn unique_names_differ_and_fit_aws_rules() {
    let a = unique_name("events");
    let b = unique_name("events");
    assert_ne!(a, b);
    assert!(a.starts_with("events-"));
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

/// Runs `killed_child` in a new process, kills it with SIGKILL (no destructor, no
/// atexit), then checks that the watchdogs stopped both servers and removed
/// PostgreSQL's directory.
#[test]
fn servers_are_stopped_when_the_test_process_is_killed() {
    if std::env::var_os("DATABASE_URL").is_some() {
        return; // no throwaway PostgreSQL to watch
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["killed_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut moto = None;
    let mut postgres = None;
    let mut data_dir = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("MOTO=") {
            moto = Some(v.parse::<SocketAddr>().unwrap());
        } else if let Some(v) = line.strip_prefix("POSTGRES=") {
            postgres = Some(postgres_addr(v));
        } else if let Some(v) = line.strip_prefix("DATA_DIR=") {
            data_dir = Some(PathBuf::from(v));
        } else if line == "READY" {
            break;
        }
    }
    let (moto, postgres, data_dir) = (
        moto.expect("child reported moto"),
        postgres.expect("child reported postgres"),
        data_dir.expect("child reported the data dir"),
    );
    assert!(is_listening(moto) && is_listening(postgres) && data_dir.exists());

    child.kill().unwrap();
    child.wait().unwrap();

    eventually("moto stops", || !is_listening(moto));
    eventually("postgres stops", || !is_listening(postgres));
    eventually("the data dir is removed", || !data_dir.exists());
}

/// The child of `servers_are_stopped_when_the_test_process_is_killed`: starts
/// both servers, reports them, and waits to be killed.
#[tokio::test]
#[ignore = "run by servers_are_stopped_when_the_test_process_is_killed"]
async fn killed_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let moto = MotoServer::shared().await;
    let postgres = Postgres::shared().await;
    let (client, connection) = tokio_postgres::connect(postgres.url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let data_dir: String = client
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    println!("MOTO={}", moto.endpoint().trim_start_matches("http://"));
    println!("POSTGRES={}", postgres.url());
    println!("DATA_DIR={data_dir}");
    println!("READY");
    std::future::pending::<()>().await;
}

fn http(addr: SocketAddr, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
