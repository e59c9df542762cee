//! Request bodies: gzip detected by its magic bytes (some clients compress
//! without saying so), decompressed only up to the request limit, so a
//! gzip bomb costs at most `limit` bytes of work and memory.

use std::io::Read;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use crate::CollectorError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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
