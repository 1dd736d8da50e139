//! An allocator that aborts the process on any single allocation above
//! [`MAX_ALLOCATION`]: a length read from the input and trusted is then a crash, under
//! libFuzzer (which builds with `-s none`, so without AddressSanitizer's
//! `-malloc_limit_mb`) and in the regression test alike. Each binary installs it with
//! `#[global_allocator] static ALLOCATOR: LimitedAllocator = LimitedAllocator;`.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation a decoder may make for one fuzz input.
pub const MAX_ALLOCATION: usize = 256 << 20;

/// The system allocator, refusing allocations above [`MAX_ALLOCATION`] by aborting.
pub struct LimitedAllocator;

fn check(size: usize) {
    if size > MAX_ALLOCATION {
        eprintln!("==huge allocation== {size} bytes in one allocation (limit {MAX_ALLOCATION})");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, after a size
// check that does not touch the memory.
unsafe impl GlobalAlloc for LimitedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}
