//! Bodies with invalid UTF-8. JSON must be UTF-8, but one client's bad
//! bytes inside one event must not cost the other events of the batch: the
//! bad bytes become U+FFFD so the body still parses, and every event whose
//! text covers a replacement is rejected, naming the byte offset.

use std::borrow::Cow;
use std::ops::Range;

pub struct BodyText<'a> {
    text: Cow<'a, str>,
    /// Where replacements sit in `text`, with the offset of the invalid
    /// bytes in the original body.
    replaced: Vec<(Range<usize>, usize)>,
}

impl<'a> BodyText<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return Self {
                text: Cow::Borrowed(text),
                replaced: Vec::new(),
            };
        }
        let mut text = String::with_capacity(bytes.len() + 16);
        let mut replaced = Vec::new();
        let mut original = 0;
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            original += chunk.valid().len();
            if !chunk.invalid().is_empty() {
                let at = text.len();
                text.push(char::REPLACEMENT_CHARACTER);
                replaced.push((at..text.len(), original));
                original += chunk.invalid().len();
            }
        }
        Self {
            text: Cow::Owned(text),
            replaced,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The body offset of the first invalid byte inside `part`, which must
    /// be a slice of [`BodyText::as_str`].
    pub fn invalid_in(&self, part: &str) -> Option<usize> {
        if self.replaced.is_empty() {
            return None;
        }
        let start = part.as_ptr() as usize - self.text.as_ptr() as usize;
        let end = start + part.len();
        self.replaced
            .iter()
            .find(|(range, _)| range.start < end && start < range.end)
            .map(|(_, original)| *original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_invalid_bytes_per_part() {
        let body = b"[{\"a\":\"ok\"},{\"a\":\"b\xff\xfed\"},{\"a\":\"fine\"}]";
        let text = BodyText::new(body);
        let s = text.as_str();
        let first = &s[1..11];
        let second_start = s.find("},{").unwrap() + 2;
        let second_end = s[second_start..].find('}').unwrap() + second_start + 1;
        let second = &s[second_start..second_end];
        assert_eq!(text.invalid_in(first), None);
        assert_eq!(text.invalid_in(second), Some(19));
        let valid = BodyText::new(b"{}");
        assert_eq!(valid.invalid_in(valid.as_str()), None);
    }
}
