use std::cmp::Ordering;
use std::fmt;

/// A Kinesis sequence number: an opaque decimal string, increasing per shard.
///
/// AWS's are up to 56 digits (too wide for `u128`) and emulators use short
/// ones, so ordering compares the digits numerically: shorter (after leading
/// zeros) is smaller, equal lengths compare lexicographically. Plain string
/// order would put `"9"` after `"10"`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// Accepts only non-empty decimal digits.
    pub fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| Self(s.to_owned()))
    }

    pub fn from_u128(n: u128) -> Self {
        Self(n.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for SequenceNumber {}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s).unwrap()
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(seq("9") < seq("10"));
        assert!(seq("0009") < seq("10"));
        assert_eq!(seq("007"), seq("7"));
        let aws_a = "49590338271490256608559692538361571095921575989136588898";
        let aws_b = "49590338271490256608559692540925702759324208523137515618";
        assert!(seq(aws_a) < seq(aws_b));
        // Wider than u128 on both sides: length decides.
        assert!(seq("99999999999999999999999999999999999999999") < seq(aws_a));
    }

    #[test]
    fn rejects_non_decimal() {
        assert!(SequenceNumber::parse("").is_none());
        assert!(SequenceNumber::parse("12a").is_none());
        assert!(SequenceNumber::parse("-1").is_none());
    }
}
