"""Sandbox red team: one test (or family) per attack a hostile guest tries.

Each attack is named below with where its tests live; this file holds the
ones the feature tests did not already cover, or covers them harder (real
races instead of scripted ones, every path function instead of one):

| attack                                            | tests                                              |
|---------------------------------------------------|----------------------------------------------------|
| path traversal variants                           | here, every path function; test_wasi_sandbox.py    |
| symlink swaps racing with path resolution         | here (a real racing thread); test_wasi_sandbox.py  |
| hard links out of a preopen                       | here (racing, read-only to writable); sandbox      |
| rights escalation through fd_fdstat_set_rights    | here (every right, inheriting); sandbox            |
| fd_renumber over preopens                         | here                                               |
| readdir cookies past the end                      | here; test_wasi_fs.py                              |
| huge and overlapping iovec lists                  | here                                               |
| pointers at the very end of memory                | here, on a real asyncwasm.Memory and from Wasm     |
| poll_oneoff with 10,000 subscriptions             | here                                               |
| network policy bypass: IPv4-mapped IPv6, 0.0.0.0, | here, through the socket calls; test_netpolicy.py  |
| host names that resolve to loopback               |                                                    |

Files: every test runs in the ``tree`` of test_wasi_sandbox.py, whose
fixture fails the test if anything outside the sandbox changed. Network:
127.0.0.1 / ::1 only, every wait bounded.
"""

from __future__ import annotations

import os
import pathlib
import socket
import threading
import time

import pytest
import trio

from asyncwasm.wasi.netpolicy import NetPolicy

from .guests.harness import FakeGuest, load_wasi
from .test_wasi_sandbox import READ, guest, tree  # noqa: F401 - fixtures
from .test_wasi_sock import LOOPBACK, TIMEOUT, _accepted, _clock_sub, _connect, _fd_sub, _finish, _guest, _port
from .test_wasi_sock_wasmedge import AF, STREAM, _address, _bind, _getaddrinfo, _open, _wasmedge
from .wat import wat

wasi = load_wasi()
abi = wasi.abi
Errno = wasi.Errno
R = wasi.Rights
O = abi.Oflags
FOLLOW = 1
RW = READ | int(R.FD_WRITE)

# -- path traversal, through every function that takes a path -----------------------

#: Paths that leave the preopen: by "..", absolutely, or through a symlink
#: in the middle (which every function follows, whatever its flags).
ESCAPES = [
    b"..",
    b"../",
    b"../secret.txt",
    b"./../secret.txt",
    b"sub/../../secret.txt",
    b"sub/./deeper/../../../outside/secret.txt",
    b"sub/" + b"../" * 64 + b"etc/passwd",
    b"/",
    b"/etc/passwd",
    b"//etc/passwd",
    b"link_out_rel/secret.txt",
    b"link_out_rel/../secret.txt",
    b"sub/up/secret.txt",
    b"sub/up/",
]


def _path_calls(g: FakeGuest) -> dict:
    """Each path function, called with ``path`` in the role an attacker
    controls (both roles for rename and link)."""
    out = g.alloc(64)

    def two(name: str, first: bytes, second: bytes, *middle: int) -> int:
        a, al = g.put(first)
        b, bl = g.put(second)
        if name == "path_rename":
            return g.call(name, 3, a, al, 3, b, bl)
        return g.call(name, 3, *middle, a, al, 3, b, bl)

    def create(p: bytes) -> int:
        return g.open(p, oflags=int(O.CREAT), rights=RW)[0]

    return {
        "path_open": lambda p: g.open(p, rights=READ)[0],
        "path_open CREAT": create,
        "path_open DIRECTORY": lambda p: g.open(p, oflags=int(O.DIRECTORY), rights=READ)[0],
        "path_filestat_get": lambda p: g.call("path_filestat_get", 3, 0, *g.put(p), out),
        "path_filestat_get FOLLOW": lambda p: g.call("path_filestat_get", 3, FOLLOW, *g.put(p), out),
        "path_filestat_set_times": lambda p: g.call(
            "path_filestat_set_times", 3, FOLLOW, *g.put(p), 1, 1, int(abi.Fstflags.MTIM)),
        "path_create_directory": lambda p: g.path("path_create_directory", 3, p + b"/newdir"),
        "path_remove_directory": lambda p: g.path("path_remove_directory", 3, p),
        "path_unlink_file": lambda p: g.path("path_unlink_file", 3, p),
        "path_readlink": lambda p: g.path("path_readlink", 3, p, out, 64, out + 60),
        "path_rename from": lambda p: two("path_rename", p, b"taken"),
        "path_rename to": lambda p: two("path_rename", b"sub/file.txt", p),
        "path_link from": lambda p: two("path_link", p, b"taken", 0),
        "path_link from FOLLOW": lambda p: two("path_link", p, b"taken", FOLLOW),
        "path_link to": lambda p: two("path_link", b"sub/file.txt", p, 0),
        "path_symlink at": lambda p: g.call("path_symlink", *g.put(b"sub/file.txt"), 3, *g.put(p)),
    }


