//! The one place where AWS SDK failures become [`BackendError`]s.
//!
//! Callers branch on [`BackendError::is_retryable`], so what matters here is
//! sorting failures into "back off and retry" (throttling, 5xx, timeouts,
//! connection failures) and "retrying will not help" (validation, access,
//! missing resources). Operation-specific meanings (a missing key on a GET is
//! not an error) stay with the operation; everything else comes through here.

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::BackendError;

/// Error codes that mean "slow down" across Kinesis, S3 and SQS. Kinesis uses
/// `LimitExceededException` for control-plane rate limits too (GetShardIterator,
/// UpdateShardCount), which callers should also treat as back-off-and-retry.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
];

/// A shard iterator or receipt handle that is no longer valid: the caller
/// must obtain a fresh one rather than retry the same request.
const EXPIRED_CODES: &[&str] = &[
    "ExpiredIteratorException",
    "ReceiptHandleIsInvalid",
    "MessageNotInflight",
];

const NOT_FOUND_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "QueueDoesNotExist",
    "NonExistentQueue",
];

const INVALID_ARGUMENT_CODES: &[&str] = &[
    "InvalidArgumentException",
    "ValidationException",
    "ValidationError",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "MissingParameter",
    "InvalidArgument",
    "InvalidRequest",
    "InvalidBucketName",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "KeyTooLongError",
    "EntityTooLarge",
    "InvalidMessageContents",
];

/// Server-side failures: retryable by code, even when an emulator or proxy
/// sends them without a 5xx status.
const TRANSIENT_CODES: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    // The SDK corrects its clock from the response, so the next attempt works.
    "RequestTimeTooSkewed",
];

/// How the request failed before any service verdict was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The service answered with an error response.
    Service,
    /// Timed out, could not connect, or the response could not be read:
    /// the request may or may not have been applied, and a retry is safe for
    /// the idempotent or at-least-once operations we use.
    Transport,
    /// The SDK could not build the request (bad input, no credentials).
    Construction,
}

/// Converts an SDK error, naming the operation and the resource it was
/// about (`context`) in the message.
pub(crate) fn from_sdk<E>(service: &'static str, context: &str, err: SdkError<E>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = match &err {
        SdkError::ServiceError(_) => Failure::Service,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transport
        }
        _ => Failure::Construction,
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let message = format!("{context}: {}", DisplayErrorContext(&err));
    classify(service, context, failure, code.as_deref(), status, message)
}

/// The error code of an SDK error, with the SQS query-compatibility prefix
/// (`AWS.SimpleQueueService.NonExistentQueue`) removed so one name matches
/// both the JSON and the query protocol.
pub(crate) fn code_of<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.code().map(strip_code_prefix)
}

fn strip_code_prefix(code: &str) -> &str {
    code.strip_prefix("AWS.SimpleQueueService.").unwrap_or(code)
}

/// The HTTP status of the service's answer, if one was received.
pub(crate) fn status_of<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The decision table, separate from the SDK types so it can be tested.
pub(crate) fn classify(
    service: &'static str,
    resource: &str,
    failure: Failure,
    code: Option<&str>,
    status: Option<u16>,
    message: String,
) -> BackendError {
    match failure {
        Failure::Transport => {
            return BackendError::Service {
                service,
                message,
                retryable: true,
            };
        }
        Failure::Construction => {
            return BackendError::Service {
                service,
                message,
                retryable: false,
            };
        }
        Failure::Service => {}
    }
    let code = code.map(strip_code_prefix).unwrap_or("");
    let is = |codes: &[&str]| codes.contains(&code);
    if is(THROTTLING_CODES) || status == Some(429) {
        return BackendError::Throttled {
            service,
            message,
            retry_after: None,
        };
    }
    if is(EXPIRED_CODES) {
        return BackendError::Expired(message);
    }
    // S3 answers a lost conditional write with 412, and a concurrent
    // conditional write on the same key with 409 ConditionalRequestConflict.
    if code == "PreconditionFailed" || code == "ConditionalRequestConflict" || status == Some(412) {
        return BackendError::PreconditionFailed(resource.to_owned());
    }
    if is(NOT_FOUND_CODES) {
        return BackendError::NotFound(message);
    }
    if is(INVALID_ARGUMENT_CODES) {
        return BackendError::InvalidArgument(message);
    }
    let retryable = is(TRANSIENT_CODES) || status.is_some_and(|s| s >= 500);
    BackendError::Service {
        service,
        message,
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: &str, status: u16) -> BackendError {
        classify(
            "kinesis",
            "shard-1",
            Failure::Service,
            Some(code),
            Some(status),
            "m".into(),
        )
    }

    #[test]
    fn throttling_is_retryable() {
        for code in [
            "ProvisionedThroughputExceededException",
            "LimitExceededException",
            "SlowDown",
        ] {
            let e = service(code, 400);
            assert!(matches!(e, BackendError::Throttled { .. }), "{code}: {e:?}");
            assert!(e.is_retryable());
        }
        assert!(matches!(
            service("Whatever", 429),
            BackendError::Throttled { .. }
        ));
    }

    #[test]
    fn server_errors_and_transport_failures_are_retryable() {
        assert!(service("InternalFailure", 500).is_retryable());
        assert!(service("SomethingNew", 503).is_retryable());
        let t = classify("s3", "k", Failure::Transport, None, None, "m".into());
        assert!(t.is_retryable());
    }

    #[test]
    fn client_errors_are_permanent() {
        assert!(matches!(
            service("InvalidArgumentException", 400),
            BackendError::InvalidArgument(_)
        ));
        assert!(matches!(
            service("AccessDeniedException", 400),
            BackendError::Service {
                retryable: false,
                ..
            }
        ));
        assert!(!service("AccessDenied", 403).is_retryable());
        let c = classify("s3", "k", Failure::Construction, None, None, "m".into());
        assert!(!c.is_retryable());
    }

    #[test]
    fn specific_meanings() {
        assert!(matches!(
            service("ExpiredIteratorException", 400),
            BackendError::Expired(_)
        ));
        assert!(matches!(
            service("AWS.SimpleQueueService.ReceiptHandleIsInvalid", 400),
            BackendError::Expired(_)
        ));
        assert!(matches!(
            service("AWS.SimpleQueueService.NonExistentQueue", 400),
            BackendError::NotFound(_)
        ));
        match service("PreconditionFailed", 412) {
            BackendError::PreconditionFailed(r) => assert_eq!(r, "shard-1"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            service("ConditionalRequestConflict", 409),
            BackendError::PreconditionFailed(_)
        ));
    }
}
