//! Flattening a JSON object (`properties`, `context`, `traits`) into leaves:
//! one per scalar or array, keyed by its path of object keys.
//!
//! This is the transcoder's hottest loop, so the text is read in one pass by
//! a small parser made for it, without building a `serde_json::Value`:
//! nested objects are descended into as they are met, and strings without
//! escapes, numbers and arrays (kept as their JSON text) are borrowed from
//! the event. It checks JSON's grammar as strictly as serde_json (which it
//! defers to for escaped strings), and bounds nesting at 128 levels.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::value::RawValue;

/// serde_json's recursion limit, kept so both agree on what is too deep.
const MAX_DEPTH: usize = 128;
/// Separates the keys of a path; in a key it is escaped with [`ESCAPE`].
const SEPARATOR: char = '\0';
const ESCAPE: char = '\u{1}';

/// One flattened value, borrowed from the event where it can be.
#[derive(Clone, Debug, PartialEq)]
pub enum Leaf<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// A number with a fraction or an exponent.
    Float(f64),
    Str(Cow<'a, str>),
    /// An array, as its original JSON text.
    Array(&'a str),
}

/// The leaves of one object, in document order. Paths are kept in one
/// buffer, each key followed by a NUL (NUL and \u{1} in keys are escaped),
/// which is unambiguous whatever the keys contain, and is the key columns
/// are looked up by.
///
/// One is reused from event to event, so its buffers are allocated once.
/// The members (keys) of the last object read are kept too, with their
/// paths: objects nearly always repeat the keys of the one before in the
/// same order, so a key that reads as the previous object's key at the
/// same position and depth takes that member's path as it is, without
/// decoding the key or building its path again.
#[derive(Debug, Default)]
pub struct Flattened<'a> {
    keys: KeyMemory,
    /// Each leaf with its member.
    leaves: Vec<(usize, Leaf<'a>)>,
}

/// One key of an object read, leaf or nested object.
#[derive(Debug)]
struct Member {
    /// Its whole path in `paths`, ending with its own key and a NUL.
    path: Range<usize>,
    /// Where its own key starts in `paths`.
    key: usize,
    /// Objects it is nested in, counting the one it is a key of.
    depth: usize,
    /// Its key's JSON text, when it has no escapes (then the text is the
    /// key as it appears in the path): only such keys are matched as text.
    plain: bool,
}

impl Member {
    /// The key's text, when it is plain; as bytes, which is how it is
    /// compared, so that slicing it checks no character boundaries.
    fn plain_key<'p>(&self, paths: &'p str) -> Option<&'p [u8]> {
        self.plain
            .then(|| &paths.as_bytes()[self.key..self.path.end - 1])
    }
}

/// What a [`Flattened`] remembers of the objects it read, without their
/// values: it outlives the events' text, so a reader can go on from where
/// it was with the next record's events.
#[derive(Debug, Default)]
pub struct KeyMemory {
    /// The path of each member in `members`, one after the other.
    paths: String,
    members: Vec<Member>,
    /// Names `members` as they are: a new id whenever they change.
    members_id: u64,
}

