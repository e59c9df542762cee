//! S3 -> SQS object-created notifications: the queue policy that lets S3
//! send, and the bucket's notification entry.
//!
//! Both documents hold other people's entries too (a bucket has one
//! notification configuration, a queue one policy), so each is read, our
//! entry (found by its id) replaced, and the rest written back untouched.

use aws_sdk_s3::Client as S3Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use super::queue_arn;
use crate::aws::errors::from_sdk;
use crate::{BackendError, Result};

/// Sends `s3:ObjectCreated:*` events for keys matching `prefix` and `suffix`
/// (empty means no filter) from `bucket` to the queue, and allows S3 to send
/// to it. Returns the queue ARN.
///
/// Writing a bucket's notification configuration makes S3 send an
/// `s3:TestEvent` message to the queue; consumers skip it
/// ([`crate::notification::parse_object_created`] does). The configuration
/// is written only when it differs, so re-running adds no test event.
pub async fn ensure_bucket_notification(
    s3: &S3Client,
    sqs: &SqsClient,
    bucket: &str,
    queue_url: &str,
    prefix: &str,
    suffix: &str,
) -> Result<String> {
    let arn = queue_arn(sqs, queue_url).await?;
    // The policy must be in place first: AWS validates the destination when
    // the notification is written and refuses a queue S3 cannot send to.
    ensure_queue_policy(sqs, queue_url, &arn, bucket).await?;

    let current = current_configuration(s3, bucket).await?;
    let id = config_id(&arn);
    let wanted = queue_configuration(&id, &arn, prefix, suffix)?;
    let mut queues = current.queue_configurations.unwrap_or_default();
    if let Some(existing) = queues.iter().find(|q| q.id.as_deref() == Some(id.as_str()))
        && same_configuration(existing, &wanted)
    {
        return Ok(arn);
    }
    queues.retain(|q| q.id.as_deref() != Some(id.as_str()));
    queues.push(wanted);
    let config = NotificationConfiguration::builder()
        .set_queue_configurations(Some(queues))
        .set_topic_configurations(current.topic_configurations)
        .set_lambda_function_configurations(current.lambda_function_configurations)
        .set_event_bridge_configuration(current.event_bridge_configuration)
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(config)
        .send()
        .await
        .map_err(|e| {
            from_sdk(
                "s3",
                &format!("PutBucketNotificationConfiguration {bucket}"),
                e,
            )
        })?;
    tracing::info!(bucket, queue = %arn, prefix, suffix, "configured bucket notification");
    Ok(arn)
}

/// The bucket's notification configuration, empty when none is set.
async fn current_configuration(s3: &S3Client, bucket: &str) -> Result<NotificationConfiguration> {
    match s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(output) => Ok(NotificationConfiguration::builder()
            .set_queue_configurations(output.queue_configurations)
            .set_topic_configurations(output.topic_configurations)
            .set_lambda_function_configurations(output.lambda_function_configurations)
            .set_event_bridge_configuration(output.event_bridge_configuration)
            .build()),
        Err(e) if is_empty_emulator_answer(&e) => Ok(NotificationConfiguration::builder().build()),
        Err(e) => Err(from_sdk(
            "s3",
            &format!("GetBucketNotificationConfiguration {bucket}"),
            e,
        )),
    }
}

/// moto (5.x) answers "nothing configured" with an empty
/// `<GetBucketNotificationResponse/>` root where AWS sends an empty
/// `<NotificationConfiguration/>`, and the SDK refuses the unknown root.
/// Only that exact shape (a 200 with an empty, self-closed element) is read
/// as "empty"; any other failure still fails, so a real configuration is
/// never overwritten because it could not be read.
fn is_empty_emulator_answer<E>(err: &SdkError<E>) -> bool {
    let Some(raw) = err.raw_response() else {
        return false;
    };
    let Some(body) = raw.body().bytes() else {
        return false;
    };
    let body = String::from_utf8_lossy(body);
    raw.status().as_u16() == 200
        && body.contains("<GetBucketNotificationResponse")
        && body.trim_end().ends_with("/>")
        && !body.contains("Configuration")
}

/// One entry per queue: the id is derived from the queue's name, so a second
/// run finds and replaces its own entry.
fn config_id(queue_arn: &str) -> String {
    let name = queue_arn.rsplit(':').next().unwrap_or(queue_arn);
    format!("sluice-{name}")
}

fn queue_configuration(
    id: &str,
    arn: &str,
    prefix: &str,
    suffix: &str,
) -> Result<QueueConfiguration> {
    let rules: Vec<FilterRule> = [
        (FilterRuleName::Prefix, prefix),
        (FilterRuleName::Suffix, suffix),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| FilterRule::builder().name(name).value(value).build())
    .collect();
    let filter = (!rules.is_empty()).then(|| {
        NotificationConfigurationFilter::builder()
            .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
            .build()
    });
    QueueConfiguration::builder()
        .id(id)
        .queue_arn(arn)
        .events(Event::S3ObjectCreated)
        .set_filter(filter)
        .build()
        .map_err(|e| BackendError::InvalidArgument(e.to_string()))
}

