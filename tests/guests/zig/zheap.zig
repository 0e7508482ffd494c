// build-flags: -target wasm32-freestanding -fno-entry -rdynamic
//! A Zig reactor (freestanding, with _initialize) for the GuestHeap tests:
//! allocate(size) and a sized free(ptr, size) over Zig's wasm allocator, a
//! count of live bytes, and a function returning its result as (ptr << 32) | len.
const std = @import("std");
const gpa = std.heap.wasm_allocator;

var live_bytes: usize = 0;

/// A reactor's initializer (the host calls it once, before anything else).
export fn _initialize() void {
    live_bytes = 0;
}

export fn allocate(size: usize) ?[*]u8 {
    const block = gpa.alloc(u8, size) catch return null;
    live_bytes += size;
    return block.ptr;
}

export fn free(ptr: [*]u8, size: usize) void {
    gpa.free(ptr[0..size]);
    live_bytes -= size;
}

export fn live() usize {
    return live_bytes;
}

/// The words of the text in reverse order, as a new allocation: (ptr << 32) | len.
export fn reverse_words(ptr: [*]const u8, len: usize) u64 {
    const text = ptr[0..len];
    const out = allocate(len) orelse return 0;
    var end: usize = len;
    var at: usize = 0;
    while (end > 0) {
        var start = end;
        while (start > 0 and text[start - 1] != ' ') start -= 1;
        @memcpy(out[at .. at + (end - start)], text[start..end]);
        at += end - start;
        if (start > 0) {
            out[at] = ' ';
            at += 1;
            end = start - 1;
        } else end = 0;
    }
    return (@as(u64, @intFromPtr(out)) << 32) | len;
}
