//! zig_hello: a CGI/1.1 handler in Zig (netmods/handlers).
//!
//! Answers every request with a text/plain body naming the request and
//! summing what came on stdin:
//!
//!     zig METHOD SCRIPT_NAME|PATH_INFO?QUERY_STRING
//!     body BYTES bytes, first line: FIRST
//!
//! `PATH_INFO=/fail` exits with status 7 before writing (the host answers
//! 500). Uses Zig's std (process.Init's environ map, Io.File readers and
//! writers), as a Zig program would.
const std = @import("std");
const Io = std.Io;

pub fn main(init: std.process.Init) !u8 {
    const io = init.io;
    const arena = init.arena.allocator();
    const env = init.environ_map;

    const path_info = env.get("PATH_INFO") orelse "";
    if (std.mem.eql(u8, path_info, "/fail")) return 7;

    var in_buf: [4096]u8 = undefined;
    var in_reader: Io.File.Reader = .init(.stdin(), io, &in_buf);
    const body = try in_reader.interface.allocRemaining(arena, .limited(16 << 20));
    var lines = std.mem.splitScalar(u8, body, '\n');
    const first = lines.first();

    var out_buf: [4096]u8 = undefined;
    var out_writer: Io.File.Writer = .init(.stdout(), io, &out_buf);
    const out = &out_writer.interface;
    try out.print("Content-Type: text/plain; charset=utf-8\r\nX-Handler: zig\r\n\r\n", .{});
    try out.print("zig {s} {s}|{s}?{s}\n", .{
        env.get("REQUEST_METHOD") orelse "?",
        env.get("SCRIPT_NAME") orelse "",
        path_info,
        env.get("QUERY_STRING") orelse "",
    });
    try out.print("body {d} bytes, first line: {s}\n", .{ body.len, first });
    try out.flush();
    return 0;
}
