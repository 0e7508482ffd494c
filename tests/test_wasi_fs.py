"""asyncwasm.wasi fd_* and path_* functions on real files, through fake guest memory."""

from __future__ import annotations

import os

import pytest
import trio

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
abi = wasi.abi
Errno = wasi.Errno
R = wasi.Rights
O = abi.Oflags

RW = int(R.FD_READ | R.FD_WRITE | R.FD_SEEK | R.FD_TELL | R.FD_FILESTAT_GET | R.FD_FILESTAT_SET_SIZE
         | R.FD_FILESTAT_SET_TIMES | R.FD_ALLOCATE | R.FD_ADVISE | R.FD_SYNC | R.FD_DATASYNC | R.FD_FDSTAT_SET_FLAGS)


@pytest.fixture
def box(tmp_path):
    (tmp_path / "box").mkdir()
    return tmp_path / "box"


@pytest.fixture
def guest(box):
    with FakeGuest(wasi.WasiConfig(preopens=[(str(box), "/data", False)])) as g:
        yield g


def _create(guest, path=b"f.txt", data=b"", rights=RW):
    errno, fd = guest.open(path, oflags=int(O.CREAT | O.TRUNC), rights=rights)
    assert errno == Errno.SUCCESS
    if data:
        assert guest.write(fd, data) == (Errno.SUCCESS, len(data))
    return fd


def test_prestat(guest):
    out = guest.alloc(8)
    assert guest.call("fd_prestat_get", 3, out) == Errno.SUCCESS
    assert guest.read(out, 8) == b"\0\0\0\0" + (5).to_bytes(4, "little")
    name = guest.alloc(16)
    assert guest.call("fd_prestat_dir_name", 3, name, 4) == Errno.NAMETOOLONG
    assert guest.call("fd_prestat_dir_name", 3, name, 16) == Errno.SUCCESS
    assert guest.read(name, 5) == b"/data"
    assert guest.call("fd_prestat_get", 4, out) == Errno.BADF  # where wasi-libc's scan stops
    assert guest.call("fd_prestat_get", 1, out) == Errno.BADF  # stdout is no preopen


def test_create_write_seek_read(guest, box):
    fd = _create(guest, data=b"hello world")
    assert (box / "f.txt").read_bytes() == b"hello world"
    pos = guest.alloc(8)
    assert guest.call("fd_seek", fd, 6, int(abi.Whence.SET), pos) == Errno.SUCCESS and guest.u64(pos) == 6
    assert guest.read_fd(fd, 5) == (Errno.SUCCESS, b"world")
    assert guest.call("fd_tell", fd, pos) == Errno.SUCCESS and guest.u64(pos) == 11
    assert guest.call("fd_seek", fd, -5, int(abi.Whence.END), pos) == Errno.SUCCESS and guest.u64(pos) == 6
    assert guest.call("fd_seek", fd, -100, int(abi.Whence.CUR), pos) == Errno.INVAL
    assert guest.call("fd_seek", fd, 0, 3, pos) == Errno.INVAL
    assert guest.read_fd(fd, 100) == (Errno.SUCCESS, b"world")
    assert guest.read_fd(fd, 100) == (Errno.SUCCESS, b"")  # end of file


def test_scatter_gather(guest, box):
    fd = _create(guest)
    a, _ = guest.put(b"abc")
    b, _ = guest.put(b"defg")
    iovs, count = guest.iovecs([(a, 3), (b, 0), (b, 4)])
    out = guest.alloc(4)
    assert guest.call("fd_write", fd, iovs, count, out) == Errno.SUCCESS and guest.u32(out) == 7
    assert (box / "f.txt").read_bytes() == b"abcdefg"
    x, y = guest.alloc(2), guest.alloc(10)
    iovs, count = guest.iovecs([(x, 2), (y, 10)])
    assert guest.call("fd_pread", fd, iovs, count, 1, out) == Errno.SUCCESS and guest.u32(out) == 6
    assert guest.read(x, 2) == b"bc" and guest.read(y, 4) == b"defg"


def test_pread_pwrite_keep_position(guest, box):
    fd = _create(guest, data=b"0123456789")
    data, n = guest.put(b"AB")
    iovs, count = guest.iovecs([(data, n)])
    out, pos = guest.alloc(4), guest.alloc(8)
    assert guest.call("fd_pwrite", fd, iovs, count, 3, out) == Errno.SUCCESS and guest.u32(out) == 2
    assert guest.call("fd_tell", fd, pos) == Errno.SUCCESS and guest.u64(pos) == 10
    assert (box / "f.txt").read_bytes() == b"012AB56789"
    assert guest.call("fd_pread", fd, iovs, count, 1 << 63, out) == Errno.INVAL


