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
/// may not hold raw) at or after `i`, `b.len()` if none: sixteen bytes at a
/// time, as most of an event's bytes are in strings.
#[inline(always)]
fn find_string_special(b: &[u8], mut i: usize) -> usize {
    while let Some(block) = b.get(i..i + 16) {
        let at = block_special(block.try_into().expect("16 bytes"));
        if at < 16 {
            return i + at;
        }
        i += 16;
    }
    while let Some(&byte) = b.get(i) {
        if matches!(byte, b'"' | b'\\' | 0..0x20) {
            return i;
        }
        i += 1;
    }
    b.len().max(i)
}

/// The offset in `block` of its first `"`, `\` or control character, 16 if
/// none. SSE2 does a block in about half the instructions of plain
/// integers, and keeps its constants out of the registers the walks need.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_special(block: &[u8; 16]) -> usize {
    // SAFETY: SSE2 is part of the x86_64 baseline: every CPU that runs this
    // code has the feature `block_special_sse2` is compiled for.
    unsafe { block_special_sse2(block) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block_special(block: &[u8; 16]) -> usize {
    block_special_swar(block)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn block_special_sse2(block: &[u8; 16]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: `block` is 16 readable bytes, and `loadu` needs no alignment.
    let bytes = unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) };
    let quotes = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
    let backslashes = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
    // A byte is below 0x20 where its unsigned minimum with 0x1f is itself.
    let controls = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1f)), bytes);
    let found = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quotes, backslashes), controls));
    // One bit per byte, first byte lowest; bit 16 answers 16 when none is.
    (found as u32 | 1 << 16).trailing_zeros() as usize
}

/// [`block_special`] in plain integers, eight bytes at a time: what other
/// targets use, and what the tests hold the SSE2 version to.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn block_special_swar(block: &[u8; 16]) -> usize {
    let (low, high) = block.split_at(8);
    for (base, word) in [(0, low), (8, high)] {
        let found = word_specials(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        if found != 0 {
            return base + (found.trailing_zeros() / 8) as usize;
        }
    }
    16
}

/// The high bit of each byte of `word` (read little-endian) that is `"`,
/// `\` or a control character, exact up to the first such byte, which is
/// all that is read.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn word_specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // `x - n` sets a byte's high bit where the byte is below `n` (or at or
    // above 0x80 + n, which `!word` masks out), exact up to the first such
    // byte, past which the borrow may carry. Flipping bit 1 maps `"` (0x22)
    // to 0x20 and the controls onto themselves, so one compare finds both.
    let quotes_controls = (word ^ (ONES * 0x02)).wrapping_sub(ONES * 0x21);
    let backslashes = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    // Bytes of multi-byte characters (0x80 and above) are never special.
    (quotes_controls | backslashes) & !word & (ONES * 0x80)
}

/// Offset just past the string whose opening quote is at `i`.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i = find_string_special(b, i);
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i = escape_end(b, i)?,
            _ => return None,
        }
    }
}

