//! Request bodies: read up to the request limit, gzip detected by its magic
//! bytes (some clients compress without saying so), decompressed only up to
//! the request limit, so a gzip bomb costs at most `limit` bytes of work and
//! memory.

use std::fmt::Display;
use std::io::Read;

use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::CollectorError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a whole body of at most `limit` bytes. A body that arrives in one
/// chunk (most do: hyper hands over what one read of the socket brought) is
/// kept as it is, without a copy or a list of chunks.
pub async fn read_limited<B>(mut body: B, limit: usize) -> Result<Bytes, CollectorError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    let mut first: Option<Bytes> = None;
    // Every byte so far, once a second chunk has come.
    let mut joined = BytesMut::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CollectorError::BodyRead(e.to_string()))?;
        // Trailers carry no events.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len();
        if len > limit {
            return Err(CollectorError::BodyTooLarge { limit });
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            earlier => {
                joined.extend_from_slice(earlier.as_deref().unwrap_or_default());
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// The body as the protocol decoders see it. `declared_gzip` is whether
/// `Content-Encoding` said gzip.
pub fn decompress(body: Bytes, declared_gzip: bool, limit: usize) -> Result<Bytes, CollectorError> {
    if !body.starts_with(&GZIP_MAGIC) {
        if declared_gzip {
            return Err(CollectorError::Gzip(
                "Content-Encoding is gzip but the body does not start with the gzip magic bytes"
                    .into(),
            ));
        }
        return Ok(body);
    }
    // Compressed bodies are usually 5-10x smaller than their content.
    let mut out = Vec::with_capacity((body.len() * 8).min(limit + 1));
    let read = MultiGzDecoder::new(body.as_ref())
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CollectorError::Gzip(e.to_string()))?;
    if read > limit {
        return Err(CollectorError::BodyTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    /// A body that arrives in the given chunks.
    fn chunked(chunks: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = String> + Unpin {
        let frames = chunks
            .iter()
            .map(|c| Ok(hyper::body::Frame::data(Bytes::from_static(c))));
        http_body_util::StreamBody::new(futures::stream::iter(frames.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn reads_bodies_in_any_chunks_up_to_the_limit() {
        let bodies: [&[&'static [u8]]; 4] =
            [&[], &[b"{}"], &[b"{\"a\"", b":", b"1}"], &[b"", b"{}", b""]];
        for chunks in bodies {
            let whole: Vec<u8> = chunks.concat();
            let read = read_limited(chunked(chunks), 10).await.unwrap();
            assert_eq!(read, whole, "{chunks:?}");
        }
        // The limit is the body's length, not its chunks'.
        assert_eq!(
            read_limited(chunked(&[b"12345", b"67890"]), 10)
                .await
                .unwrap(),
            "1234567890"
        );
        let too_long: [&[&'static [u8]]; 2] = [&[b"12345678901"], &[b"12345", b"678901"]];
        for chunks in too_long {
            assert!(matches!(
                read_limited(chunked(chunks), 10).await,
                Err(CollectorError::BodyTooLarge { limit: 10 })
            ));
        }
        let failing = http_body_util::StreamBody::new(futures::stream::iter([
            Ok(hyper::body::Frame::data(Bytes::from_static(b"{"))),
            Err("connection reset".to_owned()),
        ]));
        assert!(matches!(
            read_limited(failing, 10).await,
            Err(CollectorError::BodyRead(reason)) if reason == "connection reset"
        ));
    }

    #[test]
    fn inflates_by_magic_and_bounds_output() {
        let plain = Bytes::from_static(b"{\"batch\":[]}");
        assert_eq!(decompress(gzip(&plain), false, 100).unwrap(), plain);
        assert_eq!(decompress(plain.clone(), false, 100).unwrap(), plain);
        assert!(matches!(
            decompress(plain, true, 100),
            Err(CollectorError::Gzip(_))
        ));
        let bomb = gzip(&vec![b' '; 10 << 20]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decompress(bomb, false, 1 << 20),
            Err(CollectorError::BodyTooLarge { limit }) if limit == 1 << 20
        ));
        let mut truncated = gzip(b"{\"a\":1}").to_vec();
        truncated.truncate(12);
        assert!(matches!(
            decompress(truncated.into(), false, 100),
            Err(CollectorError::Gzip(_))
        ));
    }
}
