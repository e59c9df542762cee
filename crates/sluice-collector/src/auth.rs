//! Write keys: which configured source sent a request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::HeaderValue;
use sluice_events::proto::Source;

use crate::last_answer::LastAnswer;
use crate::{CollectorConfig, CollectorError};

pub const ANONYMOUS: &str = "anonymous";

pub struct Sources {
    /// foldhash rather than SipHash: a lookup on every request, in a map
    /// clients never add to.
    by_key: HashMap<String, Source, foldhash::fast::RandomState>,
    allow_anonymous: bool,
}

impl Sources {
    pub fn new(config: &CollectorConfig) -> Self {
        let by_key = config
            .sources
            .iter()
            .map(|(name, key)| {
                let source = Source {
                    name: name.clone(),
                    write_key: key.clone(),
                };
                (key.clone(), source)
            })
            .collect();
        Self {
            by_key,
            allow_anonymous: config.allow_anonymous,
        }
    }

    /// The source a write key belongs to. Unknown or missing keys are
    /// refused unless anonymous writes are allowed. A configured source is
    /// borrowed: copying its strings for every request costs more than the
    /// lookup.
    pub fn resolve(&self, write_key: Option<&str>) -> Result<Cow<'_, Source>, CollectorError> {
        let key = write_key.filter(|k| !k.is_empty());
        if let Some(source) = key.and_then(|k| self.by_key.get(k)) {
            return Ok(Cow::Borrowed(source));
        }
        if self.allow_anonymous {
            return Ok(Cow::Owned(Source {
                name: ANONYMOUS.into(),
                write_key: key.unwrap_or_default().into(),
            }));
        }
        Err(match key {
            Some(_) => CollectorError::UnknownWriteKey,
            None => CollectorError::MissingWriteKey,
        })
    }
}

/// The write key in an `Authorization` header: Segment's HTTP Basic auth
/// (`base64(writeKey:)`), or `Bearer <key>`.
pub fn write_key_from_authorization(value: &str) -> Option<String> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let mut user = String::from_utf8(STANDARD.decode(credentials).ok()?).ok()?;
        // The key is the user name: cut the password off in place rather
        // than copy the name out (this runs on every request).
        if let Some(colon) = user.find(':') {
            user.truncate(colon);
        }
        return Some(user);
    }
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.to_owned())
}

/// The write key of a connection's last `Authorization` header, with a
/// copy of the header's bytes (a clone of the header would share, and so
/// keep, hyper's read buffer). The key is shared, not copied, with each
/// request that sends the same header.
#[derive(Default)]
pub struct LastAuthorization(LastAnswer<Box<[u8]>, Option<Arc<str>>>);

impl LastAuthorization {
    /// [`write_key_from_authorization`] of `header` (`None` unless it is
    /// visible ASCII), reused while the header's bytes stay the same.
    pub fn write_key(&self, header: &HeaderValue) -> Option<Arc<str>> {
        self.0.get(
            |last| **last == *header.as_bytes(),
            || {
                let write_key = header
                    .to_str()
                    .ok()
                    .and_then(write_key_from_authorization)
                    .map(Arc::from);
                (header.as_bytes().into(), write_key)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_and_bearer() {
        let basic = format!("Basic {}", STANDARD.encode("wk_123:"));
        assert_eq!(
            write_key_from_authorization(&basic).as_deref(),
            Some("wk_123")
        );
        assert_eq!(
            write_key_from_authorization("bearer wk_9").as_deref(),
            Some("wk_9")
        );
        assert_eq!(write_key_from_authorization("Basic !!!"), None);
        // The password, if any, is not part of the key; without a colon the
        // whole user name is.
        let with_password = format!("Basic {}", STANDARD.encode("wk_123:secret:x"));
        assert_eq!(
            write_key_from_authorization(&with_password).as_deref(),
            Some("wk_123")
        );
        let bare = format!("Basic {}", STANDARD.encode("wk_123"));
        assert_eq!(
            write_key_from_authorization(&bare).as_deref(),
            Some("wk_123")
        );
    }

    #[test]
    fn last_authorization_decodes_a_different_header_anew() {
        let last = LastAuthorization::default();
        let basic = |key: &str| {
            HeaderValue::try_from(format!("Basic {}", STANDARD.encode(format!("{key}:")))).unwrap()
        };
        let headers = [
            basic("wk_1"),
            basic("wk_1"),
            basic("wk_2"),
            HeaderValue::from_static("Bearer wk_3"),
            HeaderValue::from_static("Basic !!!"),
            HeaderValue::from_bytes(b"Bearer wk_\xff").unwrap(),
            basic("wk_1"),
        ];
        for header in &headers {
            let expected = header.to_str().ok().and_then(write_key_from_authorization);
            assert_eq!(
                last.write_key(header).as_deref(),
                expected.as_deref(),
                "{header:?}"
            );
        }
        assert_eq!(last.write_key(&basic("wk_1")).as_deref(), Some("wk_1"));
        assert_eq!(last.write_key(&basic("wk_2")).as_deref(), Some("wk_2"));
    }

    #[test]
    fn resolves_sources() {
        let mut config = CollectorConfig::default();
        config.sources.insert("web".into(), "wk_web".into());
        let sources = Sources::new(&config);
        assert_eq!(sources.resolve(Some("wk_web")).unwrap().name, "web");
        assert!(matches!(
            sources.resolve(Some("nope")),
            Err(CollectorError::UnknownWriteKey)
        ));
        assert!(matches!(
            sources.resolve(None),
            Err(CollectorError::MissingWriteKey)
        ));
        config.allow_anonymous = true;
        let open = Sources::new(&config);
        assert_eq!(open.resolve(Some("nope")).unwrap().name, ANONYMOUS);
    }
}
