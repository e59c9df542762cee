//! Kinesis PutRecords limits, checked before sending.
//!
//! AWS rejects an oversized call as a whole, and emulators do not enforce
//! record size at all (moto accepts a 1.1 MB record), so a batch that only
//! works locally would fail in production. Checking here gives one error
//! naming the limit, whatever the backend.

use crate::{BackendError, PutRecord, Result};

pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Data plus partition key of one record.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Data plus partition keys of every record in one call.
pub const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;
/// In characters, as Kinesis counts them.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Checks one PutRecords call against the service limits.
pub fn check_put_records(records: &[PutRecord]) -> Result<()> {
    if records.len() > MAX_RECORDS_PER_CALL {
        return Err(BackendError::InvalidArgument(format!(
            "PutRecords takes at most {MAX_RECORDS_PER_CALL} records per call, got {}",
            records.len()
        )));
    }
    let mut total = 0usize;
    for (i, record) in records.iter().enumerate() {
        let key_chars = record.partition_key.chars().count();
        if key_chars == 0 || key_chars > MAX_PARTITION_KEY_CHARS {
            return Err(BackendError::InvalidArgument(format!(
                "record {i}: partition key must be 1..={MAX_PARTITION_KEY_CHARS} characters, got {key_chars}"
            )));
        }
        let size = record.data.len() + record.partition_key.len();
        if size > MAX_RECORD_BYTES {
            return Err(BackendError::InvalidArgument(format!(
                "record {i}: {size} bytes (data + partition key) exceeds the {MAX_RECORD_BYTES}-byte record limit"
            )));
        }
        if let Some(hash_key) = &record.explicit_hash_key {
            // Kinesis wants a decimal in 0..2^128; u128 parsing checks exactly that.
            if hash_key.is_empty() || !hash_key.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BackendError::InvalidArgument(format!(
                    "record {i}: explicit hash key {hash_key:?} is not a decimal number"
                )));
            }
            if hash_key.parse::<u128>().is_err() {
                return Err(BackendError::InvalidArgument(format!(
                    "record {i}: explicit hash key {hash_key} exceeds 2^128 - 1"
                )));
            }
        }
        total += size;
    }
    if total > MAX_CALL_BYTES {
        return Err(BackendError::InvalidArgument(format!(
            "PutRecords call of {total} bytes (data + partition keys) exceeds the {MAX_CALL_BYTES}-byte call limit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(key: &str, size: usize) -> PutRecord {
        PutRecord {
            partition_key: key.to_owned(),
            data: Bytes::from(vec![0u8; size]),
            explicit_hash_key: None,
        }
    }

    fn message(records: &[PutRecord]) -> String {
        match check_put_records(records) {
            Err(BackendError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn accepts_records_at_the_limits() {
        let key = "k".repeat(MAX_PARTITION_KEY_CHARS);
        let max = record(&key, MAX_RECORD_BYTES - key.len());
        assert!(check_put_records(&[max]).is_ok());
        let batch: Vec<_> = (0..MAX_RECORDS_PER_CALL).map(|_| record("k", 10)).collect();
        assert!(check_put_records(&batch).is_ok());
        // Five full records fill the call exactly.
        let full: Vec<_> = (0..5).map(|_| record("k", MAX_RECORD_BYTES - 1)).collect();
        assert!(check_put_records(&full).is_ok());
    }

    #[test]
    fn names_the_limit_it_enforces() {
        let batch: Vec<_> = (0..=MAX_RECORDS_PER_CALL).map(|_| record("k", 1)).collect();
        assert!(message(&batch).contains("at most 500 records"));
        assert!(message(&[record("k", MAX_RECORD_BYTES)]).contains("record limit"));
        let six: Vec<_> = (0..6).map(|_| record("k", MAX_RECORD_BYTES - 1)).collect();
        assert!(message(&six).contains("call limit"));
        assert!(message(&[record("", 1)]).contains("partition key"));
        // 256 characters is fine even when they take more bytes.
        assert!(check_put_records(&[record(&"é".repeat(256), 1)]).is_ok());
        assert!(message(&[record(&"é".repeat(257), 1)]).contains("partition key"));
    }

    #[test]
    fn checks_explicit_hash_keys() {
        let mut r = record("k", 1);
        r.explicit_hash_key = Some(u128::MAX.to_string());
        assert!(check_put_records(std::slice::from_ref(&r)).is_ok());
        r.explicit_hash_key = Some("340282366920938463463374607431768211456".into());
        assert!(message(std::slice::from_ref(&r)).contains("2^128"));
        r.explicit_hash_key = Some("-1".into());
        assert!(message(&[r]).contains("decimal"));
    }
}