/// Ids of member lists, unique in the process, so that equal ids mean the
/// same members whichever reader they come from. None is 0.
fn new_members_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl<'a> Flattened<'a> {
    /// A reader that reads on from what `memory` remembers.
    pub fn remembering(keys: KeyMemory) -> Self {
        Self {
            keys,
            leaves: Vec::new(),
        }
    }

    /// What this reader remembers, to read more objects later.
    pub fn into_memory(self) -> KeyMemory {
        self.keys
    }

    /// Holds nothing, as for an absent object.
    pub fn clear(&mut self) {
        self.leaves.clear();
    }

    /// Flattens `json`, which must be an object (empty text means no
    /// object), in place of what this held.
    pub fn read(&mut self, json: &'a str) -> Result<(), FlattenError> {
        self.clear();
        let trimmed = json.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        if !trimmed.starts_with('{') {
            let root: &RawValue =
                serde_json::from_str(trimmed).map_err(|e| FlattenError::Invalid(e.to_string()))?;
            return Err(FlattenError::NotAnObject(kind_of(root.get())));
        }
        let mut parser = Parser {
            src: trimmed,
            pos: 0,
            depth: 0,
            member: 0,
            following: true,
        };
        parser.object(self, None).map_err(FlattenError::Invalid)?;
        if parser.pos != trimmed.len() {
            return Err(FlattenError::Invalid(parser.error("trailing characters")));
        }
        Ok(())
    }

    /// Each leaf with the index of its member: while [`Self::members_id`]
    /// stays the same, a member index stands for the same path, so a
    /// caller that has seen it looks its path up ([`Self::path`]) no more.
    pub fn leaves(&self) -> impl Iterator<Item = (usize, &Leaf<'a>)> {
        self.leaves.iter().map(|(member, leaf)| (*member, leaf))
    }

    /// The path of a member of the last object read.
    pub fn path(&self, member: usize) -> &str {
        &self.keys.paths[self.keys.members[member].path.clone()]
    }

    /// The id of the members the leaves refer to (see [`Self::leaves`]).
    pub fn members_id(&self) -> u64 {
        self.keys.members_id
    }
}

/// The keys of a path built by [`Flattened::read`].
pub fn path_keys(path: &str) -> Vec<String> {
    path.split_terminator(SEPARATOR)
        .map(|key| {
            let mut out = String::with_capacity(key.len());
            let mut chars = key.chars();
            while let Some(c) = chars.next() {
                match c {
                    ESCAPE => out.push(match chars.next() {
                        Some('0') => SEPARATOR,
                        _ => ESCAPE,
                    }),
                    c => out.push(c),
                }
            }
            out
        })
        .collect()
}

fn push_key(path: &mut String, key: &str) {
    // Both are one byte in UTF-8, and no other character contains them.
    if key
        .bytes()
        .any(|b| b == SEPARATOR as u8 || b == ESCAPE as u8)
    {
        for c in key.chars() {
            match c {
                SEPARATOR => path.push_str("\u{1}0"),
                ESCAPE => path.push_str("\u{1}1"),
                c => path.push(c),
            }
        }
    } else {
        path.push_str(key);
    }
    path.push(SEPARATOR);
}

/// Why a JSON field could not be flattened; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlattenError {
    Invalid(String),
    NotAnObject(&'static str),
}

impl FlattenError {
    pub fn cause(&self) -> &'static str {
        match self {
            FlattenError::Invalid(_) => "malformed_json",
            FlattenError::NotAnObject(_) => "not_an_object",
        }
    }

    pub fn describe(&self, field: &str) -> String {
        match self {
            FlattenError::Invalid(e) => format!("{field}: not valid JSON ({e})"),
            FlattenError::NotAnObject(got) => {
                format!("{field}: expected a JSON object, got {got}")
            }
        }
    }
}

fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);

/// A high bit in each byte of `word` that is below `limit` (at most 0x80).
/// Bits above the lowest true one may be false alarms, so only the lowest
/// is to be trusted.
fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH_BITS
}

/// How many leading bytes of `rest`, in whole 8-byte words, cannot end or
/// interrupt a string (no `"`, `\` or control character): they are passed
/// over a word at a time, since most strings are plain text.
fn plain_prefix(rest: &[u8]) -> usize {
    let mut skipped = 0;
    for chunk in rest.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        let special = bytes_below(word ^ (ONES * u64::from(b'"')), 1)
            | bytes_below(word ^ (ONES * u64::from(b'\\')), 1)
            | bytes_below(word, 0x20);
        if special != 0 {
            return skipped + (special.trailing_zeros() / 8) as usize;
        }
        skipped += 8;
    }
    skipped
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    /// Index of the next member, in document order.
    member: usize,
    /// Whether every member so far matched the last object's at the same
    /// position: only then are its members a prediction of the next ones.
    following: bool,
}

