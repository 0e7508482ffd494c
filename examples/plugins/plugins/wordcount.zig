//! A plug-in in Zig: counts the words of its input (runs of bytes other
//! than ASCII white space) and names the longest, e.g. "4 words, longest: jumps".
//! Its allocator is allocate(size) / free(ptr, size) over Zig's wasm allocator.
const std = @import("std");
const gpa = std.heap.wasm_allocator;

export fn allocate(size: usize) ?[*]u8 {
    const block = gpa.alloc(u8, size) catch return null;
    return block.ptr;
}

export fn free(ptr: [*]u8, size: usize) void {
    gpa.free(ptr[0..size]);
}

fn isSpace(c: u8) bool {
    return c == ' ' or c == '\t' or c == '\n' or c == '\r';
}

export fn handle(ptr: [*]const u8, len: usize) u64 {
    const text = ptr[0..len];
    var words: usize = 0;
    var longest: []const u8 = "";
    var it = std.mem.tokenizeAny(u8, text, " \t\r\n");
    while (it.next()) |word| {
        words += 1;
        if (word.len > longest.len) longest = word;
    }
    var scratch: [64]u8 = undefined;
    const head = std.fmt.bufPrint(&scratch, "{d} words, longest: ", .{words}) catch return 0;
    const out = gpa.alloc(u8, head.len + longest.len) catch return 0;
    @memcpy(out[0..head.len], head);
    @memcpy(out[head.len..], longest);
    return (@as(u64, @intFromPtr(out.ptr)) << 32) | out.len;
}
