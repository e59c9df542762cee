//! JSON's grammar (RFC 8259), checked exactly as strictly as serde_json
//! checks what it parses or skips, by passes that measure a value's
//! [`Shape`] on the way: checking the text is what lets the collector skip
//! serde's parse of a whole body, and measuring it then costs no extra pass.
//!
//! Each function takes the bytes of a `&str` (so UTF-8 is already valid) and
//! the offset where a token starts, and answers the offset just past it, or
//! `None` when the text there is not valid JSON.

use crate::limits::Shape;

#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The offset of the first `"`, `\` or control character (which a string
/// may not hold raw) at or after `i`, `b.len()` if none: eight bytes at a
/// time, as most of an event's bytes are in strings.
#[inline]
fn find_string_special(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quotes = word ^ (ONES * u64::from(b'"'));
        let backslashes = word ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set where it is zero (or below 0x20 for the
        // controls), exact up to the first such byte, which is all that is
        // read.
        let found = ((quotes.wrapping_sub(ONES) & !quotes)
            | (backslashes.wrapping_sub(ONES) & !backslashes)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGHS;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&byte) = b.get(i) {
        if matches!(byte, b'"' | b'\\' | 0..0x20) {
            return i;
        }
        i += 1;
    }
    b.len().max(i)
}

/// Offset just past the string whose opening quote is at `i`, and whether
/// it holds an escape.
#[inline]
pub(crate) fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    i += 1;
    loop {
        i = find_string_special(b, i);
        match b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i = escape_end(b, i)?;
            }
            _ => return None,
        }
    }
}

/// Offset just past the escape whose backslash is at `i`. Like serde_json
/// skipping a value, a `\u` escape is not checked for lone surrogates.
fn escape_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 2),
        b'u' => {
            let hex = b.get(i + 2..i + 6)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(i + 6)
        }
        _ => None,
    }
}

fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some(end)
}

fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        // A leading zero stands alone.
        b'0' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
        b'0' => i + 1,
        b'1'..=b'9' => digits_end(b, i + 1),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let end = digits_end(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits_end(b, i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

fn scalar_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b't' => literal_end(b, i, b"true"),
        b'f' => literal_end(b, i, b"false"),
        b'n' => literal_end(b, i, b"null"),
        _ => number_end(b, i),
    }
}

/// From a key's opening quote at `i` to the start of its value.
#[inline]
fn member_value_start(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let colon = skip_ws(b, string_end(b, i)?.0);
    (b.get(colon) == Some(&b':')).then(|| skip_ws(b, colon + 1))
}

/// Walks the members of the object whose `{` is at `start`, checking its
/// grammar between them: `member(key, value_start)` reads each value and
/// answers the offset just past it. Answers the offset just past the
/// object, or `None` for invalid JSON, for a key with an escape (left to
/// serde, which decodes keys), or when `member` answers `None`.
#[inline]
pub(crate) fn object_members<'a>(
    text: &'a str,
    start: usize,
    mut member: impl FnMut(&'a str, usize) -> Option<usize>,
) -> Option<usize> {
    let b = text.as_bytes();
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(b, start + 1);
    if b.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = string_end(b, i)?;
        if escaped {
            return None;
        }
        let key = text.get(i + 1..key_end - 1)?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, member(key, skip_ws(b, i + 1))?);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Which containers are open, one bit each (set for an array), innermost
/// lowest: a value is walked without recursion, so hostile nesting cannot
/// overflow the stack, and nothing is allocated until it is 64 deep.
#[derive(Default)]
struct Open {
    depth: usize,
    bits: u64,
    /// Full words of outer levels, once deeper than 64.
    outer: Vec<u64>,
}

impl Open {
    fn push(&mut self, array: bool) {
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.outer.push(self.bits);
        }
        self.bits = (self.bits << 1) | u64::from(array);
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
        self.bits >>= 1;
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.bits = self.outer.pop().expect("pushed when it was this deep");
        }
    }

    fn in_array(&self) -> bool {
        self.bits & 1 == 1
    }
}