impl<'a> Parser<'a> {
    // Out of line, as the rare paths are, so that the inlined hot ones
    // stay small.
    #[cold]
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested over 128 levels deep"));
        }
        Ok(())
    }

    /// Reads the members of an object, flattening them into `out`.
    /// `parent` is the member whose value it is (none for the root).
    fn object(&mut self, out: &mut Flattened<'a>, parent: Option<usize>) -> Result<(), String> {
        self.enter()?;
        self.expect(b'{', "expected `{`")?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            let member = self.member;
            self.member += 1;
            if !(self.following && self.same_key(&out.keys, member)) {
                self.key(&mut out.keys, parent)?;
            }
            self.ws();
            self.expect(b':', "expected `:`")?;
            self.ws();
            if self.peek() == Some(b'{') {
                self.object(out, Some(member))?;
            } else {
                let leaf = self.leaf()?;
                out.leaves.push((member, leaf));
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// Passes over the key of member `member` if it is the plain key the
    /// last object had there, at the same depth. Every member before it
    /// matched too, so it is in the same objects, and has the same path.
    fn same_key(&mut self, keys: &KeyMemory, member: usize) -> bool {
        let Some(known) = keys.members.get(member) else {
            return false;
        };
        let Some(key) = known.plain_key(&keys.paths) else {
            return false;
        };
        let quoted = key.len() + 2;
        let same = known.depth == self.depth
            && self
                .src
                .as_bytes()
                .get(self.pos..self.pos + quoted)
                .is_some_and(|text| {
                    text[0] == b'"' && text[quoted - 1] == b'"' && &text[1..quoted - 1] == key
                });
        if same {
            self.pos += quoted;
        }
        same
    }

    /// Reads a key and records it as the next member, with its path: its
    /// parent's, which is already in `paths`, then its own key. The first
    /// time a key differs from the last object's, the members read from
    /// then on replace the rest of that object's.
    fn key(&mut self, keys: &mut KeyMemory, parent: Option<usize>) -> Result<(), String> {
        let key = self.string()?;
        if self.following {
            self.following = false;
            keys.members_id = new_members_id();
            let member = self.member - 1;
            let kept = keys
                .members
                .get(member)
                .map_or(keys.paths.len(), |m| m.path.start);
            keys.members.truncate(member);
            keys.paths.truncate(kept);
        }
        let start = keys.paths.len();
        if let Some(parent) = parent {
            keys.paths
                .extend_from_within(keys.members[parent].path.clone());
        }
        let key_start = keys.paths.len();
        push_key(&mut keys.paths, &key);
        keys.members.push(Member {
            path: start..keys.paths.len(),
            key: key_start,
            depth: self.depth,
            plain: matches!(key, Cow::Borrowed(_)),
        });
        Ok(())
    }

    /// A value other than an object.
    ///
    /// Forced inline, as are [`Self::string`] and [`Self::number`] (the
    /// compiler would not): values are short, and returning one from a
    /// call, through memory, cost about as much as reading it.
    #[inline(always)]
    fn leaf(&mut self) -> Result<Leaf<'a>, String> {
        Ok(match self.peek() {
            Some(b'"') => Leaf::Str(self.string()?),
            Some(b'[') => {
                let start = self.pos;
                self.skip_value()?;
                Leaf::Array(&self.src[start..self.pos])
            }
            Some(b't') => self.literal("true", Leaf::Bool(true))?,
            Some(b'f') => self.literal("false", Leaf::Bool(false))?,
            Some(b'n') => self.literal("null", Leaf::Null)?,
            _ => number(self.number()?),
        })
    }

    fn literal(&mut self, text: &str, leaf: Leaf<'a>) -> Result<Leaf<'a>, String> {
        if self.src[self.pos..].starts_with(text) {
            self.pos += text.len();
            Ok(leaf)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// A string, borrowed unless it has escapes (which serde_json decodes).
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        let open = self.pos;
        self.expect(b'"', "expected a string")?;
        let bytes = self.src.as_bytes();
        let mut escaped = false;
        loop {
            self.pos += bytes.get(self.pos..).map_or(0, plain_prefix);
            let Some(&b) = bytes.get(self.pos) else {
                break;
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(if escaped {
                        Cow::Owned(unescape(&self.src[open..self.pos])?)
                    } else {
                        Cow::Borrowed(&self.src[open + 1..self.pos - 1])
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 2;
                }
                0..0x20 => return Err(self.error("control character in a string")),
                _ => self.pos += 1,
            }
        }
        Err(self.error("unterminated string"))
    }

    /// The text of a number, checked against JSON's grammar.
    #[inline(always)]
    fn number(&mut self) -> Result<&'a str, String> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let digits = |pos: &mut usize| {
            let from = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - from
        };
        let mut pos = self.pos;
        if bytes.get(pos) == Some(&b'-') {
            pos += 1;
        }
        let int_digits = digits(&mut pos);
        let leading_zero = int_digits > 1 && bytes[pos - int_digits] == b'0';
        let mut ok = int_digits > 0 && !leading_zero;
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            ok &= digits(&mut pos) > 0;
        }
        if let Some(b'e' | b'E') = bytes.get(pos) {
            pos += 1;
            if let Some(b'+' | b'-') = bytes.get(pos) {
                pos += 1;
            }
            ok &= digits(&mut pos) > 0;
        }
        if !ok {
            return Err(self.error("expected a value"));
        }
        self.pos = pos;
        Ok(&self.src[start..pos])
    }

    /// Checks and passes over any value (arrays' contents are kept as text).
    fn skip_value(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'{' | b'[') => {
                self.enter()?;
                let (object, close) = match self.peek() {
                    Some(b'{') => (true, b'}'),
                    _ => (false, b']'),
                };
                self.pos += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if object {
                        self.string()?;
                        self.ws();
                        self.expect(b':', "expected `:`")?;
                        self.ws();
                    }
                    self.skip_value()?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {
                            self.pos += 1;
                            self.depth -= 1;
                            return Ok(());
                        }
                        _ => return Err(self.error("expected `,` or a closing bracket")),
                    }
                }
            }
            _ => self.leaf().map(drop),
        }
    }
}

