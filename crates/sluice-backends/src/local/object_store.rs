//! `LocalObjectStore`: an S3-like bucket as a directory tree. A key is a
//! relative path under the root, so other tools can read the files directly
//! (the Parquet under `tables/`, say).
//!
//! Writes go to a temp file in the target directory, are fsynced, and are
//! renamed into place, so a reader sees a whole old or a whole new object.
//! Every rename and delete happens under the root's lock file, which is what
//! makes conditional puts atomic across processes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use twox_hash::XxHash3_128;

use super::fsutil::{INTERNAL_PREFIX, LockFile, blocking, sync_dir, temp_path};
use crate::notification::object_created_json;
use crate::{BackendError, GetObject, ObjectMeta, ObjectStore, PutCondition, Queue, Result};

/// S3's limit on key length, in UTF-8 bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Bodies are written in pieces of this size: one write(2) of a whole
/// 64 MiB object cost the kernel up to five times the CPU of the same bytes
/// in pieces that fit a CPU cache (measured on ext4: 64 KiB beat 1 MiB).
const WRITE_CHUNK_BYTES: usize = 64 << 10;
/// Bound on remembered ETags, so listing a huge tree cannot grow memory
/// without limit.
const ETAG_CACHE_ENTRIES: usize = 100_000;

/// Sends an S3 `ObjectCreated:Put` notification to `queue` for every
/// successful put whose key starts with `prefix` and ends with `suffix`.
#[derive(Clone)]
pub struct NotificationRule {
    pub prefix: String,
    pub suffix: String,
    pub queue: Arc<dyn Queue>,
}

impl NotificationRule {
    /// Matches every key until narrowed with `prefix` / `suffix`.
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        Self {
            prefix: String::new(),
            suffix: String::new(),
            queue,
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }
}

pub struct LocalObjectStore {
    root: PathBuf,
    bucket: String,
    rules: Vec<NotificationRule>,
    shared: Arc<Shared>,
}

struct Shared {
    lock: LockFile,
    /// ETag by path, valid while the file's identity (inode, size, mtime) is
    /// unchanged: every put renames a new file into place.
    etags: Mutex<HashMap<PathBuf, (FileId, String)>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

impl FileId {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
        }
    }
}

/// The ETag of a body: a quoted 128-bit XXH3 of its content. S3 promises
/// only that an ETag changes with the content (multipart ETags are no MD5
/// either), and that is all the conditional puts need. MD5 cost a fifth of
/// the archiver's CPU; XXH3 hashes at memory speed.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{:032x}\"", XxHash3_128::oneshot(body))
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// Rejects keys that cannot map to a path under the root, or would collide
/// with the store's own files.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(BackendError::InvalidArgument(format!(
            "object key {key:?}: {why}"
        )))
    };
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return bad("must be 1..=1024 bytes");
    }
    if key.starts_with('/') {
        return bad("must be relative");
    }
    if key.contains('\0') {
        return bad("contains NUL");
    }
    for part in key.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("has an empty, `.` or `..` path component");
        }
        if part.starts_with(INTERNAL_PREFIX) {
            return bad("uses a name reserved for the store's own files");
        }
    }
    Ok(())
}

/// Maps file-system errors that mean "this key clashes with another key's
/// directory" (S3 allows `a` and `a/b`; a file system does not).
fn key_error(key: &str, path: &Path, e: std::io::Error) -> BackendError {
    match e.kind() {
        ErrorKind::NotADirectory | ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => {
            BackendError::InvalidArgument(format!(
                "object key {key:?} clashes with a key that uses it as a prefix directory"
            ))
        }
        _ => BackendError::io(path, e),
    }
}

