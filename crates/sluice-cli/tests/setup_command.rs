//! `sluice setup` as a user runs it: the real binary, configured by
//! environment variables, against moto; twice, because it must be safe to
//! re-run on every deploy.

use std::process::Command;

use sluice_testkit::{MotoServer, unique_name};

fn sluice_setup(endpoint: &str, stream: &str, bucket: &str, prefix: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("setup")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SLUICE_AWS__ENDPOINT_URL", endpoint)
        .env("SLUICE_AWS__FORCE_PATH_STYLE", "true")
        .env("SLUICE_AWS__ACCESS_KEY_ID", "testing")
        .env("SLUICE_AWS__SECRET_ACCESS_KEY", "testing")
        .env("SLUICE_STREAM__KIND", "kinesis")
        .env("SLUICE_STREAM__NAME", stream)
        .env("SLUICE_STREAM__SHARDS", "2")
        .env("SLUICE_OBJECT_STORE__KIND", "s3")
        .env("SLUICE_OBJECT_STORE__BUCKET", bucket)
        .env("SLUICE_QUEUES__KIND", "sqs")
        .env(
            "SLUICE_QUEUES__TRANSCODE_NAME",
            format!("{prefix}-transcode"),
        )
        .env(
            "SLUICE_QUEUES__TRANSCODE_DLQ_NAME",
            format!("{prefix}-transcode-dlq"),
        )
        .env("SLUICE_QUEUES__LOAD_NAME", format!("{prefix}-load"))
        .env("SLUICE_QUEUES__LOAD_DLQ_NAME", format!("{prefix}-load-dlq"))
        .output()
        .expect("run sluice")
}

#[tokio::test]
async fn setup_creates_everything_and_can_run_again() {
    let moto = MotoServer::shared().await;
    let (stream, bucket, prefix) = (
        unique_name("events"),
        unique_name("bucket"),
        unique_name("q"),
    );
    for run in 1..=2 {
        let out = sluice_setup(&moto.endpoint(), &stream, &bucket, &prefix);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "run {run}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("stream/{stream}")), "{stdout}");
        assert!(stdout.contains(&format!("{prefix}-transcode")), "{stdout}");
        assert!(stdout.contains(&format!("{prefix}-load")), "{stdout}");
        assert!(stdout.trim_end().ends_with("ready"), "{stdout}");
    }
}

#[test]
fn a_bad_setting_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("setup")
        .env("SLUICE_STREAM__SHARDS", "many")
        .output()
        .expect("run sluice");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SLUICE_STREAM__SHARDS"), "{stderr}");
}
