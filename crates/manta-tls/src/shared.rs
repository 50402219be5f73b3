//! A value that reload swaps atomically while handshakes read it.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// An `Arc<T>` that handshakes load without a lock and reload replaces in one atomic swap,
/// so a swap never waits on a handshake, a handshake never waits on a swap, and existing
/// connections keep the value they started with.
///
/// `arc-swap` holds only sized values, so the `Arc<T>` (which may point at a `dyn`
/// verifier) sits inside the swapped `Arc`.
#[derive(Debug)]
pub(crate) struct Shared<T: ?Sized>(ArcSwap<Arc<T>>);

impl<T: ?Sized> Shared<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(ArcSwap::from_pointee(value))
    }

    pub(crate) fn get(&self) -> Arc<T> {
        Arc::clone(&self.0.load())
    }

    pub(crate) fn set(&self, value: Arc<T>) {
        self.0.store(Arc::new(value));
    }
}
