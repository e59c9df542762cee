//! [`ObjectStore`] on Amazon S3, with conditional writes.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::errors::{code_of, from_sdk, status_of};
use crate::{BackendError, GetObject, ObjectMeta, ObjectStore, PutCondition, Result};

const SERVICE: &str = "s3";

#[derive(Clone, Debug)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
}

impl S3ObjectStore {
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>, force_path_style: bool) -> Self {
        Self::from_client(s3_client(sdk, force_path_style), bucket)
    }

    pub fn from_client(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// An S3 client; path-style addressing is an S3-only setting, so it is
/// applied here rather than in the shared [`SdkConfig`].
pub fn s3_client(sdk: &SdkConfig, force_path_style: bool) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .build();
    Client::from_conf(config)
}

fn is_missing<E>(err: &aws_sdk_s3::error::SdkError<E>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    // A missing bucket is a 404 too, but a misconfiguration, not an absent
    // object: only NoSuchKey (or a bodyless 404) means "no such key".
    match code_of(err) {
        Some("NoSuchKey") => true,
        Some("NotFound") | None => status_of(err) == Some(404),
        Some(_) => false,
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<String> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        let if_match = matches!(condition, PutCondition::IfMatch(_));
        let request = match condition {
            PutCondition::None => request,
            PutCondition::IfAbsent => request.if_none_match("*"),
            PutCondition::IfMatch(etag) => request.if_match(etag),
        };
        let output = match request.send().await {
            Ok(output) => output,
            // If-Match on a key that no longer exists answers 404 NoSuchKey:
            // the object is not the one the caller expected, so the condition
            // failed, same as a changed ETag.
            Err(e) if if_match && is_missing(&e) => {
                return Err(BackendError::PreconditionFailed(self.location(key)));
            }
            Err(e) => {
                return Err(from_sdk(
                    SERVICE,
                    &format!("PutObject {}", self.location(key)),
                    e,
                ));
            }
        };
        output.e_tag.ok_or_else(|| BackendError::Service {
            service: SERVICE,
            message: format!("PutObject {}: no ETag in the answer", self.location(key)),
            retryable: false,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<GetObject>> {
        let context = || format!("GetObject {}", self.location(key));
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(from_sdk(SERVICE, &context(), e)),
        };
        let etag = output.e_tag.unwrap_or_default();
        let body = output
            .body
            .collect()
            .await
            // The connection broke mid-body: reading again is the fix.
            .map_err(|e| BackendError::Service {
                service: SERVICE,
                message: format!("{}: reading body: {e}", context()),
                retryable: true,
            })?
            .into_bytes();
        Ok(Some(GetObject { body, etag }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut objects = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .map_err(|e| {
                    from_sdk(
                        SERVICE,
                        &format!("ListObjectsV2 {}", self.location(prefix)),
                        e,
                    )
                })?;
            for object in output.contents.unwrap_or_default() {
                let Some(key) = object.key else { continue };
                objects.push(ObjectMeta {
                    key,
                    size: object.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: object.e_tag.unwrap_or_default(),
                    last_modified: object
                        .last_modified
                        .and_then(|t| SystemTime::try_from(t).ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
            match output.next_continuation_token {
                Some(token) if output.is_truncated == Some(true) => continuation = Some(token),
                _ => break,
            }
        }
        // S3 already lists in key (UTF-8 binary) order; sorting keeps the
        // contract explicit for any S3-compatible store that does not.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(from_sdk(
                SERVICE,
                &format!("DeleteObject {}", self.location(key)),
                e,
            )),
        }
    }
}