/// Offset just past the JSON value starting at `i`, and its shape. A leaf
/// is a value inside an object that is not itself an object, while no array
/// is open (what flattening makes a column: an array counts once).
pub(crate) fn value_end(b: &[u8], mut i: usize) -> Option<(Shape, usize)> {
    let mut shape = Shape::default();
    let mut open = Open::default();
    let mut arrays_open = 0usize;
    loop {
        // A value starts at `i`.
        let first = *b.get(i)?;
        if open.depth > 0 && arrays_open == 0 && first != b'{' {
            shape.leaves += 1;
        }
        i = match first {
            b'{' | b'[' => {
                let array = first == b'[';
                open.push(array);
                arrays_open += usize::from(array);
                shape.depth = shape.depth.max(open.depth);
                let inner = skip_ws(b, i + 1);
                let close = if array { b']' } else { b'}' };
                if b.get(inner) != Some(&close) {
                    i = if array {
                        inner
                    } else {
                        member_value_start(b, inner)?
                    };
                    continue;
                }
                // Empty: its closing bracket is read below.
                inner
            }
            b'"' => string_end(b, i)?.0,
            _ => scalar_end(b, i)?,
        };
        // Close the containers the value ends, up to the next value.
        loop {
            if open.depth == 0 {
                return Some((shape, i));
            }
            i = skip_ws(b, i);
            match (*b.get(i)?, open.in_array()) {
                (b',', true) => {
                    i = skip_ws(b, i + 1);
                    break;
                }
                (b',', false) => {
                    i = member_value_start(b, skip_ws(b, i + 1))?;
                    break;
                }
                (b']', true) => arrays_open -= 1,
                (b'}', false) => {}
                _ => return None,
            }
            open.pop();
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_testkit::Xorshift;

    use super::*;

    /// The whole text is one valid JSON value.
    fn accepts(text: &str) -> bool {
        let b = text.as_bytes();
        value_end(b, skip_ws(b, 0)).is_some_and(|(_, end)| skip_ws(b, end) == b.len())
    }

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    /// Mostly from `good`, one time in `1 / MISS_RATE` from `bad`.
    fn pick_or_miss<'a>(rng: &mut Xorshift, good: &[&'a str], bad: &[&'a str]) -> &'a str {
        const MISS_RATE: usize = 40;
        match rng.below(MISS_RATE) {
            0 => rng.pick(bad),
            _ => rng.pick(good),
        }
    }

    /// Mostly valid JSON, with the near misses a parser must catch.
    fn value(rng: &mut Xorshift, depth: usize, out: &mut String) {
        const WS: (&[&str], &[&str]) = (
            &["", "", "", " ", "\n", "\t", "\r\n "],
            &["\u{a0}", "\x0b", "\u{feff}"],
        );
        const SCALARS: (&[&str], &[&str]) = (
            &[
                "0", "-0", "12", "-1.5e3", "1E+2", "0.25", "1e-7", "true", "false", "null",
                "-0.0e0",
            ],
            &[
                "01", "-", "1.", "1e", ".5", "+1", "1.5E", "--1", "0x1", "tru", "nul", "fals",
                "True", "NaN", "Infinity", "1_0", "1e+", "-01",
            ],
        );
        const STRING_PARTS: (&[&str], &[&str]) = (
            &[
                "a",
                "é",
                "日本",
                " ",
                "\\n",
                "\\\"",
                "\\\\",
                "\\/",
                "\\u00e9",
                "\\uD83D\\uDE00",
                "\\ud800",
                "\x7f",
                "}",
                "]",
                ",",
                ":",
                "{",
                "[",
            ],
            &["\\u12", "\\uzzzz", "\\x", "\\'", "\t", "\n", "\x01", "\\"],
        );
        const KEYS: (&[&str], &[&str]) = (&[r#""k""#, r#""k\u0041""#, r#""""#], &["k", "1", "'k'"]);
        out.push_str(pick_or_miss(rng, WS.0, WS.1));
        match rng.below(if depth > 4 { 2 } else { 4 }) {
            0 => out.push_str(pick_or_miss(rng, SCALARS.0, SCALARS.1)),
            1 => {
                out.push('"');
                for _ in 0..rng.below(4) {
                    out.push_str(pick_or_miss(rng, STRING_PARTS.0, STRING_PARTS.1));
                }
                out.push('"');
            }
            2 => {
                out.push('[');
                for n in 0..rng.below(4) {
                    if n > 0 {
                        out.push_str(pick_or_miss(rng, &[","], &["", ",,"]));
                    }
                    value(rng, depth + 1, out);
                }
                out.push_str(pick_or_miss(rng, &["]"], &[",]", "}", ""]));
            }
            _ => {
                out.push('{');
                for n in 0..rng.below(4) {
                    if n > 0 {
                        out.push_str(pick_or_miss(rng, &[","], &["", ",,"]));
                    }
                    out.push_str(pick_or_miss(rng, WS.0, WS.1));
                    out.push_str(pick_or_miss(rng, KEYS.0, KEYS.1));
                    out.push_str(pick_or_miss(rng, WS.0, WS.1));
                    out.push_str(pick_or_miss(rng, &[":"], &["", "="]));
                    value(rng, depth + 1, out);
                }
                out.push_str(pick_or_miss(rng, &["}"], &[",}", "]", ""]));
            }
        }
        out.push_str(pick_or_miss(rng, WS.0, WS.1));
    }

    /// One byte-level mutation at a char boundary.
    fn mutate(rng: &mut Xorshift, text: &mut String) {
        const BYTES: &[&str] = &[
            "\"", "\\", ",", ":", "{", "}", "[", "]", "0", "e", "-", " ", "\x1f",
        ];
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(3) {
            0 => text.insert_str(at, rng.pick(BYTES)),
            1 => text.truncate(at),
            _ => {
                if let Some(c) = text[at..].chars().next() {
                    text.replace_range(at..at + c.len_utf8(), "");
                }
            }
        }
    }

    #[test]
    fn accepts_exactly_what_serde_json_accepts() {
        let mut rng = Xorshift::new(0x9e37_79b9_7f4a_7c15);
        let (mut valid, mut invalid) = (0, 0);
        for round in 0..60_000 {
            let mut text = String::new();
            value(&mut rng, 0, &mut text);
            if round % 2 == 1 {
                for _ in 0..=rng.below(3) {
                    mutate(&mut rng, &mut text);
                }
            }
            let expected = serde_accepts(&text);
            assert_eq!(accepts(&text), expected, "{text:?}");
            if expected { valid += 1 } else { invalid += 1 }
        }
        // Both answers must be well represented for the test to mean much.
        assert!(
            valid > 10_000 && invalid > 10_000,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn edge_cases() {
        for text in [
            "0",
            "-0",
            "[]",
            "{}",
            " [ ] ",
            r#"{"a":[1,{"b":null}],"c":"\u00e9"}"#,
            r#""\ud800""#,
            "1.5e+3",
            "[[[[]]]]",
        ] {
            assert!(accepts(text) && serde_accepts(text), "{text:?}");
        }
        for text in [
            "",
            " ",
            "01",
            "[1,]",
            "{,}",
            r#"{"a":1,}"#,
            r#"{"a"}"#,
            "[1 2]",
            "\"\x01\"",
            "\"\\u12\"",
            "[}",
            "{]",
            "[[]",
            "1 1",
            "\u{feff}1",
            "-",
            "[-]",
            "\"",
            "\"\\",
        ] {
            assert!(!accepts(text) && !serde_accepts(text), "{text:?}");
        }
    }

    #[test]
    fn finds_string_specials_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                for c in [b'"', b'\\', b'\n', 0, 0x1f] {
                    let mut text = vec![b'a'; len];
                    if at < len {
                        text[at] = c;
                        // A later match must not win.
                        if at + 1 < len {
                            text[len - 1] = b'"';
                        }
                    }
                    for from in 0..=at.min(len) {
                        assert_eq!(find_string_special(&text, from), at.min(len));
                    }
                }
            }
        }
        // Bytes of multi-byte characters are all above the controls.
        let utf8 = "é\"ü\\ \u{7f}\u{80}".as_bytes();
        assert_eq!(find_string_special(utf8, 0), 2);
        assert_eq!(find_string_special(utf8, 3), 5);
        assert_eq!(find_string_special(utf8, 6), utf8.len());
    }

    #[test]
    fn nesting_deeper_than_a_word() {
        for depth in [63, 64, 65, 128, 129, 100_000] {
            let mixed: String = (0..depth)
                .map(|d| if d % 3 == 0 { "[" } else { "{\"k\":" })
                .collect();
            let closed: String = (0..depth)
                .rev()
                .map(|d| if d % 3 == 0 { "]" } else { "}" })
                .collect();
            let text = format!("{mixed}1{closed}");
            let (shape, end) = value_end(text.as_bytes(), 0).expect("valid");
            assert_eq!((shape.depth, end), (depth, text.len()));
            // One bracket swapped anywhere is caught.
            let mut wrong = text.clone().into_bytes();
            let at = text.len() - 1 - depth / 2;
            wrong[at] = if wrong[at] == b']' { b'}' } else { b']' };
            assert!(value_end(&wrong, 0).is_none(), "depth {depth}");
        }
    }
}