CALL_NAMES = [
    "path_open", "path_open CREAT", "path_open DIRECTORY", "path_filestat_get", "path_filestat_get FOLLOW",
    "path_filestat_set_times", "path_create_directory", "path_remove_directory", "path_unlink_file",
    "path_readlink", "path_rename from", "path_rename to", "path_link from", "path_link from FOLLOW",
    "path_link to", "path_symlink at",
]


@pytest.mark.parametrize("call", CALL_NAMES)
def test_traversal_is_refused_by_every_path_function(guest, tree, call):  # noqa: F811
    calls = _path_calls(guest)
    assert sorted(calls) == sorted(CALL_NAMES)
    attempt = calls[call]
    for path in ESCAPES:
        errno = attempt(path)
        # NOTCAPABLE before anything is looked at (no oracle of what lies
        # outside); creating a file named with a trailing slash is INVAL first.
        trailing_slash_create = call == "path_open CREAT" and path.endswith(b"/")
        assert errno == Errno.NOTCAPABLE or (trailing_slash_create and errno == Errno.INVAL), (call, path, errno)
    box = tree / "sandbox"
    assert not (box / "taken").exists() and (box / "sub" / "file.txt").read_bytes() == b"inside"


def test_outside_existence_is_not_an_oracle(guest):  # noqa: F811
    calls = _path_calls(guest)
    for name in ("path_open", "path_filestat_get", "path_readlink", "path_unlink_file"):
        there = calls[name](b"../outside/secret.txt")
        missing = calls[name](b"../outside/no-such-file")
        assert there == missing == Errno.NOTCAPABLE, name


# -- symlink swaps racing with the walk --------------------------------------------------


class _Flipper:
    """A thread flipping ``box/race`` between the inside and the outside as
    fast as it can, while the guest works through it."""

    def __init__(self, box: pathlib.Path, outside: pathlib.Path, mode: str) -> None:
        self.box, self.outside, self.mode = box, outside, mode
        self.stop = threading.Event()
        self.flips = 0
        (box / "race.dir").mkdir()
        (box / "race.dir" / "secret.txt").write_bytes(b"inside")
        os.symlink("race.dir", box / "race")
        # The inside directory by inode: its name flips between race.dir and race.
        self.inside = os.open(box / "race.dir", os.O_RDONLY | os.O_DIRECTORY)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        race, tmp = self.box / "race", self.box / "race.tmp"
        targets = ["race.dir", str(self.outside)] if self.mode == "link" else None
        while not self.stop.is_set():
            if targets:  # atomic: the link's target changes under the walker
                os.symlink(targets[self.flips % 2], tmp)
                os.replace(tmp, race)
            else:  # a real directory swapped with an escaping link
                if race.is_symlink():
                    os.unlink(race)
                    os.rename(self.box / "race.dir", race)
                else:
                    os.rename(race, self.box / "race.dir")
                    os.symlink(str(self.outside), race)
            self.flips += 1

    def __enter__(self) -> "_Flipper":
        self.thread.start()
        return self

    def put_inside(self, name: str, data: bytes) -> None:
        """Write ``name`` in the inside directory, whatever it is called now."""
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.inside)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)
        os.close(self.inside)
        for name in ("race", "race.tmp"):
            if (self.box / name).is_symlink():
                os.unlink(self.box / name)
        if (self.box / "race").is_dir():
            os.rename(self.box / "race", self.box / "race.dir")


def _race(tree: pathlib.Path, mode: str, attempt, min_tries: int = 300, seconds: float = 3.0) -> tuple[int, int]:
    """Run ``attempt(flipper)`` (True: it got through, False: refused)
    against a flipper until both outcomes were seen at least a few times."""
    got, refused, tries = 0, 0, 0
    with _Flipper(tree / "sandbox", tree / "outside", mode) as flipper:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (tries < min_tries or not (got and refused) or flipper.flips <= 10):
            if attempt(flipper):
                got += 1
            else:
                refused += 1
            tries += 1
            if tries % 16 == 0:
                time.sleep(0)  # let the flipper run between attempts too
        assert flipper.flips > 10
    return got, refused


@pytest.mark.parametrize("mode", ["link", "directory"])
def test_racing_symlink_swaps_never_read_outside(guest, tree, mode):  # noqa: F811
    def attempt(flipper: _Flipper) -> bool:
        errno, fd = guest.open(b"race/secret.txt", rights=READ)
        if errno != Errno.SUCCESS:
            assert errno in (Errno.NOTCAPABLE, Errno.NOENT, Errno.LOOP, Errno.NOTDIR), errno
            return False
        data = guest.read_fd(fd, 64)[1]
        guest.call("fd_close", fd)
        assert data == b"inside", "read a file outside the sandbox"
        return True

    got, refused = _race(tree, mode, attempt)
    assert got and refused, "the race never happened: the test proves nothing"


