//! A plug-in in Rust: greets its input with the greeting the host's
//! configuration gives it (host.config), reversed when the policy says so.
//! Its allocator is the canonical ABI's cabi_realloc, plus dealloc(ptr, size, align).
use std::alloc::Layout;

#[link(wasm_import_module = "host")]
extern "C" {
    /// The value of a configuration key, as (ptr << 32) | len in this plug-in's heap.
    fn config(key: *const u8, len: usize) -> u64;
}

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
pub unsafe extern "C" fn dealloc(ptr: *mut u8, size: usize, align: usize) {
    std::alloc::dealloc(ptr, Layout::from_size_align_unchecked(size, align))
}

unsafe fn host_string(key: &str) -> String {
    let packed = config(key.as_ptr(), key.len());
    let (ptr, len) = ((packed >> 32) as usize as *mut u8, (packed & 0xFFFF_FFFF) as usize);
    if len == 0 {
        return String::new();
    }
    // The host wrote it with our allocator: take ownership (freed when dropped).
    String::from_utf8_lossy(&Vec::from_raw_parts(ptr, len, len)).into_owned()
}

#[no_mangle]
pub unsafe extern "C" fn handle(ptr: *const u8, len: usize) -> u64 {
    let input = String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len));
    let mut reply = format!("{}, {}!", host_string("greeting"), input.trim());
    if host_string("reverse") == "yes" {
        reply = reply.chars().rev().collect();
    }
    let bytes = reply.into_bytes().into_boxed_slice();
    let len = bytes.len() as u64;
    ((Box::into_raw(bytes) as *mut u8 as usize as u64) << 32) | len
}