impl LocalObjectStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| BackendError::io(&root, e))?;
        let lock = LockFile::open(root.join(format!("{INTERNAL_PREFIX}lock")))?;
        Ok(Self {
            root,
            bucket: "local".into(),
            rules: Vec::new(),
            shared: Arc::new(Shared {
                lock,
                etags: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The bucket name notifications carry (default `local`).
    pub fn with_bucket_name(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = bucket.into();
        self
    }

    pub fn with_notification(mut self, rule: NotificationRule) -> Self {
        self.rules.push(rule);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn notify(&self, key: &str, size: u64, etag: &str) -> Result<()> {
        let now = SystemTime::now();
        let event_time = chrono::DateTime::<chrono::Utc>::from(now)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // S3's sequencer: hex that grows for successive events on a key.
        let sequencer = format!(
            "{:016X}",
            now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        );
        // S3 sends the ETag without its quotes in notifications.
        let body = object_created_json(
            &self.bucket,
            key,
            size,
            unquote(etag),
            &event_time,
            &sequencer,
        );
        for rule in self.rules.iter().filter(|r| r.matches(key)) {
            rule.queue.send(&body).await?;
        }
        Ok(())
    }
}

impl Shared {
    fn cached_etag(&self, path: &Path, id: FileId) -> Option<String> {
        let etags = self.etags.lock().unwrap_or_else(PoisonError::into_inner);
        etags
            .get(path)
            .filter(|(cached, _)| *cached == id)
            .map(|(_, etag)| etag.clone())
    }

    fn remember_etag(&self, path: &Path, id: FileId, etag: &str) {
        let mut etags = self.etags.lock().unwrap_or_else(PoisonError::into_inner);
        if etags.len() >= ETAG_CACHE_ENTRIES {
            etags.clear();
        }
        etags.insert(path.to_owned(), (id, etag.to_owned()));
    }

    /// The current object's ETag, or `None` if there is none.
    fn current_etag(&self, path: &Path) -> Result<Option<String>> {
        let meta = match fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BackendError::io(path, e)),
        };
        let id = FileId::of(&meta);
        if let Some(etag) = self.cached_etag(path, id) {
            return Ok(Some(etag));
        }
        let body = match fs::read(path) {
            Ok(body) => body,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BackendError::io(path, e)),
        };
        let etag = etag_of(&body);
        self.remember_etag(path, id, &etag);
        Ok(Some(etag))
    }
}

/// Writes the body to a fresh temp file in `dir` and fsyncs it. Retries
/// when a concurrent delete pruned the (then empty) directory under us.
fn write_temp(key: &str, dir: &Path, body: &[u8]) -> Result<PathBuf> {
    for _ in 0..5 {
        fs::create_dir_all(dir).map_err(|e| key_error(key, dir, e))?;
        let tmp = temp_path(dir);
        let mut file = match File::create_new(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(key_error(key, &tmp, e)),
        };
        let written = body
            .chunks(WRITE_CHUNK_BYTES)
            .try_for_each(|chunk| file.write_all(chunk));
        if let Err(e) = written.and_then(|()| file.sync_all()) {
            let _ = fs::remove_file(&tmp);
            return Err(BackendError::io(&tmp, e));
        }
        return Ok(tmp);
    }
    Err(BackendError::io(
        dir,
        std::io::Error::new(ErrorKind::NotFound, "directory keeps disappearing"),
    ))
}

fn check_condition(
    shared: &Shared,
    key: &str,
    path: &Path,
    condition: &PutCondition,
) -> Result<()> {
    let failed = || Err(BackendError::PreconditionFailed(key.to_owned()));
    match condition {
        PutCondition::None => Ok(()),
        PutCondition::IfAbsent => match shared.current_etag(path)? {
            Some(_) => failed(),
            None => Ok(()),
        },
        // A missing object has no ETag, so it never matches.
        PutCondition::IfMatch(expected) => match shared.current_etag(path)? {
            Some(etag) if unquote(&etag) == unquote(expected) => Ok(()),
            _ => failed(),
        },
    }
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<String> {
        validate_key(key)?;
        let path = self.root.join(key);
        let shared = self.shared.clone();
        let owned_key = key.to_owned();
        let size = body.len() as u64;
        let etag = blocking(move || {
            let key = owned_key.as_str();
            let etag = etag_of(&body);
            let dir = path.parent().unwrap_or(Path::new("."));
            let tmp = write_temp(key, dir, &body)?;
            let renamed = {
                let _guard = shared.lock.lock()?;
                check_condition(&shared, key, &path, &condition)
                    .and_then(|()| fs::rename(&tmp, &path).map_err(|e| key_error(key, &path, e)))
            };
            if let Err(e) = renamed {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            sync_dir(dir)?;
            if let Ok(meta) = fs::metadata(&path) {
                shared.remember_etag(&path, FileId::of(&meta), &etag);
            }
            Ok(etag)
        })
        .await?;
        // After the object is durable; an error here makes the caller retry
        // the put, which notifies again (at-least-once, like S3).
        self.notify(key, size, &etag).await?;
        Ok(etag)
    }

    async fn get(&self, key: &str) -> Result<Option<GetObject>> {
        validate_key(key)?;
        let path = self.root.join(key);
        blocking(move || match fs::read(&path) {
            Ok(body) => Ok(Some(GetObject {
                etag: etag_of(&body),
                body: Bytes::from(body),
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(BackendError::io(&path, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // The directory part of the prefix must itself be a valid key path.
        let dir_part = dir_part_of(prefix);
        if !dir_part.is_empty() {
            validate_key(dir_part)?;
        }
        let start_key = if dir_part.is_empty() {
            String::new()
        } else {
            format!("{dir_part}/")
        };
        let (root, shared, prefix) = (self.root.clone(), self.shared.clone(), prefix.to_owned());
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, &shared, &start_key, &prefix, &mut out)?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let (root, path, shared) = (self.root.clone(), self.root.join(key), self.shared.clone());
        blocking(move || {
            let _guard = shared.lock.lock()?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::IsADirectory | ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(BackendError::io(&path, e)),
            }
            // Prune directories left empty, as S3 has no empty "folders";
            // puts retry if we race them (see `write_temp`).
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != root) {
                if fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            sync_dir(dir.unwrap_or(&root))
        })
        .await
    }
}

fn dir_part_of(prefix: &str) -> &str {
    prefix.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Collects objects under `root/<dir_key>` whose keys start with `prefix`,
/// skipping subtrees that cannot match and the store's own files.
fn walk(
    root: &Path,
    shared: &Shared,
    dir_key: &str,
    prefix: &str,
    out: &mut Vec<ObjectMeta>,
) -> Result<()> {
    let dir = root.join(dir_key);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(());
        }
        Err(e) => return Err(BackendError::io(&dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| BackendError::io(&dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with(INTERNAL_PREFIX) {
            continue;
        }
        let key = format!("{dir_key}{name}");
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue, // deleted meanwhile
            Err(e) => return Err(BackendError::io(entry.path(), e)),
        };
        if meta.is_dir() {
            let sub = format!("{key}/");
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(root, shared, &sub, prefix, out)?;
            }
        } else if meta.is_file() && key.starts_with(prefix) {
            let path = entry.path();
            let Some(etag) = shared.current_etag(&path)? else {
                continue;
            };
            out.push(ObjectMeta {
                key,
                size: meta.len(),
                etag,
                last_modified: meta.modified().map_err(|e| BackendError::io(&path, e))?,
            });
        }
    }
    Ok(())
}
