//! What a connection remembers between its requests.

use std::sync::{Mutex, PoisonError};

/// The last answer worked out from a request's inputs, with those inputs.
/// A keep-alive client sends request after request with the same write
/// key, source and address, and comparing inputs costs less than working
/// the answer out again. One per connection, so the lock is never contended.
pub struct LastAnswer<K, V>(Mutex<Option<(K, V)>>);

impl<K, V> Default for LastAnswer<K, V> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<K, V: Clone> LastAnswer<K, V> {
    /// The kept answer when `same` says its inputs are this request's;
    /// otherwise `work`'s inputs and answer, kept in its place.
    pub fn get(&self, same: impl FnOnce(&K) -> bool, work: impl FnOnce() -> (K, V)) -> V {
        // A request that panicked cannot have left a half-written entry:
        // it is replaced whole.
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((inputs, answer)) = &*last
            && same(inputs)
        {
            return answer.clone();
        }
        let (inputs, answer) = work();
        *last = Some((inputs, answer.clone()));
        answer
    }
}
