//! Checksummed, length-prefixed frames: the unit of every append-only local
//! file (stream segments and the queue journal).
//!
//! Layout: `magic u8 | body_len u32 LE | crc32(body) u32 LE | body`. The magic
//! byte and a non-empty body make a zero-filled tail (what a file system may
//! leave after a crash) read as invalid instead of as empty frames.

use std::io::{self, Read};

const MAGIC: u8 = 0xA7;
pub const HEADER_LEN: usize = 9;
/// Larger than any body we write (a 1 MiB record plus its fields); a bigger
/// length can only be garbage.
pub const MAX_BODY_LEN: usize = 8 << 20;

pub fn encode_into(out: &mut Vec<u8>, body: &[u8]) {
    out.push(MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// What a reader found at its position.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole, checksummed frame body; the frame took `len` bytes.
    Frame { body: Vec<u8>, len: u64 },
    /// Nothing more (clean end of the written data).
    End,
    /// Bytes that are not a whole valid frame: a torn write, a write still in
    /// progress (another process), or corruption.
    Invalid,
}

/// Reads the frame at the reader's position. Never returns a frame whose
/// checksum does not match.
pub fn read_next(reader: &mut impl Read) -> io::Result<Next> {
    let mut header = [0u8; HEADER_LEN];
    match read_full(reader, &mut header)? {
        0 => return Ok(Next::End),
        n if n < HEADER_LEN => return Ok(Next::Invalid),
        _ => {}
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let crc = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    if header[0] != MAGIC || len == 0 || len > MAX_BODY_LEN {
        return Ok(Next::Invalid);
    }
    let mut body = vec![0u8; len];
    if read_full(reader, &mut body)? < len || crc32fast::hash(&body) != crc {
        return Ok(Next::Invalid);
    }
    Ok(Next::Frame {
        body,
        len: (HEADER_LEN + len) as u64,
    })
}

/// Like `read_exact`, but reports how much was read instead of failing at EOF.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut buf = Vec::new();
        encode_into(&mut buf, b"hello");
        encode_into(&mut buf, b"world!");
        let mut r = &buf[..];
        assert_eq!(
            read_next(&mut r).unwrap(),
            Next::Frame {
                body: b"hello".to_vec(),
                len: 14
            }
        );
        assert!(matches!(read_next(&mut r).unwrap(), Next::Frame { .. }));
        assert_eq!(read_next(&mut r).unwrap(), Next::End);

        // A torn tail: the second frame cut short.
        let mut r = &buf[..buf.len() - 2];
        read_next(&mut r).unwrap();
        assert_eq!(read_next(&mut r).unwrap(), Next::Invalid);

        // A flipped bit in the body.
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert_eq!(read_next(&mut &bad[..]).unwrap(), Next::Invalid);

        // Zeros, as a crash may leave them.
        assert_eq!(read_next(&mut &[0u8; 32][..]).unwrap(), Next::Invalid);
    }
}
