//! Defaults < file < environment, and errors that say which key and where.

// Jail's closures must return figment's own (large) error type.
#![allow(clippy::result_large_err)]

use std::path::Path;

use figment::Jail;
use serde::{Deserialize, Serialize};
use sluice_runtime::{LogFormat, RuntimeError, config_path, load_config};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Config {
    log_format: LogFormat,
    collector: Collector,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Collector {
    http_port: u16,
    stream: String,
    max_batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_format: LogFormat::Json,
            collector: Collector::default(),
        }
    }
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            http_port: 8080,
            stream: "events".into(),
            max_batch: 500,
        }
    }
}

fn load(path: Option<&str>) -> Result<Config, RuntimeError> {
    load_config(path.map(Path::new), "SLUICE")
}

#[test]
fn defaults_then_file_then_env() {
    Jail::expect_with(|jail| {
        assert_eq!(load(None).unwrap(), Config::default());

        jail.create_file(
            "sluice.toml",
            "log_format = \"text\"\n[collector]\nhttp_port = 9000\nstream = \"from-file\"\n",
        )?;
        let from_file = load(Some("sluice.toml")).unwrap();
        assert_eq!(from_file.log_format, LogFormat::Text);
        assert_eq!(from_file.collector.http_port, 9000);
        assert_eq!(from_file.collector.stream, "from-file");
        assert_eq!(from_file.collector.max_batch, 500, "default kept");

        jail.set_env("SLUICE_COLLECTOR__HTTP_PORT", "8081");
        // Not config keys; must not end up in (or break) the config.
        jail.set_env("SLUICE_CONFIG", "sluice.toml");
        jail.set_env("SLUICE_LOG", "debug");
        let from_env = load(Some("sluice.toml")).unwrap();
        assert_eq!(from_env.collector.http_port, 8081, "env beats file");
        assert_eq!(from_env.collector.stream, "from-file", "file beats default");
        Ok(())
    });
}

#[test]
fn a_bad_env_value_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("SLUICE_COLLECTOR__HTTP_PORT", "eighty");
        let error = load(None).unwrap_err().to_string();
        assert!(error.contains("SLUICE_COLLECTOR__HTTP_PORT"), "{error}");
        assert!(error.contains("environment variable"), "{error}");
        assert!(error.contains("eighty"), "{error}");
        Ok(())
    });
}

#[test]
fn a_bad_file_value_names_the_key_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("sluice.toml", "[collector]\nhttp_port = 70000\n")?;
        let error = load(Some("sluice.toml")).unwrap_err().to_string();
        assert!(error.contains("collector.http_port"), "{error}");
        assert!(error.contains("sluice.toml"), "{error}");
        Ok(())
    });
}

#[test]
fn a_missing_or_malformed_file_is_an_error() {
    Jail::expect_with(|jail| {
        let error = load(Some("absent.toml")).unwrap_err().to_string();
        assert!(error.contains("absent.toml"), "{error}");

        jail.create_file("broken.toml", "[collector\nhttp_port = 1\n")?;
        let error = load(Some("broken.toml")).unwrap_err().to_string();
        assert!(error.contains("broken.toml"), "{error}");
        Ok(())
    });
}

#[test]
fn config_path_from_flag_or_env() {
    Jail::expect_with(|jail| {
        let args = |a: &[&str]| a.iter().map(Into::into).collect::<Vec<_>>();
        assert_eq!(config_path(args(&["--verbose"])), None);
        assert_eq!(
            config_path(args(&["--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            config_path(args(&["--config=b.toml"])),
            Some("b.toml".into())
        );

        jail.set_env("SLUICE_CONFIG", "c.toml");
        assert_eq!(config_path(args(&[])), Some("c.toml".into()));
        assert_eq!(
            config_path(args(&["--config", "a.toml"])),
            Some("a.toml".into()),
            "the flag beats the env"
        );
        Ok(())
    });
}
