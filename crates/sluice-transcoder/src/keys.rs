//! Object keys: the raw archive's key is parsed, and every Parquet file's
//! key is derived from it, so transcoding the same object again writes the
//! same keys (a retry overwrites, it does not duplicate).

use crate::TranscodeError;

/// The parts of `raw/<stream>/dt=YYYY-MM-DD/hh=HH/<shard_id>/<first>-<last>.pb.zst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawKey {
    pub stream: String,
    pub date: String,
    pub shard_id: String,
    pub first_sequence: String,
    pub last_sequence: String,
}

const SUFFIX: &str = ".pb.zst";

impl RawKey {
    pub fn parse(key: &str) -> Result<Self, TranscodeError> {
        let bad = || TranscodeError::RawKey {
            key: key.to_owned(),
        };
        let rest = key.strip_prefix("raw/").ok_or_else(bad)?;
        let mut parts = rest.rsplitn(5, '/');
        let (Some(file), Some(shard_id), Some(hour), Some(date), Some(stream)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let date = date
            .strip_prefix("dt=")
            .filter(|d| is_date(d))
            .ok_or_else(bad)?;
        let hour_ok = hour
            .strip_prefix("hh=")
            .is_some_and(|h| h.len() == 2 && h.bytes().all(|b| b.is_ascii_digit()));
        let (first, last) = file
            .strip_suffix(SUFFIX)
            .and_then(|range| range.split_once('-'))
            .ok_or_else(bad)?;
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !hour_ok || !numeric(first) || !numeric(last) || stream.is_empty() || shard_id.is_empty()
        {
            return Err(bad());
        }
        Ok(Self {
            stream: stream.to_owned(),
            date: date.to_owned(),
            shard_id: shard_id.to_owned(),
            first_sequence: first.to_owned(),
            last_sequence: last.to_owned(),
        })
    }

    /// `tables/<table>/dt=YYYY-MM-DD/<stream>-<shard_id>-<first>-<last>.parquet`.
    pub fn table_key(&self, table: &str) -> String {
        format!(
            "tables/{table}/dt={}/{}-{}-{}-{}.parquet",
            self.date, self.stream, self.shard_id, self.first_sequence, self.last_sequence
        )
    }
}

fn is_date(d: &str) -> bool {
    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() && d.len() == 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives() {
        let key = "raw/events/dt=2024-05-01/hh=13/shardId-000000000002/100-250.pb.zst";
        let raw = RawKey::parse(key).unwrap();
        assert_eq!(raw.stream, "events");
        assert_eq!(raw.shard_id, "shardId-000000000002");
        assert_eq!(
            raw.table_key("video_played"),
            "tables/video_played/dt=2024-05-01/events-shardId-000000000002-100-250.parquet"
        );
    }

    #[test]
    fn refuses_other_keys() {
        for key in [
            "raw/events/dt=2024-05-01/hh=13/s/1-2.json",
            "raw/events/dt=2024-13-01/hh=13/s/1-2.pb.zst",
            "raw/events/dt=2024-05-01/s/1-2.pb.zst",
            "raw/dt=2024-05-01/hh=13/s/1-2.pb.zst",
            "other/events/dt=2024-05-01/hh=13/s/1-2.pb.zst",
            "raw/events/dt=2024-05-01/hh=13/s/x-2.pb.zst",
        ] {
            let err = RawKey::parse(key).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
