//! Table and column names the warehouses accept: `[a-z0-9_]`, not starting
//! with a digit, at most 63 bytes (PostgreSQL's identifier limit).
//!
//! The rules, applied to an event name or a JSON key:
//! - lowercase; every character outside `[a-z0-9_]` becomes `_`; runs of `_`
//!   collapse into one; a leading digit gets a `_` prefix;
//! - a name with no ASCII letter or digit left (`"ключ"`, an emoji) would say
//!   nothing, so it becomes `_` plus a hash of the original, which keeps two
//!   such keys apart in every object;
//! - a name over 63 bytes is cut to 54 and ends in `_` plus 8 hex digits of a
//!   hash of the original, so two long names sharing a prefix stay apart.
//!
//! Event names (table names) are snake-cased first (`VideoPlayed` →
//! `video_played`), as Segment's warehouses do.

/// PostgreSQL's limit on identifiers, in bytes.
pub const MAX_NAME_BYTES: usize = 63;
const HASH_HEX: usize = 8;

use std::collections::HashSet;

/// Tables the transcoder or the loader own; an event whose name maps onto
/// one of them gets [`RESERVED_SUFFIX`].
const RESERVED_TABLES: &[&str] = &[
    "tracks",
    "identifies",
    "users",
    "pages",
    "screens",
    "groups",
    "aliases",
    "rejected",
];
const RESERVED_SUFFIX: &str = "_event";
/// Prefix of the loader's own tables (`_sluice_loads`).
const INTERNAL_PREFIX: &str = "_sluice";

/// FNV-1a, 64 bits: stable across builds and platforms (unlike std's
/// `DefaultHasher`), which names must be, since every object is named alone.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        // A separator byte that JSON keys cannot make ambiguous: keys are
        // hashed with their boundaries, so `["a.b"]` and `["a", "b"]` differ.
        let bytes = part
            .as_bytes()
            .iter()
            .chain(if i > 0 { &[0xff][..] } else { &[][..] });
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn hash_suffix(parts: &[&str]) -> String {
    format!("{:08x}", stable_hash(parts) as u32)
}

/// Lowercases and replaces, collapsing `_` runs, appending to `out`.
fn push_sanitized(out: &mut String, text: &str) {
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
}

/// Applies the empty and digit rules to a sanitized name; `original` is
/// what the hash is taken of.
fn finish(mut name: String, original: &[&str]) -> String {
    if !name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return format!("_{}", hash_suffix(original));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Cuts a name over [`MAX_NAME_BYTES`] and appends a hash of `original`.
pub fn cap(mut name: String, original: &[&str]) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    // Sanitized names are ASCII, so any byte index is a char boundary.
    name.truncate(MAX_NAME_BYTES - HASH_HEX - 1);
    name.push('_');
    name.push_str(&hash_suffix(original));
    name
}

/// The column name for a path of JSON keys: `["project", "category"]` →
/// `project_category`, with `prefix` (`context_`) in front.
pub fn column_name(prefix: &str, path: &[&str]) -> String {
    let mut part = String::new();
    for key in path {
        if !part.is_empty() && !part.ends_with('_') {
            part.push('_');
        }
        push_sanitized(&mut part, key);
    }
    let mut name = String::with_capacity(prefix.len() + part.len());
    name.push_str(prefix);
    if part.bytes().any(|b| b.is_ascii_alphanumeric()) {
        // `context_` + `_id` reads as `context_id`, as the collapse rule wants.
        let joined = match prefix.ends_with('_') {
            true => part.trim_start_matches('_'),
            false => &part,
        };
        name.push_str(joined);
        name = finish(name, path);
    } else {
        name.push_str(&finish(part, path));
    }
    cap(name, path)
}

/// The table for an event name: snake_case, sanitized, capped, and moved
/// off the reserved tables.
pub fn table_name(event: &str) -> String {
    let mut name = String::with_capacity(event.len() + RESERVED_SUFFIX.len());
    push_sanitized(&mut name, &snake_case(event));
    let mut name = cap(finish(name, &[event]), &[event]);
    if RESERVED_TABLES.contains(&name.as_str()) || name.starts_with(INTERNAL_PREFIX) {
        name.push_str(RESERVED_SUFFIX);
        name = cap(name, &[event]);
    }
    name
}

/// Names for the flattened columns of one table. `paths` are their JSON key
/// paths, `taken` the names the table already uses (and gets the new ones).
///
/// Each path gets `prefix` + its sanitized keys. When that is taken (a
/// property `id`, or `A B` next to `a_b`), it gets `clash_prefix` in front
/// (`property_id`) if that is free, else a hash of its keys at the end
/// (`a_b_1f2e3d4c`). Paths are named in sorted order, so the same set of
/// keys gets the same names whatever order events brought them in.
pub fn assign_column_names(
    taken: &mut HashSet<String>,
    prefix: &str,
    clash_prefix: Option<&str>,
    paths: &[Vec<String>],
) -> Vec<String> {
    let keys: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| p.iter().map(String::as_str).collect())
        .collect();
    let bases: Vec<String> = keys.iter().map(|k| column_name(prefix, k)).collect();
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by(|&a, &b| (&bases[a], &keys[a]).cmp(&(&bases[b], &keys[b])));
    let mut names = vec![String::new(); paths.len()];
    for i in order {
        let (base, keys) = (&bases[i], &keys[i]);
        let candidates = [
            Some(base.clone()),
            clash_prefix.map(|p| cap(format!("{p}{base}"), keys)),
            Some(cap(format!("{base}_{}", hash_suffix(keys)), keys)),
        ];
        let name = candidates
            .into_iter()
            .flatten()
            .find(|c| !taken.contains(c))
            .unwrap_or_else(|| numbered(base, taken));
        taken.insert(name.clone());
        names[i] = name;
    }
    names
}

