//! A counting global allocator: how many bytes the program has asked the
//! system allocator for and not yet given back.
//!
//! It counts `Layout::size()` of each request (a `realloc` moves the count
//! from the old size to the new), so the allocator's own overhead and
//! size-class rounding are not included. Install it once per test or bench
//! binary and read it around the code being measured:
//!
//! ```
//! use test_support::CountingAllocator;
//!
//! #[global_allocator]
//! static HEAP: CountingAllocator = CountingAllocator::new();
//!
//! fn main() {
//!     let before = HEAP.live_bytes();
//!     let v = vec![0u8; 1000];
//!     assert!(HEAP.live_bytes() - before >= 1000);
//!     drop(v);
//! }
//! ```
//!
//! The count is process-wide: other threads allocating at the same time are
//! counted too, so measure from one thread with the others idle.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live requested bytes (see the module docs).
pub struct CountingAllocator {
    live: AtomicUsize,
}

impl CountingAllocator {
    /// A counter at zero; for `#[global_allocator] static`.
    pub const fn new() -> Self {
        CountingAllocator {
            live: AtomicUsize::new(0),
        }
    }

    /// Bytes allocated and not yet freed, since the program started (when
    /// installed as the global allocator).
    pub fn live_bytes(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is passed unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter is only arithmetic on the side.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.live.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc`/`realloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.live.fetch_add(new_size, Ordering::Relaxed);
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` obeys the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
