use chrono::DateTime;

use crate::EventError;

/// Microseconds since the Unix epoch for an ISO-8601 / RFC 3339 timestamp
/// (`2024-05-01T12:00:00.123Z`, `2024-05-01T14:00:00+02:00`).
pub fn parse_iso8601_us(field: &'static str, text: &str) -> Result<i64, EventError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| EventError::InvalidValue {
            field,
            reason: format!("{text:?} is not an ISO-8601 timestamp ({e})"),
        })
}

/// The wall clock in microseconds since the Unix epoch, the unit of every
/// envelope time.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 text (UTC, microsecond precision) for microseconds since the
/// Unix epoch.
pub fn format_us(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// When the event happened by the collector's clock: the client's clock is
/// trusted for intervals, not for absolute time, so the client's
/// `sent_at - timestamp` is subtracted from `received_at`.
pub fn skew_corrected(timestamp_us: i64, sent_at_us: Option<i64>, received_at_us: i64) -> i64 {
    match sent_at_us {
        Some(sent_at) => received_at_us.saturating_sub(sent_at.saturating_sub(timestamp_us)),
        None => timestamp_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_iso8601_us("timestamp", "2024-05-01T12:00:00.123Z").unwrap();
        let plus2 = parse_iso8601_us("timestamp", "2024-05-01T14:00:00.123+02:00").unwrap();
        assert_eq!(z, plus2);
        assert_eq!(z % 1_000_000, 123_000);
        assert_eq!(format_us(z), "2024-05-01T12:00:00.123000Z");
    }

    #[test]
    fn names_field_in_error() {
        let err = parse_iso8601_us("sentAt", "yesterday").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sentAt: \"yesterday\" is not an ISO-8601")
        );
    }

    #[test]
    fn corrects_client_clock_skew() {
        // Client clock 10 s fast: it says it sent at 100 s, event at 95 s.
        let corrected = skew_corrected(95_000_000, Some(100_000_000), 90_000_000);
        assert_eq!(corrected, 85_000_000);
        assert_eq!(skew_corrected(95, None, 90), 95);
    }
}
