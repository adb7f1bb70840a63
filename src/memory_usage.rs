//! How much memory Strata's own data uses, the way Redis's `used_memory`
//! counts what zmalloc handed out: a counting wrapper around mimalloc
//! (glibc's malloc trimmed and refaulted pages under load, and was half the
//! time of loading a checkpoint). RocksDB allocates through C++ and is not
//! counted, so the figure is the memory engines, connection buffers and
//! server state — what `maxmemory` is meant to bound.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

use libmimalloc_sys as ffi;
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

/// The alignment every block of mimalloc's has: block sizes are whole
/// words and pages start word-aligned. (Not 16 as for glibc: a 24-byte
/// block can sit at 8 mod 16.)
const WORD: usize = std::mem::size_of::<usize>();

/// Whether mimalloc's plain entry points give a block of `align`. A SET
/// makes about 14 allocations, and the aligned entry points the `mimalloc`
/// crate calls cost twice the instructions of these.
fn plain(align: usize) -> bool {
    align <= WORD
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = match plain(layout.align()) {
            // SAFETY: a plain allocation of the layout's size.
            true => unsafe { ffi::mi_malloc(layout.size()) }.cast(),
            // SAFETY: forwarded unchanged to the allocator.
            false => unsafe { MiMalloc.alloc(layout) },
        };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from mimalloc, plain or aligned (one `mi_free`
        // frees both).
        unsafe { ffi::mi_free(ptr.cast()) };
        count(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = match plain(layout.align()) {
            // SAFETY: a plain allocation of the layout's size.
            true => unsafe { ffi::mi_zalloc(layout.size()) }.cast(),
            // SAFETY: forwarded unchanged to the allocator.
            false => unsafe { MiMalloc.alloc_zeroed(layout) },
        };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = match plain(layout.align()) {
            // SAFETY: `ptr` came from mimalloc; the new block is malloc-aligned.
            true => unsafe { ffi::mi_realloc(ptr.cast(), new_size) }.cast(),
            // SAFETY: `ptr` came from `alloc` with `layout`; forwarded unchanged.
            false => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for_through_growth_and_zeroing() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 9, 16, 24, 40, 48, 100, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let grown = Layout::from_size_align(size * 3, align).unwrap();
                // Many blocks: one size class's blocks sit at many offsets.
                for zeroed in [false, true] {
                    let blocks: Vec<*mut u8> = (0..64)
                        .map(|_| match zeroed {
                            // SAFETY: a non-zero size and a valid layout.
                            false => unsafe { CountingAllocator.alloc(layout) },
                            // SAFETY: as above.
                            true => unsafe { CountingAllocator.alloc_zeroed(layout) },
                        })
                        .collect();
                    for block in blocks {
                        assert!(
                            !block.is_null() && (block as usize).is_multiple_of(align),
                            "size {size} align {align}"
                        );
                        if zeroed {
                            // SAFETY: the block holds `size` initialized bytes.
                            assert!(unsafe { std::slice::from_raw_parts(block, size) }.iter().all(|&b| b == 0));
                        }
                        // SAFETY: `block` came from this allocator with `layout`.
                        let block = unsafe { CountingAllocator.realloc(block, layout, grown.size()) };
                        assert!(
                            !block.is_null() && (block as usize).is_multiple_of(align),
                            "grown {size} align {align}"
                        );
                        // SAFETY: `block` is now of layout `grown`.
                        unsafe { CountingAllocator.dealloc(block, grown) };
                    }
                }
            }
        }
    }
}