@pytest.mark.parametrize("mode", ["link", "directory"])
def test_racing_symlink_swaps_never_create_or_remove_outside(guest, tree, mode):  # noqa: F811
    def attempt(flipper: _Flipper) -> bool:
        errno, fd = guest.open(b"race/planted.txt", oflags=int(O.CREAT), rights=RW)
        if errno == Errno.SUCCESS:
            guest.call("fd_close", fd)
        unlinked = guest.path("path_unlink_file", 3, b"race/secret.txt")
        if unlinked == Errno.SUCCESS:  # it was the inside one: put it back (its name is racing)
            flipper.put_inside("secret.txt", b"inside")
        return errno == Errno.SUCCESS

    _race(tree, mode, attempt)
    assert not (tree / "outside" / "planted.txt").exists()
    assert (tree / "outside" / "secret.txt").read_bytes() == b"TOPSECRET"


# -- hard links out of a preopen ------------------------------------------------------------


def test_racing_hard_links_never_reach_outside(guest, tree):  # noqa: F811
    box = tree / "sandbox"
    secret = (tree / "outside" / "secret.txt").stat()

    def attempt(flipper: _Flipper) -> bool:
        errno = guest.call("path_link", 3, FOLLOW, *guest.put(b"race/secret.txt"), 3, *guest.put(b"stolen"))
        if errno != Errno.SUCCESS:
            return False
        linked = (box / "stolen").stat()
        os.unlink(box / "stolen")
        assert (linked.st_dev, linked.st_ino) != (secret.st_dev, secret.st_ino), "hard-linked a file from outside"
        return True

    _race(tree, "link", attempt)
    assert (tree / "outside" / "secret.txt").stat().st_nlink == 1


def test_a_read_only_file_cannot_become_writable_through_a_link(guest, tree):  # noqa: F811
    """Linking or renaming from the read-only preopen (fd 4) into the
    writable one would give write access to the same inode."""
    ro_file = tree / "ro" / "readme.txt"
    for flags in (0, FOLLOW):
        assert guest.call("path_link", 4, flags, *guest.put(b"readme.txt"), 3, *guest.put(b"w.txt")) == Errno.NOTCAPABLE
    assert guest.call("path_rename", 4, *guest.put(b"readme.txt"), 3, *guest.put(b"w.txt")) == Errno.NOTCAPABLE
    # a symlink from the writable side into the read-only tree cannot be followed: it leaves the preopen
    assert guest.call("path_symlink", *guest.put(b"../ro/readme.txt"), 3, *guest.put(b"to_ro")) == Errno.SUCCESS
    assert guest.open(b"to_ro", rights=RW) == (Errno.NOTCAPABLE, None)
    assert ro_file.stat().st_nlink == 1 and ro_file.read_bytes() == b"read me"


# -- rights escalation ----------------------------------------------------------------------------


def test_no_single_right_can_be_added_back(guest):  # noqa: F811
    errno, fd = guest.open(b"sub/file.txt", rights=RW)
    assert errno == Errno.SUCCESS
    _, (_, _, base, inheriting) = guest.fdstat(fd)
    for bit in range(64):
        right = 1 << bit
        if not base & right:
            assert guest.call("fd_fdstat_set_rights", fd, base | right, inheriting) == Errno.NOTCAPABLE, bit
        if not inheriting & right:
            assert guest.call("fd_fdstat_set_rights", fd, base, inheriting | right) == Errno.NOTCAPABLE, bit
    assert guest.fdstat(fd)[1][2:] == (base, inheriting)
    # stdio and the preopen itself: only dropping works there too
    for target in (0, 1, 3):
        _, (_, _, b, i) = guest.fdstat(target)
        missing = ~b & ((1 << 64) - 1)
        assert guest.call("fd_fdstat_set_rights", target, b | missing, i) == Errno.NOTCAPABLE


def test_inheriting_rights_cannot_be_raised_or_bypassed(guest, tree):  # noqa: F811
    errno, sub = guest.open(b"sub", oflags=int(O.DIRECTORY), rights=abi.RIGHTS_DIRECTORY, inheriting=READ)
    assert errno == Errno.SUCCESS
    _, (_, _, base, inheriting) = guest.fdstat(sub)
    assert guest.call("fd_fdstat_set_rights", sub, base, inheriting | int(R.FD_WRITE)) == Errno.NOTCAPABLE
    # a directory opened below gets at most what `sub` hands down, whatever it asks for
    errno, deeper = guest.open(b"deeper", dirfd=sub, oflags=int(O.DIRECTORY), rights=abi.RIGHTS_DIRECTORY,
                               inheriting=abi.RIGHTS_DIRECTORY_INHERITING)
    if errno == Errno.SUCCESS:
        assert not guest.fdstat(deeper)[1][3] & R.FD_WRITE
        assert guest.open(b"x.txt", dirfd=deeper, oflags=int(O.CREAT), rights=RW)[0] == Errno.NOTCAPABLE
    assert guest.open(b"file.txt", dirfd=sub, rights=RW)[0] == Errno.NOTCAPABLE
    assert guest.open(b"file.txt", dirfd=sub, rights=READ | int(R.FD_ALLOCATE))[0] == Errno.NOTCAPABLE
    assert guest.open(b"file.txt", dirfd=sub, rights=READ, fdflags=int(abi.Fdflags.DSYNC))[0] == Errno.NOTCAPABLE
    # truncating is the directory's right (PATH_FILESTAT_SET_SIZE): once dropped, O_TRUNC is refused
    _, (_, _, base, inheriting) = guest.fdstat(sub)
    assert guest.call("fd_fdstat_set_rights", sub, base & ~R.PATH_FILESTAT_SET_SIZE, inheriting) == Errno.SUCCESS
    assert guest.open(b"file.txt", dirfd=sub, oflags=int(O.TRUNC), rights=READ)[0] == Errno.NOTCAPABLE
    assert (tree / "sandbox" / "sub" / "file.txt").read_bytes() == b"inside"


