//! Where the AWS clients point and how they authenticate and retry.

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kinesis::config::Credentials;
use serde::Deserialize;

use crate::{BackendError, Result};

/// AWS connection settings shared by the Kinesis, S3 and SQS backends.
///
/// Without static keys the SDK's default chain is used (environment, profile,
/// web identity / IRSA, ECS and instance metadata), which is what a
/// Kubernetes deployment wants. Static keys are for emulators and tests.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    pub region: String,
    /// Overrides every service endpoint, e.g. `http://127.0.0.1:5000` for an
    /// emulator.
    pub endpoint_url: Option<String>,
    /// Addresses buckets as `endpoint/bucket/key` instead of
    /// `bucket.endpoint/key`; emulators need it.
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Attempts per request, the first included (SDK standard retry mode,
    /// exponential backoff with jitter).
    pub max_attempts: u32,
    pub connect_timeout_secs: u64,
    /// Bound on one attempt. It must exceed the 20 s SQS long poll and leave
    /// room for large S3 uploads.
    pub attempt_timeout_secs: u64,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            endpoint_url: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            max_attempts: 3,
            connect_timeout_secs: 5,
            attempt_timeout_secs: 120,
        }
    }
}

// Hand-written so the secret never reaches a log line.
impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("attempt_timeout_secs", &self.attempt_timeout_secs)
            .finish()
    }
}

impl AwsConfig {
    /// Settings for a local emulator: static dummy keys, path-style S3.
    pub fn emulator(endpoint_url: impl Into<String>) -> Self {
        Self {
            endpoint_url: Some(endpoint_url.into()),
            force_path_style: true,
            access_key_id: Some("testing".to_owned()),
            secret_access_key: Some("testing".to_owned()),
            ..Self::default()
        }
    }

    /// Rejects settings that would otherwise fail later and obscurely.
    pub fn validate(&self) -> Result<()> {
        if self.region.trim().is_empty() {
            return Err(BackendError::InvalidArgument("aws.region is empty".into()));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(BackendError::InvalidArgument(
                "aws.access_key_id and aws.secret_access_key must be set together".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(BackendError::InvalidArgument(
                "aws.max_attempts must be at least 1".into(),
            ));
        }
        if self.attempt_timeout_secs <= 20 {
            return Err(BackendError::InvalidArgument(
                "aws.attempt_timeout_secs must exceed the 20 s SQS long poll".into(),
            ));
        }
        Ok(())
    }

    /// Resolves credentials and builds the configuration the three clients
    /// are created from. Static keys are used only when both are set (see
    /// [`AwsConfig::validate`]); otherwise the default chain.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(self.connect_timeout_secs))
                    .operation_attempt_timeout(Duration::from_secs(self.attempt_timeout_secs))
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                self.session_token.clone(),
                None,
                "sluice-static",
            ));
        }
        loader.load().await
    }
}

/// The three service clients, built once from an [`AwsConfig`] and shared
/// (they are cheap to clone) by the backends and the provisioning helpers.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub kinesis: aws_sdk_kinesis::Client,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    pub fn new(sdk: &SdkConfig, force_path_style: bool) -> Self {
        Self {
            kinesis: aws_sdk_kinesis::Client::new(sdk),
            s3: super::s3::s3_client(sdk, force_path_style),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }

    /// Validates the settings, resolves them and builds the clients.
    pub async fn from_config(config: &AwsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::new(
            &config.sdk_config().await,
            config.force_path_style,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_redaction() {
        let c: AwsConfig = serde_json::from_str(r#"{"secret_access_key":"s3cr3t"}"#).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert!(!c.force_path_style);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(c.validate().is_err(), "a secret without a key id");
        assert!(AwsConfig::emulator("http://127.0.0.1:1").validate().is_ok());
    }

    #[test]
    fn rejects_unknown_fields() {
        assert!(serde_json::from_str::<AwsConfig>(r#"{"regoin":"eu-west-1"}"#).is_err());
    }
}
