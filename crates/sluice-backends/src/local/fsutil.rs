//! File-system helpers shared by the local backends: atomic replacement,
//! directory fsync and a cross-process lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

/// An exclusive lock on a lock file, shared by every process that opens
/// the same path, and by every thread using this handle. Blocking: call it
/// off the async executor threads for anything but short critical sections.
pub struct LockFile {
    file: File,
    path: PathBuf,
    /// `flock` locks belong to the open file, which all of this process's
    /// threads share through this handle: taken twice through it, the lock
    /// lets both in. The mutex keeps this handle's threads apart.
    threads: Mutex<()>,
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
        Ok(Self {
            file,
            path,
            threads: Mutex::new(()),
        })
    }

    pub fn lock(&self) -> Result<LockGuard<'_>> {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        self.file
            .lock()
            .map_err(|e| BackendError::io(&self.path, e))?;
        Ok(LockGuard {
            file: &self.file,
            _threads: threads,
        })
    }
}

/// Releases the file lock when dropped, then the threads' mutex (the
/// fields drop after `drop` runs).
pub struct LockGuard<'a> {
    file: &'a File,
    _threads: MutexGuard<'a, ()>,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn lock_keeps_out_threads_of_the_same_handle_and_of_other_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let handles = [
            Arc::new(LockFile::open(path.clone()).unwrap()),
            Arc::new(LockFile::open(path).unwrap()),
        ];
        let inside = Arc::new(AtomicUsize::new(0));
        let most_inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let lock = handles[i % 2].clone();
                let (inside, most_inside) = (inside.clone(), most_inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let _guard = lock.lock().unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most_inside.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(most_inside.load(Ordering::SeqCst), 1);
    }
}
