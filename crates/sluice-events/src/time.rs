use chrono::DateTime;

use crate::EventError;

/// Microseconds since the Unix epoch for an ISO-8601 / RFC 3339 timestamp
/// (`2024-05-01T12:00:00.123Z`, `2024-05-01T14:00:00+02:00`).
pub fn parse_iso8601_us(field: &'static str, text: &str) -> Result<i64, EventError> {
    if let Some(us) = common_rfc3339_us(text.as_bytes()) {
        return Ok(us);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| EventError::InvalidValue {
            field,
            reason: format!("{text:?} is not an ISO-8601 timestamp ({e})"),
        })
}

/// The shape nearly every client sends, `YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction, then `Z` or `±HH:MM`, read by hand: chrono's general parser
/// costs several times as much, on every event's `timestamp` and `sentAt`.
/// `None` leaves anything else (other separators, leap seconds, fractions
/// beyond nanoseconds, errors) to chrono, so the answers and the error
/// messages stay chrono's.
fn common_rfc3339_us(b: &[u8]) -> Option<i64> {
    let digit = |i: usize| -> Option<i64> {
        let d = b.get(i)?.wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let date_time = b.get(..19)?;
    if [4, 7, 10, 13, 16].map(|i| date_time[i]) != *b"--T::" {
        return None;
    }
    let (year, month, day) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let mut i = 19;
    let mut micros = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        // Digits past the microsecond are dropped, as chrono truncates.
        let mut scale = 100_000;
        while let Some(d) = digit(i) {
            micros += d * scale;
            scale /= 10;
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
    }
    let offset_seconds = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (two(i + 1)?, two(i + 4)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The wall clock in microseconds since the Unix epoch, the unit of every
/// envelope time.
pub fn now_us() -> i64 {
    // Straight from the system clock: chrono's `Utc::now` costs several
    // times as much, on every request.
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => since.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
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

    /// The hand-read shape must answer exactly what chrono answers, and
    /// leave to chrono whatever it does not read itself.
    #[test]
    fn common_shape_agrees_with_chrono() {
        let chrono_us = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_micros())
        };
        let mut rng = sluice_testkit::Xorshift::new(7);
        let mut read_by_hand = 0;
        for _ in 0..200_000 {
            let fraction = match rng.below(4) {
                0 => String::new(),
                n => format!(".{}", &"123456789"[..n * 3 - rng.below(3)]),
            };
            let offset = match rng.below(3) {
                0 => "Z".to_owned(),
                _ => format!(
                    "{}{:02}:{:02}",
                    ["+", "-"][rng.below(2)],
                    rng.below(26),
                    rng.below(62)
                ),
            };
            let mut text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{offset}",
                rng.below(10_000),
                rng.below(14),
                rng.below(33),
                rng.below(25),
                rng.below(61),
                rng.below(61),
            );
            // Now and then one byte changed, to reach the near misses.
            if rng.below(8) == 0 {
                let at = rng.below(text.len());
                let byte = b"0 T:-+.Zzt9a"[rng.below(12)];
                let mut bytes = text.into_bytes();
                bytes[at] = byte;
                text = String::from_utf8(bytes).unwrap();
            }
            let fast = common_rfc3339_us(text.as_bytes());
            if fast.is_some() {
                read_by_hand += 1;
                assert_eq!(fast, chrono_us(&text), "{text}");
            }
            assert_eq!(
                parse_iso8601_us("t", &text).ok(),
                chrono_us(&text),
                "{text}"
            );
        }
        // Most of the generated dates are valid: the shape is the hot path.
        assert!(read_by_hand > 50_000, "{read_by_hand}");
        for edge in [
            "1970-01-01T00:00:00Z",
            "0000-03-01T00:00:00Z",
            "2000-02-29T23:59:59.999999999-23:59",
            "1900-02-28T12:00:00+00:00",
        ] {
            assert_eq!(
                common_rfc3339_us(edge.as_bytes()),
                chrono_us(edge),
                "{edge}"
            );
        }
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
    fn now_is_chrono_s_now() {
        let before = chrono::Utc::now().timestamp_micros();
        let now = now_us();
        let after = chrono::Utc::now().timestamp_micros();
        assert!((before..=after).contains(&now), "{before} {now} {after}");
    }

    #[test]
    fn corrects_client_clock_skew() {
        // Client clock 10 s fast: it says it sent at 100 s, event at 95 s.
        let corrected = skew_corrected(95_000_000, Some(100_000_000), 90_000_000);
        assert_eq!(corrected, 85_000_000);
        assert_eq!(skew_corrected(95, None, 90), 95);
    }
}
