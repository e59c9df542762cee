use anyhow::Context;
use sluice_backends::config::{BackendsConfig, provision};

/// Provisions what the configuration names and says what it found.
pub async fn run(config: &BackendsConfig) -> anyhow::Result<()> {
    let done = provision(config).await.context("setting up the backends")?;
    if let Some(arn) = &done.stream_arn {
        println!("stream      {arn}");
    }
    if let Some(url) = &done.transcode_queue_url {
        println!("transcode   {url}");
    }
    if let Some(url) = &done.load_queue_url {
        println!("load        {url}");
    }
    println!("ready");
    Ok(())
}
