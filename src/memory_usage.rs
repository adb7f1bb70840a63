//! How much memory Strata's own data uses, the way Redis's `used_memory`
//! counts what zmalloc handed out: a counting wrapper around mimalloc
//! (glibc's malloc trimmed and refaulted pages under load, and was half the
//! time of loading a checkpoint). RocksDB allocates through C++ and is not
//! counted, so the figure is the memory engines, connection buffers and
//! server state — what `maxmemory` is meant to bound.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

use mimalloc::MiMalloc;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

/// How far a thread's own count may drift before it is added to the shared
/// one: one shared counter updated on every allocation would bounce its
/// cache line between the cores on every allocation.
const LOCAL_SLACK: isize = 256 << 10;

/// A thread's allocations not yet added to `ALLOCATED`; handed over when
/// the thread exits.
struct LocalCount(Cell<isize>);

impl Drop for LocalCount {
    fn drop(&mut self) {
        ALLOCATED.fetch_add(self.0.replace(0), Ordering::Relaxed);
    }
}

thread_local! {
    static LOCAL: LocalCount = const { LocalCount(Cell::new(0)) };
}

fn count(delta: isize) {
    let counted_locally = LOCAL.try_with(|local| {
        let pending = local.0.get() + delta;
        if pending.abs() > LOCAL_SLACK {
            ALLOCATED.fetch_add(pending, Ordering::Relaxed);
            local.0.set(0);
        } else {
            local.0.set(pending);
        }
    });
    if counted_locally.is_err() {
        // The thread is exiting and its count already handed over.
        ALLOCATED.fetch_add(delta, Ordering::Relaxed);
    }
}

/// mimalloc, counting live bytes. The binary installs it with
/// `#[global_allocator]`; without it `used_bytes` reads 0.
pub struct CountingAllocator;

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the allocator.
        let ptr = unsafe { MiMalloc.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the allocator.
        let ptr = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `alloc` with `layout`; forwarded unchanged.
        let new = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// Live bytes allocated through the counting allocator.
pub fn used_bytes() -> u64 {
    ALLOCATED.load(Ordering::Relaxed).max(0) as u64
}
