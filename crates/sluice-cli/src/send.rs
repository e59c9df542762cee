//! `sluice send`: events to a collector over HTTP, as Segment batches. From a
//! file or stdin (a JSON array, a `{"batch": [...]}` object, one event, or
//! one event per line), or `--demo` traffic at a steady rate.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sluice_events::demo::DemoEvents;
use sluice_events::time::now_us;

/// Tries per batch when the collector pushes back (503) or is unreachable.
const MAX_TRIES: u32 = 8;

#[derive(Args)]
pub struct SendArgs {
    /// File of events; `-` or nothing reads stdin. Ignored with --demo.
    file: Option<PathBuf>,
    /// Send realistic product-analytics events until Ctrl-C (or --count).
    #[arg(long)]
    demo: bool,
    /// The collector's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "SLUICE_URL")]
    url: String,
    /// Write key (sent as Basic auth, as Segment's libraries do).
    #[arg(long, env = "SLUICE_WRITE_KEY", default_value = "demo")]
    write_key: String,
    /// With --demo: events per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// With --demo: stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Events per request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
}

struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    authorization: String,
    accepted: u64,
    rejected: u64,
}

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let mut sender = Sender {
        client: Client::builder(TokioExecutor::new()).build_http(),
        endpoint: format!("{}/v1/batch", args.url.trim_end_matches('/')),
        authorization: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", args.write_key))
        ),
        accepted: 0,
        rejected: 0,
    };
    match args.demo {
        true => send_demo(&mut sender, &args).await?,
        false => {
            let events = read_events(args.file.as_ref())?;
            for batch in events.chunks(args.batch_size as usize) {
                sender.send(batch).await?;
            }
        }
    }
    eprintln!(
        "sent {} events: {} accepted, {} rejected",
        sender.accepted + sender.rejected,
        sender.accepted,
        sender.rejected
    );
    Ok(())
}

/// Small batches at a steady pace (about ten a second), so rows trickle in
/// the way real traffic does, until Ctrl-C or `--count`.
async fn send_demo(sender: &mut Sender, args: &SendArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1 event per second");
    let per_batch = (args.rate / 10).clamp(1, args.batch_size) as u64;
    let pause = Duration::from_secs_f64(per_batch as f64 / args.rate as f64);
    let mut demo = DemoEvents::new(now_us() as u64);
    let mut ticker = tokio::time::interval(pause);
    let mut last_report = Instant::now();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    eprintln!(
        "sending demo events to {} at {}/s; Ctrl-C stops",
        sender.endpoint, args.rate
    );
    loop {
        let remaining = args
            .count
            .map_or(per_batch, |c| (c - demo.produced()).min(per_batch));
        if remaining == 0 {
            return Ok(());
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = ticker.tick() => {}
        }
        let batch: Vec<Value> = (0..remaining)
            .map(|_| demo.next_event(now_us(), &uuid::Uuid::now_v7().to_string()))
            .collect();
        sender.send(&batch).await?;
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("sent {} events", demo.produced());
            last_report = Instant::now();
        }
    }
}

impl Sender {
    /// One request; retried (with the same events, so the same message ids:
    /// the pipeline loads them once) while the collector pushes back.
    async fn send(&mut self, events: &[Value]) -> anyhow::Result<()> {
        let body = Bytes::from(json!({"batch": events, "sentAt": now_iso()}).to_string());
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=MAX_TRIES {
            let request = Request::post(&self.endpoint)
                .header("content-type", "application/json")
                .header("authorization", &self.authorization)
                .body(Full::new(body.clone()))?;
            let outcome = match self.client.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let bytes = response.into_body().collect().await?.to_bytes();
                    Ok((status, bytes))
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok((status, body)) if status.is_success() || status == StatusCode::BAD_REQUEST => {
                    return self.count(status, &body);
                }
                Ok((status, body))
                    if status != StatusCode::SERVICE_UNAVAILABLE
                        && status != StatusCode::TOO_MANY_REQUESTS =>
                {
                    anyhow::bail!(
                        "{} answered {status}: {}",
                        self.endpoint,
                        String::from_utf8_lossy(&body)
                    );
                }
                Ok(_) | Err(_) if attempt < MAX_TRIES => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Ok((status, _)) => anyhow::bail!("{} still answers {status}", self.endpoint),
                Err(error) => {
                    return Err(error).with_context(|| format!("sending to {}", self.endpoint));
                }
            }
        }
        unreachable!("the last try returns")
    }

    /// Tallies a 200 or 400 answer and prints each rejected event's reason.
    fn count(&mut self, status: StatusCode, body: &[u8]) -> anyhow::Result<()> {
        let answer: Value = serde_json::from_slice(body)
            .with_context(|| format!("{status} with a body that is not JSON"))?;
        self.accepted += answer["accepted"].as_u64().unwrap_or(0);
        self.rejected += answer["rejected"].as_u64().unwrap_or(0);
        for error in answer["errors"].as_array().into_iter().flatten() {
            eprintln!("rejected event {}: {}", error["index"], error["error"]);
        }
        if answer["errors"].is_null() && !status.is_success() {
            eprintln!("rejected: {}", answer["error"]);
        }
        Ok(())
    }
}

fn now_iso() -> String {
    sluice_events::time::format_us(now_us())
}

fn read_events(file: Option<&PathBuf>) -> anyhow::Result<Vec<Value>> {
    let mut text = String::new();
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
        }
    }
    parse_events(&text)
}

/// A JSON array, `{"batch": [...]}`, a single event, or one event per line.
fn parse_events(text: &str) -> anyhow::Result<Vec<Value>> {
    if let Ok(whole) = serde_json::from_str::<Value>(text) {
        return Ok(match whole {
            Value::Array(events) => events,
            Value::Object(mut object) => match object.remove("batch") {
                Some(Value::Array(events)) => events,
                Some(_) => anyhow::bail!("\"batch\" must be an array of events"),
                None => vec![Value::Object(object)],
            },
            _ => anyhow::bail!("expected events as JSON objects"),
        });
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("line {}: not a JSON event", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_shape_of_input() {
        let one = json!({"event": "a"});
        assert_eq!(parse_events(r#"{"event":"a"}"#).unwrap(), vec![one.clone()]);
        assert_eq!(
            parse_events(r#"[{"event":"a"},{"event":"b"}]"#)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_events(r#"{"batch":[{"event":"a"}]}"#).unwrap(),
            vec![one]
        );
        let lines = "{\"event\":\"a\"}\n\n{\"event\":\"b\"}\n";
        assert_eq!(parse_events(lines).unwrap().len(), 2);
    }

    #[test]
    fn names_the_bad_line() {
        let error = parse_events("{\"event\":\"a\"}\n{oops\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
