// build-flags: --crate-type cdylib
//! A Rust cdylib for the GuestHeap tests: the canonical ABI's cabi_realloc,
//! Layout-style alloc/dealloc (size and alignment), a counting allocator,
//! and string functions that return (ptr << 32) | len.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The canonical ABI's allocator: allocate (old_len 0) or reallocate.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    if old_len == 0 {
        if new_len == 0 {
            return align as *mut u8;
        }
        return std::alloc::alloc(Layout::from_size_align_unchecked(new_len, align));
    }
    std::alloc::realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len)
}

#[no_mangle]
pub unsafe extern "C" fn alloc(size: usize, align: usize) -> *mut u8 {
    match Layout::from_size_align(size, align) {
        Ok(layout) if size > 0 => std::alloc::alloc(layout),
        _ => std::ptr::null_mut(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, size: usize, align: usize) {
    std::alloc::dealloc(ptr, Layout::from_size_align_unchecked(size, align))
}

#[no_mangle]
pub extern "C" fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn packed(text: String) -> u64 {
    let bytes = text.into_bytes().into_boxed_slice();
    let len = bytes.len() as u64;
    let ptr = Box::into_raw(bytes) as *mut u8 as usize as u64;
    (ptr << 32) | len
}

/// The characters of UTF-8 text in reverse order; invalid UTF-8 gives 0.
#[no_mangle]
pub unsafe extern "C" fn reverse(ptr: *const u8, len: usize) -> u64 {
    let bytes = std::slice::from_raw_parts(ptr, len);
    match std::str::from_utf8(bytes) {
        Ok(text) => packed(text.chars().rev().collect()),
        Err(_) => 0,
    }
}

/// Number of characters of UTF-8 text, or -1 when it is not UTF-8.
#[no_mangle]
pub unsafe extern "C" fn count_chars(ptr: *const u8, len: usize) -> i32 {
    match std::str::from_utf8(std::slice::from_raw_parts(ptr, len)) {
        Ok(text) => text.chars().count() as i32,
        Err(_) => -1,
    }
}
