//! One load at a time per table within this process. Across processes the
//! warehouse's own lock does the same; this one keeps a loader from tying
//! up a connection while it waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct TableLocks {
    tables: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl TableLocks {
    /// Locks every table; `tables` must be sorted (see
    /// [`crate::tables::locked_tables`]) so two loads never deadlock.
    pub async fn lock(&self, tables: &[&str]) -> Vec<OwnedMutexGuard<()>> {
        let mutexes: Vec<Arc<AsyncMutex<()>>> = {
            let mut map = self.tables.lock().expect("table lock map");
            tables
                .iter()
                .map(|t| map.entry((*t).to_string()).or_default().clone())
                .collect()
        };
        let mut guards = Vec::with_capacity(mutexes.len());
        for mutex in mutexes {
            guards.push(mutex.lock_owned().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shared_table_waits_other_table_does_not() {
        let locks = Arc::new(TableLocks::default());
        let held = locks.lock(&["tracks", "x"]).await;
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock(&["y"])).await;
        assert!(other.is_ok(), "a different table loads in parallel");
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock(&["tracks"])).await;
        assert!(same.is_err(), "the same table waits");
        drop(held);
        assert_eq!(locks.lock(&["tracks"]).await.len(), 1);
    }
}
