//! [`Queue`] on Amazon SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;

use super::errors::{code_of, from_sdk};
use crate::{BackendError, MAX_RECEIVE, MAX_VISIBILITY, MAX_WAIT, Queue, QueueMessage, Result};

const SERVICE: &str = "sqs";

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(sdk: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::from_client(Client::new(sdk), queue_url)
    }

    pub fn from_client(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// A receipt handle that SQS no longer honours is reported as
    /// `ReceiptHandleIsInvalid`, `MessageNotInflight`, or (for
    /// ChangeMessageVisibility) `InvalidParameterValue` "...receipt handle has
    /// expired": all mean the caller lost the message, which is `Expired`.
    fn handle_error<E>(&self, op: &str, err: SdkError<E>) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let expired_parameter = code_of(&err) == Some("InvalidParameterValue")
            && err
                .message()
                .is_some_and(|m| m.to_ascii_lowercase().contains("receipt handle"));
        let context = format!("{op} on {}", self.queue_url);
        if expired_parameter {
            return BackendError::Expired(format!(
                "{context}: {}",
                err.message().unwrap_or_default()
            ));
        }
        from_sdk(SERVICE, &context, err)
    }
}

/// Whole seconds for SQS, rounding up so a sub-second timeout still hides
/// the message rather than making it visible at once.
fn visibility_secs(timeout: Duration) -> Result<i32> {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    if secs > MAX_VISIBILITY.as_secs() {
        return Err(BackendError::InvalidArgument(format!(
            "visibility timeout {timeout:?} exceeds the SQS maximum of 12 hours"
        )));
    }
    Ok(secs as i32)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, body: &str) -> Result<String> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, &format!("SendMessage to {}", self.queue_url), e))?;
        output.message_id.ok_or_else(|| BackendError::Service {
            service: SERVICE,
            message: format!("SendMessage to {}: no message id", self.queue_url),
            retryable: false,
        })
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<QueueMessage>> {
        // Out-of-range asks are clamped to what SQS allows rather than
        // refused: "up to" semantics hold either way.
        let max = max.clamp(1, MAX_RECEIVE) as i32;
        let wait = wait.as_secs().min(MAX_WAIT.as_secs()) as i32;
        let visibility = visibility.map(visibility_secs).transpose()?;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .set_visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| {
                from_sdk(
                    SERVICE,
                    &format!("ReceiveMessage from {}", self.queue_url),
                    e,
                )
            })?;
        let mut messages = Vec::new();
        for message in output.messages.unwrap_or_default() {
            let (Some(message_id), Some(receipt_handle)) =
                (message.message_id, message.receipt_handle)
            else {
                tracing::warn!(queue = %self.queue_url, "received a message without id or receipt handle");
                continue;
            };
            let receive_count = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                // Being received at all counts once.
                .unwrap_or(1);
            messages.push(QueueMessage {
                message_id,
                receipt_handle,
                body: message.body.unwrap_or_default(),
                receive_count,
            });
        }
        Ok(messages)
    }

    async fn delete(&self, receipt_handle: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.handle_error("DeleteMessage", e))
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(visibility_secs(timeout)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.handle_error("ChangeMessageVisibility", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_rounds_up_and_is_bounded() {
        assert_eq!(visibility_secs(Duration::ZERO).unwrap(), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(visibility_secs(Duration::from_secs(30)).unwrap(), 30);
        assert_eq!(
            visibility_secs(Duration::from_secs(43_200)).unwrap(),
            43_200
        );
        assert!(visibility_secs(Duration::from_secs(43_201)).is_err());
    }
}