# -- fd_renumber over preopens -----------------------------------------------------------------------


def _prestat(g: FakeGuest, fd: int) -> int:
    return g.call("fd_prestat_get", fd, g.alloc(8))


def test_renumbering_over_a_preopen_gives_no_more_than_what_moved(guest, tree):  # noqa: F811
    # the read-only preopen over the writable one: fd 3 is read-only now
    assert guest.call("fd_renumber", 4, 3) == Errno.SUCCESS
    assert guest.fdstat(4)[0] == Errno.BADF
    assert guest.open(b"readme.txt", rights=RW) == (Errno.NOTCAPABLE, None)
    assert guest.open(b"new.txt", oflags=int(O.CREAT), rights=READ) == (Errno.NOTCAPABLE, None)
    errno, fd = guest.open(b"readme.txt", rights=READ)
    assert errno == Errno.SUCCESS and guest.read_fd(fd, 64)[1] == b"read me"
    name = guest.alloc(8)
    assert guest.call("fd_prestat_dir_name", 3, name, 8) == Errno.SUCCESS and guest.read(name, 3) == b"/ro"
    # a plain file over a preopen: no longer a directory, no longer a preopen
    assert guest.call("fd_renumber", fd, 3) == Errno.SUCCESS
    assert _prestat(guest, 3) == Errno.BADF
    assert guest.open(b"readme.txt", rights=READ)[0] in (Errno.NOTDIR, Errno.NOTCAPABLE)
    assert not (tree / "ro" / "new.txt").exists() and not (tree / "sandbox" / "new.txt").exists()


def test_renumber_edge_cases(guest):  # noqa: F811
    assert guest.call("fd_renumber", 3, 3) == Errno.SUCCESS  # onto itself: a no-op, nothing closed
    assert _prestat(guest, 3) == Errno.SUCCESS and guest.open(b"sub/file.txt", rights=READ)[0] == Errno.SUCCESS
    for bad in (99, 0x7FFFFFFF, 0xFFFFFFFF):
        assert guest.call("fd_renumber", 3, bad) == Errno.BADF
        assert guest.call("fd_renumber", bad, 3) == Errno.BADF
    assert _prestat(guest, 3) == Errno.SUCCESS
    # a preopen moved onto stdin: stdin is now that directory, reading it is not reading the terminal
    assert guest.call("fd_renumber", 3, 0) == Errno.SUCCESS
    assert guest.read_fd(0, 8)[0] in (Errno.ISDIR, Errno.BADF, Errno.NOTCAPABLE)
    assert guest.open(b"sub/file.txt", dirfd=0, rights=READ)[0] == Errno.SUCCESS


# -- readdir cookies past the end ------------------------------------------------------------------------


