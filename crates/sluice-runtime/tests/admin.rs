//! The admin endpoints over a real socket.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{IntCounter, Registry};
use sluice_runtime::{Readiness, serve_admin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// One request on a new connection; returns (status, headers, body).
async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

#[tokio::test]
async fn endpoints_readiness_and_graceful_stop() {
    let registry = Registry::new();
    let accepted = IntCounter::new("sluice_events_accepted_total", "events accepted").unwrap();
    registry.register(Box::new(accepted.clone())).unwrap();
    accepted.inc_by(3);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let readiness = Readiness::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_admin(
        listener,
        registry,
        readiness.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let (status, head, body) = request(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("sluice_events_accepted_total 3"), "{body}");

    let (status, _, body) = request(addr, "GET", "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    assert_eq!(request(addr, "GET", "/readyz").await.0, 503);
    readiness.set_ready(true);
    assert_eq!(request(addr, "GET", "/readyz").await.0, 200);
    readiness.set_ready(false);
    assert_eq!(request(addr, "GET", "/readyz").await.0, 503);

    assert_eq!(request(addr, "GET", "/nope").await.0, 404);
    assert_eq!(request(addr, "POST", "/healthz").await.0, 405);

    // An idle keep-alive connection must not hold shutdown up.
    let _idle = TcpStream::connect(addr).await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("admin server stops promptly")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