/// `base_2`, `base_3`, ...: the last resort, for a 32-bit hash collision.
fn numbered(base: &str, taken: &HashSet<String>) -> String {
    (2u64..)
        .map(|n| {
            let suffix = format!("_{n}");
            let stem = &base[..base.len().min(MAX_NAME_BYTES - suffix.len())];
            format!("{stem}{suffix}")
        })
        .find(|c| !taken.contains(c))
        .expect("some number is free")
}

/// `VideoPlayed` → `Video_Played`, `userID` → `user_ID`: an underscore where
/// a lowercase letter is followed by an uppercase one (`3D` stays whole).
fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_lowercase();
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_keys() {
        assert_eq!(
            column_name("", &["project", "category"]),
            "project_category"
        );
        assert_eq!(column_name("", &["a.b"]), "a_b");
        assert_eq!(column_name("", &["A B"]), "a_b");
        assert_eq!(column_name("", &["prix €"]), "prix_");
        assert_eq!(column_name("", &["__x--y"]), "_x_y");
        assert_eq!(column_name("", &["2fa"]), "_2fa");
        assert_eq!(
            column_name("context_", &["library", "name"]),
            "context_library_name"
        );
        assert_eq!(column_name("", &["$browser"]), "_browser");
    }

    #[test]
    fn names_keys_without_ascii_by_hash() {
        let a = column_name("", &["ключ"]);
        let b = column_name("", &["значение"]);
        let emoji = column_name("", &["🎉"]);
        for name in [&a, &b, &emoji] {
            assert!(name.starts_with('_') && name.len() == 9, "{name}");
        }
        assert_ne!(a, b);
        assert_eq!(a, column_name("", &["ключ"]), "stable");
        assert!(column_name("context_", &["ключ"]).starts_with("context__"));
    }

    #[test]
    fn caps_long_names_with_a_hash() {
        let long = "x".repeat(100);
        let a = column_name("", &[&long, "a"]);
        let b = column_name("", &[&long, "b"]);
        assert_eq!(a.len(), MAX_NAME_BYTES);
        assert_eq!(b.len(), MAX_NAME_BYTES);
        assert_ne!(a, b);
        assert_eq!(&a[..54], &long[..54]);
        assert_eq!(column_name("", &["y".repeat(63).as_str()]).len(), 63);
    }

    #[test]
    fn path_boundaries_change_the_hash() {
        assert_ne!(stable_hash(&["a.b"]), stable_hash(&["a", "b"]));
        assert_ne!(stable_hash(&["ab"]), stable_hash(&["a", "b"]));
    }

    #[test]
    fn names_tables() {
        assert_eq!(table_name("Video Played"), "video_played");
        assert_eq!(table_name("VideoPlayed"), "video_played");
        assert_eq!(table_name("checkout.step-2 done!"), "checkout_step_2_done_");
        assert_eq!(table_name("Tracks"), "tracks_event");
        assert_eq!(table_name("pages"), "pages_event");
        assert_eq!(table_name("_sluice_loads"), "_sluice_loads_event");
        assert_eq!(table_name("3D View"), "_3d_view");
        let long = table_name(&"Very Long Event Name ".repeat(10));
        assert_eq!(long.len(), MAX_NAME_BYTES);
        assert!(table_name("🎉").starts_with('_'));
    }

    fn assign(taken: &[&str], clash: Option<&str>, paths: &[&[&str]]) -> Vec<String> {
        let mut taken = taken.iter().map(|s| s.to_string()).collect();
        let paths: Vec<Vec<String>> = paths
            .iter()
            .map(|p| p.iter().map(|k| k.to_string()).collect())
            .collect();
        assign_column_names(&mut taken, "", clash, &paths)
    }

    #[test]
    fn clashes_get_a_prefix_then_a_hash() {
        let names = assign(
            &["id", "timestamp"],
            Some("property_"),
            &[
                &["id"],
                &["timestamp"],
                &["a", "b"],
                &["a.b"],
                &["A B"],
                &["plain"],
            ],
        );
        assert_eq!(&names[..2], ["property_id", "property_timestamp"]);
        assert_eq!(names[5], "plain");
        // `A B` sorts first, so it keeps `a_b`; the others are told apart.
        assert_eq!(names[4], "a_b");
        assert_eq!(names[2], "property_a_b");
        assert!(
            names[3].starts_with("a_b_") && names[3].len() == 12,
            "{names:?}"
        );
        let again = assign(
            &["id", "timestamp"],
            Some("property_"),
            &[
                &["plain"],
                &["A B"],
                &["a.b"],
                &["a", "b"],
                &["timestamp"],
                &["id"],
            ],
        );
        let mut sorted = names.clone();
        sorted.sort();
        let mut again_sorted = again.clone();
        again_sorted.sort();
        assert_eq!(sorted, again_sorted, "order of arrival does not matter");
        assert_eq!(again[1], "a_b");
    }

    #[test]
    fn numbers_as_a_last_resort() {
        let taken: HashSet<String> = ["x".to_string(), "x_2".to_string()].into();
        assert_eq!(numbered("x", &taken), "x_3");
        let long = "y".repeat(63);
        assert_eq!(numbered(&long, &HashSet::new()).len(), 63);
    }
}