/// [`string_end`] of a string without escapes; `None` for one with any.
#[inline(always)]
fn plain_string_end(b: &[u8], i: usize) -> Option<usize> {
    let special = find_string_special(b, i + 1);
    (b.get(special) == Some(&b'"')).then_some(special + 1)
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

/// The first byte at or after `i` that is not whitespace, with its offset.
/// Tokens mostly follow each other directly, so one compare usually decides.
#[inline(always)]
fn next_token(b: &[u8], i: usize) -> Option<(usize, u8)> {
    match b.get(i) {
        Some(&byte) if byte > b' ' => Some((i, byte)),
        _ => {
            let i = skip_ws(b, i);
            Some((i, *b.get(i)?))
        }
    }
}

/// From a key's first byte `first` at `i` to its value's first byte and
/// offset.
#[inline(always)]
fn member_value(b: &[u8], i: usize, first: u8) -> Option<(usize, u8)> {
    if first != b'"' {
        return None;
    }
    let (colon, byte) = next_token(b, string_end(b, i)?)?;
    if byte != b':' {
        return None;
    }
    next_token(b, colon + 1)
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
    let (mut i, mut byte) = next_token(b, start + 1)?;
    if byte == b'}' {
        return Some(i + 1);
    }
    loop {
        if byte != b'"' {
            return None;
        }
        // A key with an escape is left to serde, which decodes keys.
        let key_end = plain_string_end(b, i)?;
        let key = text.get(i + 1..key_end - 1)?;
        let (colon, byte_after_key) = next_token(b, key_end)?;
        if byte_after_key != b':' {
            return None;
        }
        let (value, _) = next_token(b, colon + 1)?;
        (i, byte) = next_token(b, member(key, value)?)?;
        match byte {
            b',' => (i, byte) = next_token(b, i + 1)?,
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Which containers are open, one bit each (set for an array), innermost
/// lowest: a value is walked without recursion, so hostile nesting cannot
/// overflow the stack, and nothing is allocated until it is 64 deep. The
/// outer words are kept apart, so that the walk holds this in registers.
#[derive(Clone, Copy, Default)]
struct Open {
    depth: usize,
    bits: u64,
}

impl Open {
    /// `outer` holds full words of outer levels, once deeper than 64.
    #[inline(always)]
    fn push(&mut self, array: bool, outer: &mut Vec<u64>) {
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            spill(outer, self.bits);
        }
        self.bits = (self.bits << 1) | u64::from(array);
        self.depth += 1;
    }

    #[inline(always)]
    fn pop(&mut self, outer: &mut Vec<u64>) {
        self.depth -= 1;
        self.bits >>= 1;
        if self.depth > 0 && self.depth.is_multiple_of(64) {
            self.bits = unspill(outer);
        }
    }

    fn in_array(self) -> bool {
        self.bits & 1 == 1
    }
}

/// Out of line, as is [`unspill`]: only hostile nesting gets there, and
/// inline they would cost the walk registers.
#[cold]
#[inline(never)]
fn spill(outer: &mut Vec<u64>, bits: u64) {
    outer.push(bits);
}

#[cold]
#[inline(never)]
fn unspill(outer: &mut Vec<u64>) -> u64 {
    outer.pop().expect("pushed when it was this deep")
}

/// Offset just past the JSON value starting at `i`, and its shape. A leaf
/// is a value inside an object that is not itself an object, while no array
/// is open (what flattening makes a column: an array counts once).
///
/// Inline, so that a string or a scalar (most of an event's fields) is read
/// where the caller is; containers are walked out of line.
#[inline(always)]
pub(crate) fn value_end(b: &[u8], i: usize) -> Option<(Shape, usize)> {
    match *b.get(i)? {
        first @ (b'{' | b'[') => container_end(b, i, first),
        b'"' => Some((Shape::default(), string_end(b, i)?)),
        _ => Some((Shape::default(), scalar_end(b, i)?)),
    }
}

/// [`value_end`] of the object or array whose bracket `first` is at `i`.
#[inline(never)]
fn container_end(b: &[u8], mut i: usize, mut first: u8) -> Option<(Shape, usize)> {
    let mut shape = Shape::default();
    let mut open = Open::default();
    let mut outer = Vec::new();
    let mut arrays_open = 0usize;
    loop {
        // A value starts at `i` with the byte `first`.
        i = match first {
            b'{' | b'[' => {
                let array = first == b'[';
                open.push(array, &mut outer);
                arrays_open += usize::from(array);
                shape.depth = shape.depth.max(open.depth);
                let (inner, byte) = next_token(b, i + 1)?;
                let close = if array { b']' } else { b'}' };
                if byte != close {
                    if array {
                        (i, first) = (inner, byte);
                    } else {
                        (i, first) = member_value(b, inner, byte)?;
                        shape.leaves += usize::from(arrays_open == 0 && first != b'{');
                    }
                    continue;
                }
                // Empty: its closing bracket is read below.
                inner
            }
            b'"' => string_end(b, i)?,
            _ => scalar_end(b, i)?,
        };
        // Close the containers the value ends, up to the next value.
        loop {
            if open.depth == 0 {
                return Some((shape, i));
            }
            let (at, byte) = next_token(b, i)?;
            match (byte, open.in_array()) {
                (b',', true) => {
                    (i, first) = next_token(b, at + 1)?;
                    break;
                }
                (b',', false) => {
                    let (key, byte) = next_token(b, at + 1)?;
                    (i, first) = member_value(b, key, byte)?;
                    shape.leaves += usize::from(arrays_open == 0 && first != b'{');
                    break;
                }
                (b']', true) => arrays_open -= 1,
                (b'}', false) => {}
                _ => return None,
            }
            open.pop(&mut outer);
            i = at + 1;
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

    /// Every byte value at every offset of a block, with a special byte
    /// after it that must not win, and random blocks: both versions of
    /// [`block_special`] answer what a byte-by-byte search does.
    #[test]
    fn block_search_agrees_with_bytes() {
        fn by_bytes(block: &[u8; 16]) -> usize {
            let special = |&byte: &u8| matches!(byte, b'"' | b'\\' | 0..0x20);
            block.iter().position(special).unwrap_or(16)
        }
        let mut blocks = Vec::new();
        for at in 0..16 {
            for byte in 0..=u8::MAX {
                let mut block = [b'a'; 16];
                block[at] = byte;
                blocks.push(block);
                if at < 15 {
                    block[15] = b'"';
                    blocks.push(block);
                }
            }
        }
        let mut rng = Xorshift::new(7);
        for _ in 0..100_000 {
            let mut block = [0; 16];
            for byte in &mut block {
                // Mostly bytes of text, now and then anything.
                *byte = match rng.below(8) {
                    0 => rng.next_u64() as u8,
                    _ => b' ' + rng.below(0x60) as u8,
                };
            }
            blocks.push(block);
        }
        for block in &blocks {
            let expected = by_bytes(block);
            assert_eq!(block_special(block), expected, "{block:?}");
            assert_eq!(block_special_swar(block), expected, "{block:?}");
        }
    }

    /// The shape of a valid text, as a walk of serde's parse of it sees it
    /// (every member, repeated keys too); `None` for a string serde cannot
    /// decode (a lone surrogate), which skipping it lets pass.
    fn serde_shape(text: &str) -> Option<Shape> {
        use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

        struct Walk<'s> {
            shape: &'s mut Shape,
            depth: usize,
            /// A leaf here: inside an object, no array open.
            leaf: bool,
            arrays_open: bool,
        }

        impl Walk<'_> {
            fn scalar<E>(self) -> Result<(), E> {
                self.shape.leaves += usize::from(self.leaf);
                Ok(())
            }

            fn child(&mut self, leaf: bool, arrays_open: bool) -> Walk<'_> {
                Walk {
                    shape: self.shape,
                    depth: self.depth + 1,
                    leaf,
                    arrays_open,
                }
            }
        }

        impl<'de> DeserializeSeed<'de> for Walk<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }

        impl<'de> Visitor<'de> for Walk<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<(), E> {
                self.scalar()
            }
            fn visit_i64<E>(self, _: i64) -> Result<(), E> {
                self.scalar()
            }
            fn visit_u64<E>(self, _: u64) -> Result<(), E> {
                self.scalar()
            }
            fn visit_f64<E>(self, _: f64) -> Result<(), E> {
                self.scalar()
            }
            fn visit_str<E>(self, _: &str) -> Result<(), E> {
                self.scalar()
            }
            fn visit_unit<E>(self) -> Result<(), E> {
                self.scalar()
            }
            fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
                self.shape.leaves += usize::from(self.leaf);
                self.shape.depth = self.shape.depth.max(self.depth + 1);
                while seq.next_element_seed(self.child(false, true))?.is_some() {}
                Ok(())
            }
            fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
                self.shape.depth = self.shape.depth.max(self.depth + 1);
                let arrays_open = self.arrays_open;
                while map.next_key::<IgnoredAny>()?.is_some() {
                    map.next_value_seed(self.child(!arrays_open, arrays_open))?;
                }
                Ok(())
            }
        }

        let mut shape = Shape::default();
        let walk = Walk {
            shape: &mut shape,
            depth: 0,
            leaf: false,
            arrays_open: false,
        };
        walk.deserialize(&mut serde_json::Deserializer::from_str(text))
            .ok()?;
        Some(shape)
    }

    #[test]
    fn measures_shapes_as_a_walk_of_serde_s_parse_does() {
        let mut rng = Xorshift::new(0x2545_f491_4f6c_dd1d);
        let mut measured = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            value(&mut rng, 0, &mut text);
            let Some(expected) = serde_shape(&text) else {
                continue;
            };
            let b = text.as_bytes();
            let (shape, _) = value_end(b, skip_ws(b, 0)).expect("valid");
            assert_eq!(shape, expected, "{text:?}");
            measured += 1;
        }
        assert!(measured > 10_000, "{measured}");
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