def test_bad_pointers_are_fault_and_lose_nothing(guest, box):
    fd = _create(guest, data=b"abc")
    size = len(guest.memory.data)
    buf = guest.alloc(8)
    iovs, count = guest.iovecs([(buf, 8)])
    assert guest.call("fd_pread", fd, iovs, count, 0, size - 2) == Errno.FAULT
    bad_iovs, count = guest.iovecs([(size - 4, 8)])
    assert guest.call("fd_write", fd, bad_iovs, count, guest.alloc(4)) == Errno.FAULT
    assert guest.call("fd_write", fd, size + 100, 1, guest.alloc(4)) == Errno.FAULT
    assert guest.call("fd_fdstat_get", fd, size - 8) == Errno.FAULT
    assert guest.call("fd_read", fd, iovs, 2000, guest.alloc(4)) == Errno.INVAL  # more than IOV_MAX
    assert (box / "f.txt").read_bytes() == b"abc"
    assert guest.read_fd(fd, 10) == (Errno.SUCCESS, b"")  # position still at end: nothing consumed


def test_fdstat_of_files_and_directories(guest):
    fd = _create(guest, rights=int(R.FD_READ | R.FD_WRITE | R.PATH_OPEN))
    errno, (kind, flags, base, inheriting) = guest.fdstat(fd)
    assert errno == Errno.SUCCESS and kind == wasi.Filetype.REGULAR_FILE and flags == 0
    assert base == R.FD_READ | R.FD_WRITE  # PATH_OPEN does not apply to a file
    assert inheriting == 0
    errno, (kind, _, base, inheriting) = guest.fdstat(3)
    assert kind == wasi.Filetype.DIRECTORY and base & R.PATH_OPEN and inheriting & R.FD_WRITE


def test_filestat_and_truncate_and_times(guest, box):
    fd = _create(guest, data=b"hello world")
    assert guest.call("fd_filestat_set_size", fd, 5) == Errno.SUCCESS
    errno, st = guest.filestat(fd)
    host = os.stat(box / "f.txt")
    assert errno == Errno.SUCCESS
    assert st == (host.st_dev, host.st_ino, wasi.Filetype.REGULAR_FILE, 1, 5,
                  host.st_atime_ns, host.st_mtime_ns, host.st_ctime_ns)
    F = abi.Fstflags
    assert guest.call("fd_filestat_set_times", fd, 1_000_000_000, 2_000_000_123, int(F.ATIM | F.MTIM)) == 0
    host = os.stat(box / "f.txt")
    assert (host.st_atime_ns, host.st_mtime_ns) == (1_000_000_000, 2_000_000_123)
    assert guest.call("fd_filestat_set_times", fd, 0, 5_000_000_000, int(F.MTIM)) == 0
    assert os.stat(box / "f.txt").st_atime_ns == 1_000_000_000  # unchanged
    assert guest.call("fd_filestat_set_times", fd, 0, 0, int(F.ATIM | F.ATIM_NOW)) == Errno.INVAL
    assert guest.call("fd_filestat_set_times", fd, 0, 0, 0x10) == Errno.INVAL
    assert guest.call("fd_filestat_set_size", fd, 1 << 63) == Errno.INVAL


def test_times_now_use_the_configured_realtime_clock(box):
    config = wasi.WasiConfig(preopens=[(str(box), "/data", False)], realtime_ns=lambda: 1_600_000_000_000_000_007)
    with FakeGuest(config) as guest:
        fd = _create(guest)
        F = abi.Fstflags
        assert guest.call("fd_filestat_set_times", fd, 0, 0, int(F.ATIM_NOW | F.MTIM_NOW)) == 0
        assert os.stat(box / "f.txt").st_mtime_ns == 1_600_000_000_000_000_007
        ptr, n = guest.put(b"f.txt")
        assert guest.call("path_filestat_set_times", 3, 0, ptr, n, 7, 0, int(F.ATIM)) == 0
        assert os.stat(box / "f.txt").st_atime_ns == 7


def test_path_filestat_get(guest, box):
    (box / "d").mkdir()
    out = guest.alloc(64)
    ptr, n = guest.put(b"d")
    assert guest.call("path_filestat_get", 3, 0, ptr, n, out) == Errno.SUCCESS
    assert abi.FILESTAT.unpack(guest.read(out, 64))[2] == wasi.Filetype.DIRECTORY
    ptr, n = guest.put(b"nope")
    assert guest.call("path_filestat_get", 3, 0, ptr, n, out) == Errno.NOENT
    assert guest.call("path_filestat_get", 3, 2, ptr, n, out) == Errno.INVAL  # unknown lookup flag


