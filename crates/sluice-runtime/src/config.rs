//! Configuration layered from defaults, a TOML file and environment variables.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RuntimeError;

/// Loads `T`: its `Default`, overridden by the TOML file at `path` (which must
/// exist if given), overridden by environment variables.
///
/// An environment variable is `<env_prefix>_<KEY>`, with `__` between nested
/// keys: with prefix `SLUICE`, `SLUICE_COLLECTOR__HTTP_PORT=8081` sets
/// `collector.http_port`. `<prefix>_CONFIG` and `<prefix>_LOG`, which name the
/// file and the log filter, are not config keys.
///
/// A bad value is an error that names the key and its source, e.g.
/// `invalid type: found string "x", expected u16 for key
/// "SLUICE_COLLECTOR__HTTP_PORT" in environment variables`, or
/// `... for key "default.collector.http_port" in /etc/sluice.toml TOML file`
/// (`default` is figment's profile; Sluice uses no other).
pub fn load_config<T>(path: Option<&Path>, env_prefix: &str) -> Result<T, RuntimeError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = path {
        // file_exact: a path given on purpose and missing is a mistake, not
        // "no overrides" (which is what Toml::file would make of it).
        figment = figment.merge(Toml::file_exact(path));
    }
    Ok(figment.merge(EnvVars::new(env_prefix)).extract()?)
}

/// figment's `Env`, but an error names the variable as the user spelled it.
/// `Env` itself would say `for key "COLLECTOR.HTTP_PORT"`: no prefix, and a dot
/// where the variable has `__`, which is not a name anyone can grep for.
struct EnvVars {
    env: Env,
    prefix: String,
}

impl EnvVars {
    fn new(env_prefix: &str) -> Self {
        let prefix = format!("{}_", env_prefix.trim_end_matches('_').to_ascii_uppercase());
        let env = Env::prefixed(&prefix)
            .split("__")
            .ignore(&["config", "log"]);
        EnvVars { env, prefix }
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix.clone();
        Metadata::named("environment variables").interpolater(move |_: &Profile, keys: &[&str]| {
            format!("{prefix}{}", keys.join("__").to_ascii_uppercase())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
    }
}

/// The config file a binary was pointed at: `--config PATH` or `--config=PATH`
/// in `args` (without the program name), else the `SLUICE_CONFIG` variable.
pub fn config_path(args: impl IntoIterator<Item = OsString>) -> Option<PathBuf> {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("SLUICE_CONFIG").map(PathBuf::from)
}