/// Compares what matters, normalising what S3 rewrites: rule names come
/// back capitalised (`Prefix`), and rule order is not significant.
fn same_configuration(a: &QueueConfiguration, b: &QueueConfiguration) -> bool {
    fn rules(q: &QueueConfiguration) -> Vec<(String, String)> {
        let mut rules: Vec<_> = q
            .filter
            .as_ref()
            .and_then(|f| f.key.as_ref())
            .and_then(|k| k.filter_rules.as_ref())
            .into_iter()
            .flatten()
            .map(|r| {
                let name = r.name.as_ref().map(|n| n.as_str().to_ascii_lowercase());
                (
                    name.unwrap_or_default(),
                    r.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        rules.sort();
        rules
    }
    fn events(q: &QueueConfiguration) -> Vec<&str> {
        let mut events: Vec<_> = q.events.iter().map(|e| e.as_str()).collect();
        events.sort_unstable();
        events
    }
    a.queue_arn == b.queue_arn && events(a) == events(b) && rules(a) == rules(b)
}

/// Adds (or refreshes) a statement allowing this bucket's S3 notifications
/// to send to the queue, keeping the policy's other statements.
async fn ensure_queue_policy(
    sqs: &SqsClient,
    queue_url: &str,
    queue_arn: &str,
    bucket: &str,
) -> Result<()> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .map_err(|e| from_sdk("sqs", &format!("GetQueueAttributes {queue_url}"), e))?;
    let current = output
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::Policy));
    let Some(policy) = merged_policy(current.as_deref(), queue_arn, bucket)? else {
        return Ok(());
    };
    sqs.set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::Policy, policy)
        .send()
        .await
        .map_err(|e| from_sdk("sqs", &format!("SetQueueAttributes {queue_url}"), e))?;
    Ok(())
}

/// The policy with our statement in place, or `None` when it already is.
fn merged_policy(current: Option<&str>, queue_arn: &str, bucket: &str) -> Result<Option<String>> {
    // Same partition as the queue (aws, aws-cn, aws-us-gov).
    let partition = queue_arn.split(':').nth(1).unwrap_or("aws");
    let sid = format!("sluice-s3-{bucket}");
    let statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "Service": "s3.amazonaws.com" },
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": { "ArnLike": { "aws:SourceArn": format!("arn:{partition}:s3:::{bucket}") } },
    });
    let mut policy: Value = match current.filter(|p| !p.trim().is_empty()) {
        Some(text) => serde_json::from_str(text).map_err(|e| BackendError::Service {
            service: "sqs",
            message: format!("queue policy of {queue_arn} is not JSON: {e}"),
            retryable: false,
        })?,
        None => json!({ "Version": "2012-10-17", "Statement": [] }),
    };
    let statements = match policy.get_mut("Statement") {
        Some(Value::Array(list)) => list,
        // A single statement may be written as an object; normalise to a list.
        Some(single) => {
            *single = Value::Array(vec![single.take()]);
            single.as_array_mut().expect("just made an array")
        }
        None => {
            policy["Statement"] = json!([]);
            policy["Statement"]
                .as_array_mut()
                .expect("just made an array")
        }
    };
    if statements.contains(&statement) {
        return Ok(None);
    }
    statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid.as_str()));
    statements.push(statement);
    Ok(Some(policy.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:sqs:us-east-1:123456789012:raw-objects";

    #[test]
    fn policy_is_added_once_and_keeps_other_statements() {
        let first = merged_policy(None, ARN, "bkt").unwrap().unwrap();
        assert!(merged_policy(Some(&first), ARN, "bkt").unwrap().is_none());

        let other = r#"{"Version":"2012-10-17","Statement":{"Sid":"ops","Effect":"Allow"}}"#;
        let merged: Value =
            serde_json::from_str(&merged_policy(Some(other), ARN, "bkt").unwrap().unwrap())
                .unwrap();
        let sids: Vec<_> = merged["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, ["ops", "sluice-s3-bkt"]);
    }

    #[test]
    fn configuration_comparison_ignores_rule_case_and_order() {
        let ours = queue_configuration("id", ARN, "raw/", ".zst").unwrap();
        let mut theirs = ours.clone();
        let rules = vec![
            FilterRule::builder()
                .name(FilterRuleName::from("Suffix"))
                .value(".zst")
                .build(),
            FilterRule::builder()
                .name(FilterRuleName::from("Prefix"))
                .value("raw/")
                .build(),
        ];
        theirs.filter = Some(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        );
        assert!(same_configuration(&ours, &theirs));
        let other = queue_configuration("id", ARN, "tables/", ".zst").unwrap();
        assert!(!same_configuration(&ours, &other));
    }

    #[test]
    fn id_comes_from_the_queue_name() {
        assert_eq!(config_id(ARN), "sluice-raw-objects");
    }
}