def _readdir(guest, fd, cookie=0, size=4096):
    buf, used = guest.alloc(size), guest.alloc(4)
    errno = guest.call("fd_readdir", fd, buf, size, cookie, used)
    return errno, guest.read(buf, guest.u32(used))


def _parse_dirents(data):
    entries = []
    while len(data) >= 24:
        d_next, ino, namlen, kind = abi.DIRENT.unpack_from(data)
        entries.append((data[24 : 24 + namlen], d_next, kind))
        data = data[24 + namlen :]
    return entries


def test_readdir_lists_and_resumes_from_cookies(guest, box):
    (box / "sub").mkdir()
    (box / "a.txt").write_bytes(b"")
    os.symlink("a.txt", box / "ln")
    errno, fd = guest.open(b".", oflags=int(O.DIRECTORY), rights=int(R.FD_READDIR))
    assert errno == Errno.SUCCESS
    errno, data = _readdir(guest, fd)
    assert errno == Errno.SUCCESS
    entries = _parse_dirents(data)
    kinds = {name: kind for name, _, kind in entries}
    assert kinds == {b".": 3, b"..": 3, b"sub": 3, b"a.txt": 4, b"ln": 7}
    assert [d_next for _, d_next, _ in entries] == list(range(1, 6))
    # resume after the second entry
    _, rest = _readdir(guest, fd, cookie=2)
    assert [e[0] for e in _parse_dirents(rest)] == [e[0] for e in entries[2:]]
    # a buffer too small: truncated, exactly buf_len bytes
    errno, small = _readdir(guest, fd, size=30)
    assert errno == Errno.SUCCESS and len(small) == 30
    # past the end
    assert _readdir(guest, fd, cookie=99) == (Errno.SUCCESS, b"")
    # on a file
    file_fd = _create(guest)
    assert _readdir(guest, file_fd)[0] == Errno.NOTDIR
    assert _readdir(guest, 3)[0] == Errno.SUCCESS  # preopens can be listed


def test_mkdir_rename_unlink_rmdir(guest, box):
    assert guest.path("path_create_directory", 3, b"d") == Errno.SUCCESS
    assert guest.path("path_create_directory", 3, b"d") == Errno.EXIST
    _create(guest, b"d/f.txt", b"x")

    def rename(old, new):
        o, ol = guest.put(old)
        n, nl = guest.put(new)
        return guest.call("path_rename", 3, o, ol, 3, n, nl)

    assert rename(b"d/f.txt", b"d/g.txt") == Errno.SUCCESS
    assert (box / "d" / "g.txt").read_bytes() == b"x"
    assert rename(b"d/g.txt/", b"h") == Errno.NOTDIR
    assert guest.path("path_remove_directory", 3, b"d") == Errno.NOTEMPTY
    assert guest.path("path_unlink_file", 3, b"d") == Errno.ISDIR
    assert guest.path("path_unlink_file", 3, b"d/g.txt/") == Errno.NOTDIR
    assert guest.path("path_unlink_file", 3, b"d/g.txt") == Errno.SUCCESS
    assert guest.path("path_remove_directory", 3, b"d/g.txt") == Errno.NOENT
    assert guest.path("path_remove_directory", 3, b"d/") == Errno.SUCCESS
    assert not (box / "d").exists()


def test_open_flags(guest, box):
    (box / "f.txt").write_bytes(b"old")
    assert guest.open(b"f.txt", oflags=int(O.CREAT | O.EXCL), rights=RW) == (Errno.EXIST, None)
    errno, fd = guest.open(b"f.txt", oflags=int(O.TRUNC), rights=RW)
    assert errno == Errno.SUCCESS and (box / "f.txt").read_bytes() == b""
    errno, fd = guest.open(b"f.txt", rights=RW, fdflags=int(abi.Fdflags.APPEND))
    guest.write(fd, b"A")
    pos = guest.alloc(8)
    guest.call("fd_seek", fd, 0, 0, pos)
    guest.write(fd, b"B")
    assert (box / "f.txt").read_bytes() == b"AB"
    assert guest.fdstat(fd)[1][1] == abi.Fdflags.APPEND
    assert guest.open(b"f.txt", oflags=0x10, rights=RW) == (Errno.INVAL, None)
    assert guest.open(b"f.txt", rights=RW, fdflags=0x20) == (Errno.INVAL, None)