/// A JSON string with escapes (`raw` with its quotes), decoded.
#[cold]
fn unescape(raw: &str) -> Result<String, String> {
    serde_json::from_str(raw).map_err(|e| e.to_string())
}

/// Integers that fit in i64 are ints; other numbers with a fraction or an
/// exponent are floats. An integer beyond i64 (a 20-digit id) would lose
/// digits as a float, so it is kept exactly, as text.
fn number(raw: &str) -> Leaf<'_> {
    if let Ok(int) = raw.parse::<i64>() {
        return Leaf::Int(int);
    }
    if !raw.contains(['.', 'e', 'E']) {
        return Leaf::Str(Cow::Borrowed(raw));
    }
    raw.parse::<f64>()
        .map_or(Leaf::Str(Cow::Borrowed(raw)), Leaf::Float)
}

#[cfg(test)]
mod tests {
    use sluice_testkit::Xorshift;

    use super::*;

    fn flatten_object(json: &str) -> Result<Flattened<'_>, FlattenError> {
        let mut out = Flattened::default();
        out.read(json)?;
        Ok(out)
    }

    fn flat(json: &str) -> Vec<(Vec<String>, Leaf<'_>)> {
        let flat = flatten_object(json).unwrap();
        flat.leaves()
            .map(|(m, l)| (path_keys(flat.path(m)), l.clone()))
            .collect()
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flattens_nested_objects_in_order() {
        let got = flat(
            r#" {"a": 1, "b": {"c": "x", "d": {"e": true}}, "f": [1, {"g": 2}], "h": null,
                "i": 1.5, "j": {}, "k": -7e2} "#,
        );
        assert_eq!(
            got,
            vec![
                (keys(&["a"]), Leaf::Int(1)),
                (keys(&["b", "c"]), Leaf::Str("x".into())),
                (keys(&["b", "d", "e"]), Leaf::Bool(true)),
                (keys(&["f"]), Leaf::Array(r#"[1, {"g": 2}]"#)),
                (keys(&["h"]), Leaf::Null),
                (keys(&["i"]), Leaf::Float(1.5)),
                (keys(&["k"]), Leaf::Float(-700.0)),
            ]
        );
    }

    #[test]
    fn keeps_odd_keys_and_escapes_exactly() {
        let got =
            flat(r#"{"a.b": "q\"uote", "ключ:2": "é", "": 1, "1:x": {"y": 18446744073709551616}}"#);
        assert_eq!(
            got,
            vec![
                (keys(&["a.b"]), Leaf::Str("q\"uote".into())),
                (keys(&["ключ:2"]), Leaf::Str("é".into())),
                (keys(&[""]), Leaf::Int(1)),
                (
                    keys(&["1:x", "y"]),
                    Leaf::Str("18446744073709551616".into())
                ),
            ]
        );
    }

    #[test]
    fn plain_prefix_stops_at_the_first_special_byte() {
        let specials = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        let alphabet: &[&[u8]] = &[
            b"a",
            b"~",
            b"\"",
            b"\\",
            b"\n",
            b"\x1f",
            b" ",
            "é".as_bytes(),
            "€".as_bytes(),
            &[0x7f],
            &[0xff],
        ];
        let mut rng = Xorshift::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..rng.below(40) {
                // Mostly plain bytes, so runs of whole words occur.
                let pick = rng.below(64);
                text.extend_from_slice(
                    alphabet[if pick < 48 {
                        pick % 2
                    } else {
                        pick % alphabet.len()
                    }],
                );
            }
            let first = text.iter().position(|&b| specials(b)).unwrap_or(text.len());
            let whole_words = text.len() - text.len() % 8;
            assert_eq!(plain_prefix(&text), first.min(whole_words), "{text:?}");
        }
    }

    /// An object drawn from few keys (escaped, repeated, nested), so that
    /// consecutive ones often share a prefix of their keys, and sometimes
    /// are malformed.
    fn random_object(rng: &mut Xorshift, depth: usize) -> String {
        const KEYS: &[&str] = &[
            "a", "b", "ab", "c", "é", r"k\u0000", r"\u0001", r#"q\""#, r"\u00e9",
        ];
        const VALUES: &[&str] = &["1", "-2.5", "\"x\"", "true", "null", "[1,{\"a\":2}]", "{}"];
        let members = rng.below(5);
        let mut out = String::from("{");
        for i in 0..members {
            if i > 0 {
                out.push(',');
            }
            let key = KEYS[rng.below(KEYS.len())];
            out.push_str(&format!("\"{key}\":"));
            match rng.below(10) {
                0 | 1 if depth < 3 => out.push_str(&random_object(rng, depth + 1)),
                2 if depth == 0 && rng.below(8) == 0 => out.push_str("{\"a\":}"),
                _ => out.push_str(VALUES[rng.below(VALUES.len())]),
            }
        }
        out.push('}');
        out
    }

    /// Mostly objects seen lately, or like them with members added, as in
    /// a batch.
    fn batch_of_objects(rng: &mut Xorshift, count: usize) -> Vec<String> {
        let mut objects: Vec<String> = Vec::with_capacity(count);
        for i in 0..count {
            let fresh = random_object(rng, 0);
            let json = match (i, rng.below(4)) {
                (0, _) | (_, 0) => fresh,
                _ => {
                    let base = &objects[i - 1 - rng.below(i.min(8))];
                    match rng.below(3) {
                        0 => base.clone(),
                        _ => format!("{},{}", &base[..base.len() - 1], &fresh[1..])
                            .replace("{,", "{")
                            .replace(",}", "}"),
                    }
                }
            };
            objects.push(json);
        }
        objects
    }

    #[test]
    fn reading_after_other_objects_changes_nothing() {
        let objects = batch_of_objects(&mut Xorshift::new(0x2545_f491_4f6c_dd1d), 20_000);
        let mut reused = Flattened::default();
        let mut failed = 0;
        for (i, json) in objects.iter().enumerate() {
            // A reader also goes on from what another remembered, as from
            // one record to the next.
            if i % 100 == 99 {
                reused = Flattened::remembering(reused.into_memory());
            }
            let got = reused.read(json).map(|()| {
                let leaves = (reused.leaves()).map(|(m, l)| (reused.path(m).to_owned(), l.clone()));
                leaves.collect::<Vec<_>>()
            });
            let want = flatten_object(json).map(|f| {
                let leaves = f.leaves().map(|(m, l)| (f.path(m).to_owned(), l.clone()));
                leaves.collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{json}");
            let valid = serde_json::from_str::<serde_json::Value>(json).is_ok();
            assert_eq!(got.is_ok(), valid, "{json}");
            failed += usize::from(!valid);
        }
        // Both paths were taken: some objects were rejected, most not.
        assert!(failed > 100 && failed < objects.len() / 2, "{failed}");
    }

    #[test]
    fn a_reused_buffer_holds_only_the_last_object() {
        let mut flat = Flattened::default();
        flat.read(r#"{"a":{"b":1},"c":"x"}"#).unwrap();
        flat.read(r#"{"d":true}"#).unwrap();
        let got: Vec<_> = flat
            .leaves()
            .map(|(m, l)| (path_keys(flat.path(m)), l.clone()))
            .collect();
        assert_eq!(got, [(keys(&["d"]), Leaf::Bool(true))]);
        assert!(flat.read(r#"{"e":1,"f":}"#).is_err());
        flat.read("").unwrap();
        assert!(flat.leaves().next().is_none());
    }

    #[test]
    fn names_the_problem() {
        assert!(flatten_object("").unwrap().leaves().next().is_none());
        assert_eq!(
            flatten_object("[1]").unwrap_err().describe("properties"),
            "properties: expected a JSON object, got an array"
        );
        let err = flatten_object(r#"{"a": }"#).unwrap_err();
        assert_eq!(err.cause(), "malformed_json");
        assert!(
            err.describe("context")
                .starts_with("context: not valid JSON")
        );
        assert!(flatten_object(r#"{"a": 1} x"#).is_err());
        let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert!(
            flatten_object(&deep)
                .unwrap_err()
                .describe("p")
                .contains("128 levels")
        );
        let deep_array = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(flatten_object(&deep_array).is_err());
        for bad in [
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":"x}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":"\q"}"#,
            r#"{"a":1,}"#,
            r#"{a:1}"#,
            r#"{"a":{"b":1}"#,
            r#"{"a":[{"b":}]}"#,
        ] {
            assert!(flatten_object(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad}"
            );
        }
        let ok =
            r#"{ "a" : [ 1 , { "b" : [ ] } , "x\"]" ] , "n" : -0.5e+3 , "k\u0000" : "\u00e9" }"#;
        assert!(serde_json::from_str::<serde_json::Value>(ok).is_ok());
        let got = flat(ok);
        assert_eq!(
            got[0],
            (
                keys(&["a"]),
                Leaf::Array(r#"[ 1 , { "b" : [ ] } , "x\"]" ]"#)
            )
        );
        assert_eq!(got[1], (keys(&["n"]), Leaf::Float(-500.0)));
        assert_eq!(got[2], (keys(&["k\0"]), Leaf::Str("é".into())));
    }
}
