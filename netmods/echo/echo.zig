//! echo: a blocking TCP echo server, one connection at a time, on the
//! listening socket the host pre-opens.
//!
//! The listener is the fd named by $LISTEN_FD, else the first fd from 3 up
//! whose filetype is SOCKET_STREAM (hosts pre-open directories first, then
//! listeners; the scan stops at the first fd that is not open).
//!
//! Loop: sock_accept (blocking) -> { sock_recv -> sock_send all } until the
//! peer closes -> fd_close. A failing connection only ends that connection;
//! the server exits (status 1) only if the listener itself fails, or
//! (status 2) if there is no listener.
//!
//! Only preview1 calls from std.os.wasi are used, no allocator and no std.Io,
//! so the imports are exactly the ones listed in netmods/README.md.

const std = @import("std");
const wasi = std.os.wasi;

const first_fd: wasi.fd_t = 3;
/// Bounds the listener scan on a host that reports every fd as open.
const scan_limit: wasi.fd_t = 4096;
/// Largest environment this server inspects for LISTEN_FD.
const env_max_count = 256;
const env_max_bytes = 16384;

var buffer: [16384]u8 = undefined;

fn writeStderr(msg: []const u8) void {
    var rest = msg;
    while (rest.len > 0) {
        const iov = [_]wasi.ciovec_t{.{ .base = rest.ptr, .len = rest.len }};
        var written: usize = 0;
        if (wasi.fd_write(2, &iov, iov.len, &written) != .SUCCESS or written == 0) return;
        rest = rest[written..];
    }
}

fn logErrno(what: []const u8, err: wasi.errno_t) void {
    var digits: [5]u8 = undefined;
    var n: usize = 0;
    var v: u16 = @intFromEnum(err);
    while (true) {
        digits[digits.len - 1 - n] = @intCast('0' + v % 10);
        n += 1;
        v /= 10;
        if (v == 0) break;
    }
    writeStderr("echo: ");
    writeStderr(what);
    writeStderr(": errno ");
    writeStderr(digits[digits.len - n ..]);
    writeStderr(" (");
    writeStderr(@tagName(err));
    writeStderr(")\n");
}

/// The value of an environment variable, if set and the environment is small enough.
fn getenv(name: []const u8, ptrs: *[env_max_count][*:0]u8, bytes: *[env_max_bytes]u8) ?[]const u8 {
    var count: usize = 0;
    var size: usize = 0;
    if (wasi.environ_sizes_get(&count, &size) != .SUCCESS) return null;
    if (count == 0 or count > env_max_count or size > env_max_bytes) return null;
    if (wasi.environ_get(ptrs, bytes) != .SUCCESS) return null;
    for (ptrs[0..count]) |entry| {
        const text = std.mem.span(entry);
        if (text.len > name.len and text[name.len] == '=' and std.mem.eql(u8, text[0..name.len], name))
            return text[name.len + 1 ..];
    }
    return null;
}

fn parseFd(text: []const u8) ?wasi.fd_t {
    if (text.len == 0 or text.len > 9) return null;
    var v: wasi.fd_t = 0;
    for (text) |c| {
        if (c < '0' or c > '9') return null;
        v = v * 10 + @as(wasi.fd_t, c - '0');
    }
    return v;
}

fn filetypeOf(fd: wasi.fd_t) union(enum) { ok: wasi.filetype_t, err: wasi.errno_t } {
    var stat: wasi.fdstat_t = undefined;
    const err = wasi.fd_fdstat_get(fd, &stat);
    if (err != .SUCCESS) return .{ .err = err };
    return .{ .ok = stat.fs_filetype };
}

fn findListener() ?wasi.fd_t {
    var env_ptrs: [env_max_count][*:0]u8 = undefined;
    var env_bytes: [env_max_bytes]u8 = undefined;

    if (getenv("LISTEN_FD", &env_ptrs, &env_bytes)) |text| {
        const fd = parseFd(text) orelse {
            writeStderr("echo: LISTEN_FD is not a valid fd number\n");
            return null;
        };
        switch (filetypeOf(fd)) {
            .ok => |t| if (t == .SOCKET_STREAM) return fd,
            .err => {},
        }
        writeStderr("echo: LISTEN_FD is not an open stream socket\n");
        return null;
    }
    var fd = first_fd;
    while (fd < scan_limit) : (fd += 1) {
        switch (filetypeOf(fd)) {
            .ok => |t| if (t == .SOCKET_STREAM) return fd,
            .err => |e| if (e == .BADF) break,
        }
    }
    writeStderr("echo: no pre-opened listening socket (no stream socket among fds 3.., and LISTEN_FD unset)\n");
    return null;
}

fn sendAll(fd: wasi.fd_t, data: []const u8) bool {
    var rest = data;
    while (rest.len > 0) {
        const iov = [_]wasi.ciovec_t{.{ .base = rest.ptr, .len = rest.len }};
        var sent: usize = 0;
        switch (wasi.sock_send(fd, &iov, iov.len, 0, &sent)) {
            .SUCCESS => {},
            .INTR => continue,
            else => return false,
        }
        if (sent == 0) return false;
        rest = rest[sent..];
    }
    return true;
}

/// Echoes until the peer closes or the connection fails.
fn echoConnection(fd: wasi.fd_t) void {
    while (true) {
        var iov = [_]wasi.iovec_t{.{ .base = &buffer, .len = buffer.len }};
        var received: usize = 0;
        var roflags: wasi.roflags_t = 0;
        switch (wasi.sock_recv(fd, &iov, iov.len, 0, &received, &roflags)) {
            .SUCCESS => {},
            .INTR => continue,
            else => return,
        }
        if (received == 0) return;
        if (!sendAll(fd, buffer[0..received])) return;
    }
}

/// Blocks until the listener is readable (used when the host made it non-blocking).
fn waitReadable(fd: wasi.fd_t) wasi.errno_t {
    var sub: wasi.subscription_t = std.mem.zeroes(wasi.subscription_t);
    sub.userdata = 1;
    sub.u.tag = .FD_READ;
    sub.u.u.fd_read = .{ .fd = fd };
    var event: wasi.event_t = undefined;
    var count: usize = 0;
    return wasi.poll_oneoff(&sub, &event, 1, &count);
}

fn isTransient(err: wasi.errno_t) bool {
    return switch (err) {
        .INTR, .CONNABORTED, .CONNRESET, .PERM, .PROTO, .MFILE, .NFILE, .NOBUFS, .NOMEM => true,
        else => false,
    };
}

pub fn main() u8 {
    const listener = findListener() orelse return 2;
    while (true) {
        var fd: wasi.fd_t = -1;
        const err = wasi.sock_accept(listener, .{}, &fd);
        switch (err) {
            .SUCCESS => {
                echoConnection(fd);
                _ = wasi.fd_close(fd);
            },
            .AGAIN => {
                const werr = waitReadable(listener);
                if (werr != .SUCCESS and werr != .INTR) {
                    logErrno("waiting on the listening socket failed", werr);
                    return 1;
                }
            },
            else => if (!isTransient(err)) {
                logErrno("accept on the listening socket failed", err);
                return 1;
            },
        }
    }
}
