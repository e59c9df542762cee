//! File-system helpers shared by the local backends: atomic replacement,
//! directory fsync and a cross-process lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{BackendError, Result};

/// Names starting with this are ours (temp files, locks); they never show up
/// as objects, shards or messages.
pub const INTERNAL_PREFIX: &str = ".sluice-";

/// Makes a rename or a new file in `dir` survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackendError::io(dir, e))
}

/// A unique temp file name in `dir` that listings skip.
pub fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(
        "{INTERNAL_PREFIX}tmp-{}",
        uuid::Uuid::now_v7().simple()
    ))
}

/// Writes `bytes` to a temp file next to `path`, fsyncs it and renames it
/// over `path`, so readers see the old or the new content, never a mix.
/// The directory is fsynced unless `sync_parent` is false (the caller does it).
pub fn atomic_write(path: &Path, bytes: &[u8], sync_parent: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(dir);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(BackendError::io(path, e));
    }
    if sync_parent {
        sync_dir(dir)?;
    }
    Ok(())
}

/// An exclusive advisory lock on a lock file (`flock`), shared by every
/// process that opens the same path. Blocking: call it off the async
/// executor threads for anything but short critical sections.
pub struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    pub fn open(path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| BackendError::io(&path, e))?;
        Ok(Self { file, path })
    }

    pub fn lock(&self) -> Result<LockGuard<'_>> {
        self.file
            .lock()
            .map_err(|e| BackendError::io(&self.path, e))?;
        Ok(LockGuard { file: &self.file })
    }
}

/// Releases the lock when dropped (closing the file would too).
pub struct LockGuard<'a> {
    file: &'a File,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Runs blocking file work off the async executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Service {
            service: "local",
            message: format!("blocking task failed: {e}"),
            retryable: false,
        })?
}
