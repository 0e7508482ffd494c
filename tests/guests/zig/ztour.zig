//! A tour of Zig's standard library as a WASI command (tests/guests/zig).
//!
//! Usage: ztour EXIT_CODE [WORDS...] < lines
//!        ztour panic [WORDS...] < lines    (panics at the end)
//!
//! Works in its current directory (on WASI: the first preopen), also through
//! a directory handle (`Dir.openDir`), as Zig programs do. Prints a
//! deterministic transcript to stdout so the wasm32-wasi build and a native
//! build of the same source can be compared byte for byte; leaves
//! `report.txt` and `work/` behind for the host to inspect.
const std = @import("std");
const Io = std.Io;

pub fn main(init: std.process.Init) !u8 {
    const io = init.io;
    const arena = init.arena.allocator();
    const cwd = Io.Dir.cwd();

    var out_buf: [4096]u8 = undefined;
    var out_writer: Io.File.Writer = .init(.stdout(), io, &out_buf);
    const out = &out_writer.interface;
    var err_buf: [256]u8 = undefined;
    var err_writer: Io.File.Writer = .init(.stderr(), io, &err_buf);
    const err = &err_writer.interface;

    // Arguments (argv[0] differs between builds, so it is not printed).
    const args = try init.minimal.args.toSlice(arena);
    try out.print("argc={d}\n", .{args.len});
    for (args[1..], 1..) |arg, i| try out.print("arg[{d}]={s}\n", .{ i, arg });
    const panic = args.len > 1 and std.mem.eql(u8, args[1], "panic");
    const exit_code: u8 = if (args.len > 1) std.fmt.parseInt(u8, args[1], 10) catch 2 else 0;

    // Environment: only ZT_* names, sorted (the native run has more).
    var names: std.ArrayList([]const u8) = .empty;
    for (init.environ_map.keys()) |key| {
        if (std.mem.startsWith(u8, key, "ZT_")) try names.append(arena, key);
    }
    std.mem.sort([]const u8, names.items, {}, lessThan);
    for (names.items) |key| try out.print("env {s}={s}\n", .{ key, init.environ_map.get(key).? });

    // stdin: number each line, reversed.
    var in_buf: [512]u8 = undefined;
    var in_reader: Io.File.Reader = .init(.stdin(), io, &in_buf);
    const input = try in_reader.interface.allocRemaining(arena, .limited(1 << 20));
    var lines = std.mem.splitScalar(u8, input, '\n');
    var line_no: usize = 0;
    while (lines.next()) |line| {
        if (line.len == 0 and lines.peek() == null) break;
        line_no += 1;
        const rev = try arena.dupe(u8, line);
        std.mem.reverse(u8, rev);
        try out.print("stdin {d}: {s}\n", .{ line_no, rev });
    }

    // Files: create, write, read back, rename, stat, iterate, delete.
    try cwd.createDirPath(io, "work/nested");
    {
        var file = try cwd.createFile(io, "work/a.txt", .{});
        defer file.close(io);
        var wbuf: [64]u8 = undefined;
        var fw = file.writer(io, &wbuf);
        for (0..100) |i| try fw.interface.print("line {d:0>3}\n", .{i});
        try fw.interface.flush();
    }
    var blob: [5000]u8 = undefined;
    for (&blob, 0..) |*b, i| b.* = @truncate(i *% 31 +% 7);
    try cwd.writeFile(io, .{ .sub_path = "work/nested/blob.bin", .data = &blob });

    const text = try cwd.readFileAlloc(io, "work/a.txt", arena, .limited(1 << 20));
    try out.print("a.txt: {d} bytes, {d} lines, crc32={x:0>8}\n", .{
        text.len, std.mem.count(u8, text, "\n"), std.hash.Crc32.hash(text),
    });
    const back = try cwd.readFileAlloc(io, "work/nested/blob.bin", arena, .limited(1 << 20));
    try out.print("blob.bin: {d} bytes, same={}\n", .{ back.len, std.mem.eql(u8, back, &blob) });

    // Positional write in the middle of an existing file (pwrite).
    {
        var file = try cwd.openFile(io, "work/a.txt", .{ .mode = .read_write });
        defer file.close(io);
        try file.writePositionalAll(io, "LINE", 9 * 5);
        const st = try file.stat(io);
        try out.print("a.txt stat: size={d} kind={s}\n", .{ st.size, @tagName(st.kind) });
    }

    const host_input = try cwd.readFileAlloc(io, "input.txt", arena, .limited(1 << 20));
    const upper = try std.ascii.allocUpperString(arena, host_input);
    try cwd.writeFile(io, .{ .sub_path = "work/input.upper", .data = upper });
    try out.print("input.txt: {d} bytes, crc32={x:0>8}\n", .{ host_input.len, std.hash.Crc32.hash(host_input) });

    try cwd.rename("work/a.txt", cwd, "work/renamed.txt", io);
    if (cwd.statFile(io, "work/a.txt", .{})) |_| {
        try out.print("a.txt still there\n", .{});
    } else |e| try out.print("a.txt after rename: {s}\n", .{@errorName(e)});
    const st = try cwd.statFile(io, "work/renamed.txt", .{});
    try out.print("renamed.txt: size={d} kind={s}\n", .{ st.size, @tagName(st.kind) });

    try listDir(io, arena, cwd, "work", out);

    try cwd.deleteFile(io, "work/nested/blob.bin");
    try cwd.deleteDir(io, "work/nested");
    if (cwd.openFile(io, "work/nested/blob.bin", .{})) |f| {
        f.close(io);
        try out.print("blob.bin still there\n", .{});
    } else |e| try out.print("blob.bin after delete: {s}\n", .{@errorName(e)});
    if (cwd.deleteDir(io, "work")) |_| {
        try out.print("deleted non-empty work\n", .{});
    } else |e| try out.print("delete non-empty work: {s}\n", .{@errorName(e)});
    try listDir(io, arena, cwd, "work", out);

    // A directory handle: files made through it (the host's inheriting
    // rights), copy, symlink, hard link, timestamps, then walk and deleteTree.
    {
        var sub = try cwd.createDirPathOpen(io, "tree/a", .{});
        defer sub.close(io);
        try sub.writeFile(io, .{ .sub_path = "one.txt", .data = "first file\n" });
        try sub.copyFile("one.txt", sub, "two.txt", io, .{});
        try sub.symLink(io, "one.txt", "link", .{});
        var target: [64]u8 = undefined;
        const n = try sub.readLink(io, "link", &target);
        // (Not read through the link: on WASI, Zig's openFile never sets
        // SYMLINK_FOLLOW, so that is ELOOP there, as in wasmtime.)
        try sub.hardLink("two.txt", cwd, "tree/hard", io, .{});
        const hard = try cwd.statFile(io, "tree/hard", .{});
        const link = try sub.statFile(io, "link", .{ .follow_symlinks = false });
        try out.print("link -> {s} ({s}); hard link nlink={d}\n", .{ target[0..n], @tagName(link.kind), hard.nlink });
        var file = try sub.openFile(io, "two.txt", .{ .mode = .read_write });
        defer file.close(io);
        try file.setLength(io, 5); // before the times: it sets mtime to now
        try file.setTimestamps(io, .{
            .access_timestamp = .{ .new = .fromNanoseconds(1_000_000_000_123_456_789) },
            .modify_timestamp = .{ .new = .fromNanoseconds(1_500_000_000_987_654_321) },
        });
        const ts = try file.stat(io);
        try out.print("two.txt: atime={d} mtime={d} length={d}\n", .{
            ts.atime.?.toNanoseconds(), ts.mtime.toNanoseconds(), try file.length(io),
        });
        if (sub.createFile(io, "one.txt", .{ .exclusive = true })) |f| {
            f.close(io);
            try out.print("exclusive create of one.txt succeeded\n", .{});
        } else |e| try out.print("exclusive create: {s}\n", .{@errorName(e)});
    }
    {
        var tree = try cwd.openDir(io, "tree", .{ .iterate = true });
        defer tree.close(io);
        var walker = try tree.walk(arena);
        defer walker.deinit();
        var paths: std.ArrayList([]const u8) = .empty;
        while (try walker.next(io)) |entry| {
            try paths.append(arena, try std.fmt.allocPrint(arena, "{s}:{s}", .{ entry.path, @tagName(entry.kind) }));
        }
        std.mem.sort([]const u8, paths.items, {}, lessThan);
        try out.print("walk tree:", .{});
        for (paths.items) |path| try out.print(" {s}", .{path});
        try out.print("\n", .{});
    }
    try cwd.deleteTree(io, "tree");
    if (cwd.access(io, "tree", .{})) |_| {
        try out.print("tree still there\n", .{});
    } else |e| try out.print("tree after deleteTree: {s}\n", .{@errorName(e)});

    // Clocks: a 20 ms sleep must advance the monotonic clock by at least that.
    const t0 = Io.Clock.Timestamp.now(io, .awake);
    try Io.Clock.Duration.sleep(.{ .raw = .fromMilliseconds(20), .clock = .awake }, io);
    const slept = t0.untilNow(io).raw.toMilliseconds();
    const wall = Io.Clock.real.now(io).toSeconds();
    try out.print("slept>=20ms: {}\nwall clock after 2020: {}\n", .{ slept >= 20, wall > 1577836800 });

    // Randomness: two draws of 32 bytes differ and are not all zero.
    var r1: [32]u8 = undefined;
    var r2: [32]u8 = undefined;
    try io.randomSecure(&r1);
    io.random(&r2);
    try out.print("random: distinct={} nonzero={}\n", .{
        !std.mem.eql(u8, &r1, &r2), !std.mem.allEqual(u8, &r1, 0),
    });

    try cwd.writeFile(io, .{ .sub_path = "report.txt", .data = try std.fmt.allocPrint(
        arena,
        "args={d} lines={d} exit={d}\n",
        .{ args.len - 1, line_no, exit_code },
    ) });

    try err.print("ztour: exiting with {d}\n", .{exit_code});
    try err.flush();
    if (panic) {
        try out.flush();
        @panic("deliberate panic"); // a trap on WASI, SIGABRT natively
    }
    try out.print("exit {d}\n", .{exit_code});
    try out.flush();
    return exit_code;
}

fn lessThan(_: void, a: []const u8, b: []const u8) bool {
    return std.mem.lessThan(u8, a, b);
}

fn listDir(io: Io, arena: std.mem.Allocator, parent: Io.Dir, path: []const u8, out: *Io.Writer) !void {
    var dir = try parent.openDir(io, path, .{ .iterate = true });
    defer dir.close(io);
    var entries: std.ArrayList([]const u8) = .empty;
    var it = dir.iterate();
    while (try it.next(io)) |entry| {
        try entries.append(arena, try std.fmt.allocPrint(arena, "{s} ({s})", .{ entry.name, @tagName(entry.kind) }));
    }
    std.mem.sort([]const u8, entries.items, {}, lessThan);
    try out.print("ls {s}:", .{path});
    for (entries.items) |e| try out.print(" {s}", .{e});
    try out.print("\n", .{});
}