def test_fdstat_set_flags(guest, box):
    fd = _create(guest, data=b"ab")
    A = abi.Fdflags
    assert guest.call("fd_fdstat_set_flags", fd, int(A.APPEND)) == Errno.SUCCESS
    pos = guest.alloc(8)
    guest.call("fd_seek", fd, 0, 0, pos)
    guest.write(fd, b"c")
    assert (box / "f.txt").read_bytes() == b"abc"
    assert guest.call("fd_fdstat_set_flags", fd, 0) == Errno.SUCCESS
    guest.call("fd_seek", fd, 0, 0, pos)
    guest.write(fd, b"X")
    assert (box / "f.txt").read_bytes() == b"Xbc"
    assert guest.call("fd_fdstat_set_flags", fd, int(A.SYNC)) == Errno.NOTSUP
    assert guest.call("fd_fdstat_set_flags", fd, 0x40) == Errno.INVAL


def test_close_renumber_and_fd_reuse(guest):
    a = _create(guest, b"a.txt", b"A")
    b = _create(guest, b"b.txt", b"B")
    assert guest.call("fd_renumber", a, b) == Errno.SUCCESS
    pos = guest.alloc(8)
    guest.call("fd_seek", b, 0, 0, pos)
    assert guest.read_fd(b, 10) == (Errno.SUCCESS, b"A")
    assert guest.read_fd(a, 10)[0] == Errno.BADF
    assert guest.call("fd_renumber", b, 77) == Errno.BADF
    assert guest.call("fd_close", b) == Errno.SUCCESS
    assert guest.call("fd_close", b) == Errno.BADF
    c = _create(guest, b"c.txt")
    assert c == a  # lowest free number


def test_too_many_open_files(box):
    with FakeGuest(wasi.WasiConfig(preopens=[(str(box), "/", False)], max_fds=6)) as guest:
        fds = [_create(guest, b"%d" % i) for i in range(2)]
        assert len(fds) == 2
        assert guest.open(b"x", oflags=int(O.CREAT), rights=RW) == (Errno.MFILE, None)


def test_sync_advise_allocate(guest, box):
    fd = _create(guest, data=b"abc")
    assert guest.call("fd_sync", fd) == Errno.SUCCESS
    assert guest.call("fd_datasync", fd) == Errno.SUCCESS
    assert guest.call("fd_advise", fd, 0, 3, int(abi.Advice.SEQUENTIAL)) == Errno.SUCCESS
    assert guest.call("fd_advise", fd, 0, 3, 6) == Errno.INVAL
    assert guest.call("fd_allocate", fd, 0, 4096) in (Errno.SUCCESS, Errno.NOTSUP)
    assert guest.call("fd_allocate", fd, 1 << 62, 1 << 62) == Errno.FBIG
    assert guest.call("fd_advise", 1, 0, 0, 0) == Errno.NOTCAPABLE  # stdout has no FD_ADVISE


def test_missing_preopen_fails_at_context_creation(tmp_path):
    with pytest.raises(FileNotFoundError):
        wasi.WasiContext(wasi.WasiConfig(preopens=[(str(tmp_path / "nope"), "/x", False)]))


def test_close_releases_host_fds(box):
    before = len(os.listdir("/proc/self/fd"))
    guest = FakeGuest(wasi.WasiConfig(preopens=[(str(box), "/", False)], stdout="inherit"))
    for i in range(5):
        _create(guest, b"%d" % i)
    assert len(os.listdir("/proc/self/fd")) > before
    guest.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_fifo_opened_by_path_never_blocks_the_thread(guest, box):
    os.mkfifo(box / "fifo")
    # opening the read end with no writer does not wait (O_NONBLOCK on our own description)
    errno, fd = guest.open(b"fifo", rights=int(R.FD_READ | R.POLL_FD_READWRITE))
    assert errno == Errno.SUCCESS
    assert guest.fdstat(fd)[1][0] == wasi.Filetype.UNKNOWN
    writer = os.open(box / "fifo", os.O_WRONLY | os.O_NONBLOCK)
    try:
        buf = guest.alloc(16)
        iovs, count = guest.iovecs([(buf, 16)])
        out = guest.alloc(4)
        pending = guest.call("fd_read", fd, iovs, count, out)
        assert not isinstance(pending, int)  # a writer but no data: the guest waits

        async def main():
            os.write(writer, b"through fifo")
            with trio.fail_after(5):
                return await pending

        assert trio.run(main) == Errno.SUCCESS
        assert guest.read(buf, guest.u32(out)) == b"through fifo"
        pos = guest.alloc(8)
        assert guest.call("fd_seek", fd, 0, 0, pos) == Errno.SPIPE  # a pipe has no position
    finally:
        os.close(writer)
    # the write end without a reader is NXIO rather than a blocked thread
    guest.call("fd_close", fd)
    assert guest.open(b"fifo", rights=int(R.FD_WRITE))[0] == Errno.NXIO