@pytest.mark.parametrize("cookie", [5, 6, 7, 1000, 1 << 31, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_readdir_cookie_past_the_end(guest, cookie):  # noqa: F811
    errno, sub = guest.open(b"sub", oflags=int(O.DIRECTORY), rights=abi.RIGHTS_DIRECTORY)
    assert errno == Errno.SUCCESS
    buf, used = guest.alloc(256), guest.alloc(4)
    guest.memory.data[buf : buf + 256] = b"\xAA" * 256
    for fresh in (True, False):  # before any listing, and after one
        if not fresh:
            assert guest.call("fd_readdir", sub, buf, 256, 0, used) == Errno.SUCCESS
            assert guest.u32(used) > 0
            guest.memory.data[buf : buf + 256] = b"\xAA" * 256
        # sub holds ., .., deeper, file.txt, up, ok_up, dir_link: cookies from 7 on are past the end
        errno = guest.call("fd_readdir", sub, buf, 256, cookie, used)
        assert errno == Errno.SUCCESS
        if cookie >= 7:
            assert guest.u32(used) == 0 and guest.read(buf, 256) == b"\xAA" * 256
        else:
            assert 0 < guest.u32(used) <= 256


def test_readdir_buffer_at_the_end_of_memory(guest):  # noqa: F811
    size = len(guest.memory.data)
    used = guest.alloc(4)
    assert guest.call("fd_readdir", 3, size - 10, 10, 0, used) == Errno.SUCCESS and guest.u32(used) == 10
    assert guest.call("fd_readdir", 3, size - 10, 11, 0, used) == Errno.FAULT
    assert guest.call("fd_readdir", 3, size, 0, 0, used) == Errno.SUCCESS and guest.u32(used) == 0
    assert guest.call("fd_readdir", 3, 0, 16, 0, size - 3) == Errno.FAULT


# -- huge and overlapping iovec lists ----------------------------------------------------------------------


def _file(g: FakeGuest, name: bytes, data: bytes = b"") -> int:
    errno, fd = g.open(name, oflags=int(O.CREAT | O.TRUNC), rights=RW | int(R.FD_SEEK))
    assert errno == Errno.SUCCESS
    if data:
        assert g.write(fd, data)[0] == Errno.SUCCESS
        assert g.call("fd_seek", fd, 0, 0, g.alloc(8)) == Errno.SUCCESS
    return fd


def test_too_many_iovecs_are_refused_at_once(guest, tree):  # noqa: F811
    fd = _file(guest, b"io.txt")
    table = guest.alloc(16)
    out = guest.alloc(4)
    for count in (abi.IOV_MAX + 1, 1 << 20, 0x7FFFFFFF, 0xFFFFFFFF):
        started = time.monotonic()
        for call in ("fd_write", "fd_read"):
            assert guest.call(call, fd, table, count, out) == Errno.INVAL, (call, count)
        assert guest.call("fd_pwrite", fd, table, count, 0, out) == Errno.INVAL
        assert time.monotonic() - started < 1.0  # refused, not walked
    assert (tree / "sandbox" / "io.txt").read_bytes() == b""


def test_overlapping_iovecs(guest, tree):  # noqa: F811
    data = bytes(range(256)) * 16  # 4 KiB
    buf, _ = guest.put(data)
    fd = _file(guest, b"io.txt")
    # IOV_MAX iovecs, all over the same 4 KiB, in shifting windows
    iovs, count = guest.iovecs([(buf + (i % 64), 4096 - (i % 64)) for i in range(abi.IOV_MAX)])
    out = guest.alloc(4)
    assert guest.call("fd_write", fd, iovs, count, out) == Errno.SUCCESS
    expected = b"".join(data[i % 64 :] for i in range(abi.IOV_MAX))
    assert guest.u32(out) == len(expected)
    assert (tree / "sandbox" / "io.txt").read_bytes() == expected
    # read back through overlapping iovecs, the last one over the iovec table itself
    assert guest.call("fd_seek", fd, 0, 0, guest.alloc(8)) == Errno.SUCCESS
    target, table = guest.alloc(96), guest.alloc(32)
    layout = [(target, 64), (target + 32, 64), (target, 16), (table, 32)]
    for i, (ptr, length) in enumerate(layout):
        guest.memory.data[table + 8 * i : table + 8 * i + 8] = ptr.to_bytes(4, "little") + length.to_bytes(4, "little")
    assert guest.call("fd_read", fd, table, len(layout), out) == Errno.SUCCESS
    assert guest.u32(out) == 64 + 64 + 16 + 32
    stream = expected[:176]
    want = bytearray(96)
    want[0:64] = stream[0:64]
    want[32:96] = stream[64:128]
    want[0:16] = stream[128:144]  # later iovecs overwrite earlier ones, in order
    assert guest.read(target, 96) == bytes(want)
    assert guest.read(table, 32) == stream[144:176]


def test_huge_total_iovec_length(tree):  # noqa: F811
    """IOV_MAX iovecs each naming all of a 4 MiB memory: 4 GiB in one call,
    more than nwritten's u32 and the kernel's per-call limit."""
    with open(os.devnull, "wb") as sink:
        config = wasi.WasiConfig(stdout=sink)
        with FakeGuest(config, memory_size=4 << 20) as g:
            memory_size = len(g.memory.data)
            iovs, count = g.iovecs([(0, memory_size)] * abi.IOV_MAX)
            out = g.alloc(4)
            errno = g.call("fd_write", 1, iovs, count, out)
            assert errno == Errno.SUCCESS
            assert 0 < g.u32(out) <= min(memory_size * abi.IOV_MAX, 0xFFFFFFFF)


# -- pointers at the very end of memory -------------------------------------------------------------------


class _RealMemory:
    """An ``asyncwasm.Memory`` with FakeMemory's ``data`` (for the helpers)."""

    def __init__(self, pages: int) -> None:
        import asyncwasm

        self.memory = asyncwasm.Memory(asyncwasm.MemoryType(pages, pages + 1))
        self.data = self.memory.view()

    def view(self) -> memoryview:
        return self.memory.view()


@pytest.fixture
def edge(tree):  # noqa: F811
    """A guest on a real 1-page asyncwasm.Memory (FAULT comes from its true size)."""
    config = wasi.WasiConfig(preopens=[(str(tree / "sandbox"), "/sandbox", False)], argv=["prog", "x"],
                             env={"A": "1"})
    g = FakeGuest(config, memory_size=16)
    g.memory = _RealMemory(1)
    g.ctx.bind(g.memory)
    with g:
        yield g


#: (function, args before the out pointer, out size): calls whose last
#: argument is an output pointer.
OUTPUTS = [
    ("fd_fdstat_get", (3,), 24),
    ("fd_filestat_get", (3,), 64),
    ("fd_prestat_get", (3,), 8),
    ("clock_time_get", (1, 1), 8),
    ("clock_res_get", (1,), 8),
    ("args_sizes_get", (None,), 4),
    ("environ_sizes_get", (None,), 4),
    ("path_filestat_get", (3, 0, "path"), 64),
]


@pytest.mark.parametrize("name, before, size", OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_output_pointers_at_the_end_of_memory(edge, name, before, size):
    end = len(edge.memory.view())
    scratch = edge.alloc(8)

    def call(ptr: int) -> int:
        args: list[int] = []
        for a in before:
            if a is None:  # a first output of the same call, kept in bounds
                args.append(scratch)
            elif a == "path":
                args += edge.put(b"sub")
            else:
                args.append(a)
        return edge.call(name, *args, ptr)

    assert call(end - size) == Errno.SUCCESS  # exactly fits
    tail = bytes(edge.memory.view()[end - size :])
    for ptr in (end - size + 1, end - 1, end, 0xFFFFFFFF, 0xFFFFFFFF - size + 2):
        assert call(ptr) == Errno.FAULT, ptr
    assert bytes(edge.memory.view()[end - size :]) == tail  # no partial write


def test_buffers_at_the_end_of_memory(edge, tree):
    end = len(edge.memory.view())
    assert edge.call("random_get", end - 16, 16) == Errno.SUCCESS
    assert edge.call("random_get", end - 16, 17) == Errno.FAULT
    assert edge.call("random_get", end, 0) == Errno.SUCCESS
    assert edge.call("random_get", 0xFFFFFFFF, 2) == Errno.FAULT
    # args_get: the strings "prog\0x\0" (7 bytes) end exactly at the end, then one byte too far
    assert edge.call("args_get", 0, end - 7) == Errno.SUCCESS and bytes(edge.memory.view()[end - 7 :]) == b"prog\0x\0"
    assert edge.call("args_get", 0, end - 6) == Errno.FAULT
    assert edge.call("args_get", end - 7, 0) == Errno.FAULT  # two pointers need 8 bytes
    # fd_write: iovec table and buffer both at the very end
    fd = _file(edge, b"end.txt")
    edge.memory.view()[end - 1] = ord("Z")
    table = end - 16
    edge.memory.view()[table : table + 8] = (end - 1).to_bytes(4, "little") + (1).to_bytes(4, "little")
    out = edge.alloc(4)
    assert edge.call("fd_write", fd, table, 1, out) == Errno.SUCCESS and edge.u32(out) == 1
    edge.memory.view()[table : table + 8] = (end - 1).to_bytes(4, "little") + (2).to_bytes(4, "little")
    assert edge.call("fd_write", fd, table, 1, out) == Errno.FAULT
    assert edge.call("fd_write", fd, end - 4, 1, out) == Errno.FAULT  # the iovec itself is cut
    assert edge.call("fd_write", fd, table, 1, end - 3) == Errno.FAULT  # nothing written when nwritten is out
    # path_open: an out-of-range fd pointer creates nothing and leaks no fd
    before = len(edge.ctx.fds)
    path, length = edge.put(b"never.txt")
    assert edge.call("path_open", 3, 0, path, length, int(O.CREAT), RW, RW, 0, end - 3) == Errno.FAULT
    assert edge.call("path_open", 3, 0, end - 2, 3, int(O.CREAT), RW, RW, 0, edge.alloc(4)) == Errno.FAULT
    assert len(edge.ctx.fds) == before
    assert (tree / "sandbox" / "end.txt").read_bytes() == b"Z"
    assert not (tree / "sandbox" / "never.txt").exists()


def test_pointers_at_the_end_of_memory_from_wasm(tree):  # noqa: F811
    """The same through the engine: a Wasm guest writing from the last bytes
    of its memory, and failing one byte further."""
    import asyncwasm

    module = asyncwasm.Module(wat("""
      (module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "write") (param $buf i32) (param $len i32) (param $iov i32) (param $out i32) (result i32)
          (i32.store (local.get $iov) (local.get $buf))
          (i32.store offset=4 (local.get $iov) (local.get $len))
          (call $fd_write (i32.const 1) (local.get $iov) (i32.const 1) (local.get $out))))"""))
    out_path = tree / "sandbox" / "stdout.bin"
    with open(out_path, "wb") as sink:
        linker = asyncwasm.Linker()
        linker.define_wasi(asyncwasm.WasiConfig(stdout=sink))
        with linker.instantiate(module) as instance:
            write = instance.exports["write"]
            memory = instance.exports["memory"]
            memory.write(65535, b"!")
            memory.write(100, b"?")
            assert write(65535, 1, 65500, 65400) == Errno.SUCCESS  # the buffer is the last byte
            assert write(100, 1, 65528, 65400) == Errno.SUCCESS  # the iovec is the last 8 bytes
            assert write(100, 1, 65500, 65532) == Errno.SUCCESS  # nwritten is the last 4 bytes
            assert memory.read(65532, 4) == (1).to_bytes(4, "little")
            assert write(65535, 2, 65500, 65400) == Errno.FAULT
            assert write(65535, 1, 65500, 65533) == Errno.FAULT
            assert write(0xFFFFFFFF, 1, 65500, 65400) == Errno.FAULT  # wraps in 32 bits, not in the host
            with pytest.raises(asyncwasm.Trap, match="out of bounds memory access"):
                write(0, 1, 65529, 0)  # the guest's own store traps first
    assert out_path.read_bytes() == b"!??"


async def test_accept_with_a_bad_fd_pointer_loses_no_connection():
    with _guest() as g:
        client = await _connect(_port(g))
        async with client:
            end = len(g.memory.data)
            for bad in (end - 3, end, 0xFFFFFFFF):
                assert g.call("sock_accept", 3, 0, bad) == Errno.FAULT
            await client.send_all(b"still here")
            conn = await _accepted(g)
            result, where = g.recv(conn, 16)
            assert await _finish(result) == Errno.SUCCESS and g.received(where)[0] == b"still here"


# -- poll_oneoff with 10,000 subscriptions -------------------------------------------------------------------

MANY = 10_000


def _poll_many(g: FakeGuest, subs: bytes) -> tuple:
    n = len(subs) // 48
    sub_ptr = g.alloc(len(subs))
    g.memory.data[sub_ptr : sub_ptr + len(subs)] = subs
    out, nevents = g.alloc(32 * n), g.alloc(4)
    return g.call("poll_oneoff", sub_ptr, out, n, nevents), out, nevents


def _event_list(g: FakeGuest, out: int, nevents: int) -> list[tuple]:
    return [abi.EVENT.unpack(g.read(out + 32 * i, 32)) for i in range(g.u32(nevents))]


def test_ten_thousand_ready_subscriptions(tree):  # noqa: F811
    config = wasi.WasiConfig(preopens=[(str(tree / "sandbox"), "/sandbox", False)])
    with FakeGuest(config, memory_size=4 << 20) as g:
        errno, fd = g.open(b"sub/file.txt", rights=READ | int(R.POLL_FD_READWRITE))
        assert errno == Errno.SUCCESS
        subs = b"".join(_clock_sub(i, 0) if i % 2 else _fd_sub(i, fd) for i in range(MANY))
        started = time.monotonic()
        result, out, nevents = _poll_many(g, subs)
        assert result == Errno.SUCCESS and time.monotonic() - started < 5
        events = _event_list(g, out, nevents)
        assert len(events) == MANY and sorted(e[0] for e in events) == list(range(MANY))
        assert all(e[1] == Errno.SUCCESS for e in events)
        # unknown fds: one error per subscription, still one call
        result, out, nevents = _poll_many(g, b"".join(_fd_sub(i, 4000 + i) for i in range(MANY)))
        events = _event_list(g, out, nevents)
        assert result == Errno.SUCCESS and len(events) == MANY and {e[1] for e in events} == {Errno.BADF}


async def test_ten_thousand_waiting_subscriptions_on_one_socket():
    """9,999 subscriptions on one idle connection and one short clock: the
    call waits for the clock (one trio wait, not 9,999) and reports it alone."""
    async with trio.open_nursery() as nursery:
        listener = trio.socket.socket()
        await listener.bind(LOOPBACK)
        listener.listen()
        with listener, _wasmedge() as g:
            fd = _open(g)
            pending = g.ext("sock_connect", 3)(fd, _address(g, "127.0.0.1"), listener.getsockname()[1])
            server, _ = await listener.accept()
            assert await _finish(pending) == Errno.SUCCESS
            with server:
                subs = b"".join(_fd_sub(i, fd) for i in range(MANY - 1)) + _clock_sub(MANY, 20_000_000)
                started = time.monotonic()
                result, out, nevents = _poll_many(g, subs)
                assert await _finish(result) == Errno.SUCCESS
                assert time.monotonic() - started < TIMEOUT
                assert [e[0] for e in _event_list(g, out, nevents)] == [MANY]
                # now data arrives: every read subscription on the fd is ready
                await server.send(b"x")
                result, out, nevents = _poll_many(g, subs)
                events = _event_list(g, out, nevents)
                assert await _finish(result) == Errno.SUCCESS
                assert len([e for e in _event_list(g, out, nevents) if e[0] < MANY]) == MANY - 1
        nursery.cancel_scope.cancel()


def test_subscription_counts_beyond_memory_are_fault(tree):  # noqa: F811
    with FakeGuest(wasi.WasiConfig(), memory_size=1 << 20) as g:
        out = g.alloc(4)
        for count in (1 << 16, 0x7FFFFFFF, 0xFFFFFFFF):
            started = time.monotonic()
            assert g.call("poll_oneoff", 0, 0, count, out) == Errno.FAULT
            assert time.monotonic() - started < 1.0
        assert g.call("poll_oneoff", 0, 0, 0, out) == Errno.INVAL


# -- network policy bypass ----------------------------------------------------------------------------------


@pytest.fixture
async def loopback_server():
    """A listener on 127.0.0.1 that records whether anybody connected."""
    listener = trio.socket.socket()
    await listener.bind(LOOPBACK)
    listener.listen()
    with listener:
        yield listener


async def _nobody_connected(listener) -> bool:
    with trio.move_on_after(0.05):
        conn, _ = await listener.accept()
        conn.close()
        return False
    return True


async def test_ipv4_mapped_ipv6_does_not_reach_around_ipv4_rules(loopback_server):
    port = loopback_server.getsockname()[1]
    policy = NetPolicy(connect=["[::/0]", "10.0.0.0/8"])  # all of IPv6, no IPv4 loopback
    with _wasmedge(policy) as g:
        v6 = _open(g, AF.INET6)
        connect = g.ext("sock_connect", 3)
        for mapped in ("::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:127.0.0.2"):
            assert await _finish(connect(v6, _address(g, mapped), port)) == Errno.ACCES, mapped
        storage = g.ext("sock_connect_v2", 3)
        assert await _finish(storage(v6, _address(g, "::ffff:127.0.0.1"), port)) == Errno.ACCES
    assert await _nobody_connected(loopback_server)


async def test_unspecified_addresses_are_judged_as_loopback(loopback_server):
    """connect(0.0.0.0) and connect(::) reach this host: a rule for the
    unspecified address is not a way to reach loopback without a loopback rule."""
    port = loopback_server.getsockname()[1]
    sneaky = NetPolicy(connect=["0.0.0.0", "[::]", "10.0.0.0/8"])
    with _wasmedge(sneaky) as g:
        v4, v6 = _open(g), _open(g, AF.INET6)
        connect = g.ext("sock_connect", 3)
        assert await _finish(connect(v4, _address(g, "0.0.0.0"), port)) == Errno.ACCES
        assert await _finish(connect(v6, _address(g, "::"), port)) == Errno.ACCES
        assert await _finish(connect(v6, _address(g, "::ffff:0.0.0.0"), port)) == Errno.ACCES
    assert await _nobody_connected(loopback_server)
    with _wasmedge(NetPolicy(connect=[f"127.0.0.1:{port}"])) as g:  # allowed where it really goes
        assert await _finish(g.ext("sock_connect", 3)(_open(g), _address(g, "0.0.0.0"), port)) == Errno.SUCCESS
    assert not await _nobody_connected(loopback_server)


def test_listening_on_a_wildcard_needs_a_wildcard_rule():
    loopback_only = NetPolicy(listen=["127.0.0.1:*", "[::1]:*"])
    v6_wildcard = NetPolicy(listen=["[::]:*"])
    with _wasmedge(loopback_only) as g:
        assert _bind(g, _open(g), "0.0.0.0", 0) == Errno.ACCES
        assert _bind(g, _open(g, AF.INET6), "::", 0) == Errno.ACCES
        assert _bind(g, _open(g, AF.INET6), "::ffff:0.0.0.0", 0) == Errno.ACCES
        assert g.ext("sock_listen", 2)(_open(g), 5) == Errno.ACCES  # unbound: the kernel would pick 0.0.0.0
    with _wasmedge(v6_wildcard) as g:
        # a guest's IPv6 socket is dual-stack: [::] also listens on every IPv4 address
        assert _bind(g, _open(g, AF.INET6), "::", 0) == Errno.ACCES
    with _wasmedge(NetPolicy(listen=["[::]:*", "0.0.0.0:*"])) as g:
        assert _bind(g, _open(g, AF.INET6), "::", 0) == Errno.SUCCESS


async def test_host_names_resolving_to_loopback_do_not_open_loopback(loopback_server):
    port = loopback_server.getsockname()[1]
    policy = NetPolicy(connect=["10.0.0.0/8", "[fd00::/8]"], dns=True)  # may resolve, may not reach loopback
    with _wasmedge(policy) as g:
        result, nodes, res_len = _getaddrinfo(g, b"localhost", str(port).encode(), family=AF.UNSPEC)
        assert await _finish(result) == Errno.SUCCESS
        connect = g.ext("sock_connect", 3)
        found = 0
        for info, sockaddr, data in nodes[: g.u32(res_len)]:
            family = g.read(sockaddr, 1)[0]
            raw = g.read(data, 26)
            ip = socket.inet_ntop(socket.AF_INET, raw[2:6]) if family == AF.INET4 else socket.inet_ntop(
                socket.AF_INET6, raw[6:22])
            fd = _open(g, AF.INET4 if family == AF.INET4 else AF.INET6)
            assert await _finish(connect(fd, _address(g, ip), port)) == Errno.ACCES, ip
            found += 1
        assert found
        # numeric spellings of loopback that inet_aton accepts are names to the host: they need dns
    with _wasmedge(NetPolicy(connect=["10.0.0.0/8"])) as g:
        for spelled in (b"127.1", b"2130706433", b"0x7f000001", b"localhost", b"127.0.0.1.nip.io"):
            result, _, _ = _getaddrinfo(g, spelled, b"80")
            assert result == Errno.ACCES, spelled
    assert await _nobody_connected(loopback_server)
