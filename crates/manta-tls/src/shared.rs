//! A value that reload swaps atomically while handshakes read it.

use std::sync::{Arc, PoisonError, RwLock};

/// An `Arc<T>` behind a lock: readers clone the `Arc` and never hold the lock for long, so
/// a swap never waits on a handshake and existing connections keep the value they started
/// with.
#[derive(Debug)]
pub(crate) struct Shared<T: ?Sized>(RwLock<Arc<T>>);

impl<T: ?Sized> Shared<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(RwLock::new(value))
    }

    pub(crate) fn get(&self) -> Arc<T> {
        // A panic while holding the lock cannot leave the `Arc` half-written, so a poisoned
        // lock still holds a valid value.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}
