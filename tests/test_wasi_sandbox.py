"""The WASI file sandbox: hostile paths, symlinks, links and rights.

Every test runs against a real directory tree in tmp_path. The host files
outside the preopen are snapshotted before and compared after each test, so
a test fails if anything outside changed, not only if an errno is wrong.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
Errno = wasi.Errno
R = wasi.Rights
sandbox_mod = wasi.sandbox

READ = int(R.FD_READ | R.FD_SEEK | R.FD_TELL | R.FD_FILESTAT_GET)
FOLLOW = 1


def _snapshot(root: pathlib.Path, skip: pathlib.Path) -> dict:
    """Everything under ``root`` except ``skip``: path -> (kind, content, nlink, mtime)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = pathlib.Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if path == skip:
                continue
            st = path.lstat()
            if path.is_symlink():
                state[str(path)] = ("link", os.readlink(path), st.st_nlink, st.st_mtime_ns)
            elif path.is_dir():
                state[str(path)] = ("dir", None, st.st_nlink, st.st_mtime_ns)
            else:
                state[str(path)] = ("file", path.read_bytes(), st.st_nlink, st.st_mtime_ns)
    return state


@pytest.fixture
def tree(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"TOPSECRET")
    (tmp_path / "secret.txt").write_bytes(b"ROOTSECRET")
    box = tmp_path / "sandbox"
    (box / "sub" / "deeper").mkdir(parents=True)
    (box / "sub" / "file.txt").write_bytes(b"inside")
    os.symlink("../outside", box / "link_out_rel")
    os.symlink(str(outside / "secret.txt"), box / "link_out_abs")
    os.symlink("../outside/created.txt", box / "dangling_out")
    os.symlink("sub/file.txt", box / "link_in")
    os.symlink("chain2", box / "chain1")
    os.symlink("chain3", box / "chain2")
    os.symlink("sub/file.txt", box / "chain3")
    os.symlink("loop_b", box / "loop_a")
    os.symlink("loop_a", box / "loop_b")
    os.symlink("self", box / "self")
    os.symlink("../../outside", box / "sub" / "up")
    os.symlink("../sub/file.txt", box / "sub" / "ok_up")
    os.symlink("deeper/", box / "sub" / "dir_link")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "readme.txt").write_bytes(b"read me")
    before = _snapshot(tmp_path, box)
    yield tmp_path
    assert _snapshot(tmp_path, box) == before, "a host file outside the sandbox changed"


@pytest.fixture
def guest(tree):
    config = wasi.WasiConfig(preopens=[(str(tree / "sandbox"), "/sandbox", False), (str(tree / "ro"), "/ro", True)])
    with FakeGuest(config) as g:
        yield g


def _read_all(guest, fd):
    errno, data = guest.read_fd(fd, 100)
    assert errno == Errno.SUCCESS
    return data


# -- pure parts -----------------------------------------------------------------


def test_split_path():
    assert sandbox_mod.split_path(b"a//b/./c/") == ([b"a", b"", b"b", b".", b"c"], True)
    assert sandbox_mod.split_path(b"file") == ([b"file"], False)
    for bad, errno in [(b"", Errno.NOENT), (b"/etc", Errno.NOTCAPABLE), (b"a\0b", Errno.INVAL)]:
        with pytest.raises(wasi.abi.WasiError) as info:
            sandbox_mod.split_path(bad)
        assert info.value.errno == errno


# -- opening -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        b"sub/file.txt",
        b"./sub//file.txt",
        b"sub/../sub/file.txt",
        b"sub/deeper/../../sub/file.txt",
        b"link_in",
        b"chain1",
        b"sub/ok_up",
        b"sub/dir_link/../file.txt",
    ],
)
def test_paths_inside_resolve(guest, path):
    errno, fd = guest.open(path, rights=READ)
    assert errno == Errno.SUCCESS
    assert _read_all(guest, fd) == b"inside"


@pytest.mark.parametrize(
    "path, errno",
    [
        (b"../secret.txt", Errno.NOTCAPABLE),
        (b"..", Errno.NOTCAPABLE),
        (b"sub/../../secret.txt", Errno.NOTCAPABLE),
        (b"sub/deeper/../../../outside/secret.txt", Errno.NOTCAPABLE),
        (b"/etc/passwd", Errno.NOTCAPABLE),
        (b"link_out_rel/secret.txt", Errno.NOTCAPABLE),
        (b"link_out_abs", Errno.NOTCAPABLE),
        (b"sub/up/secret.txt", Errno.NOTCAPABLE),
        (b"loop_a", Errno.LOOP),
        (b"self", Errno.LOOP),
        (b"loop_a/x", Errno.LOOP),
        (b"sub/file.txt/x", Errno.NOTDIR),
        (b"missing", Errno.NOENT),
        (b"", Errno.NOENT),
        (b"sub\0file.txt", Errno.INVAL),
    ],
)
def test_hostile_paths_are_denied(guest, path, errno):
    assert guest.open(path, rights=READ) == (errno, None)


def test_nofollow_open_of_a_symlink_is_loop(guest):
    assert guest.open(b"link_in", rights=READ, follow=False) == (Errno.LOOP, None)
    # intermediate symlinks are always followed (inside the sandbox)
    errno, _ = guest.open(b"sub/dir_link", rights=READ, follow=False)
    assert errno == Errno.LOOP
    errno, _ = guest.open(b"sub/dir_link/", rights=READ, follow=False)
    assert errno == Errno.SUCCESS


def test_symlink_expansion_budget(guest, tree):
    box = tree / "sandbox"
    for i in range(sandbox_mod.MAX_SYMLINKS + 1):
        os.symlink(f"c{i + 1}", box / f"c{i}")
    (box / f"c{sandbox_mod.MAX_SYMLINKS + 1}").write_bytes(b"end")
    assert guest.open(b"c1", rights=READ)[0] == Errno.SUCCESS  # 40 expansions
    assert guest.open(b"c0", rights=READ)[0] == Errno.LOOP  # 41


def test_creating_through_escapes_creates_nothing(guest, tree):
    creat = int(wasi.abi.Oflags.CREAT)
    rights = READ | int(R.FD_WRITE)
    for path in (b"../evil.txt", b"link_out_rel/evil.txt", b"dangling_out", b"sub/up/evil.txt"):
        assert guest.open(path, oflags=creat, rights=rights) == (Errno.NOTCAPABLE, None), path
    assert not (tree / "evil.txt").exists()
    assert not (tree / "outside" / "created.txt").exists()
    assert not (tree / "outside" / "evil.txt").exists()


def test_a_dangling_link_inside_is_followed_on_create(guest, tree):
    os.symlink("sub/new.txt", tree / "sandbox" / "to_new")
    errno, fd = guest.open(b"to_new", oflags=int(wasi.abi.Oflags.CREAT), rights=READ | int(R.FD_WRITE))
    assert errno == Errno.SUCCESS
    assert guest.write(fd, b"made")[0] == Errno.SUCCESS
    assert (tree / "sandbox" / "sub" / "new.txt").read_bytes() == b"made"


def test_opening_a_directory_for_writing_is_isdir(guest):
    assert guest.open(b"sub", rights=int(R.FD_WRITE)) == (Errno.ISDIR, None)
    directory = int(wasi.abi.Oflags.DIRECTORY)
    assert guest.open(b"sub", oflags=directory, rights=int(R.FD_WRITE))[0] == Errno.ISDIR
    assert guest.open(b"sub/file.txt", oflags=directory, rights=READ)[0] == Errno.NOTDIR


# -- other path operations ----------------------------------------------------------


def test_filestat_follow_and_nofollow(guest):
    out = guest.alloc(64)
    def stat(path, flags):
        ptr, length = guest.put(path)
        errno = guest.call("path_filestat_get", 3, flags, ptr, length, out)
        return errno, wasi.abi.FILESTAT.unpack(guest.read(out, 64))

    errno, st = stat(b"link_out_abs", 0)
    assert errno == Errno.SUCCESS and st[2] == wasi.Filetype.SYMBOLIC_LINK
    assert stat(b"link_out_abs", FOLLOW)[0] == Errno.NOTCAPABLE
    errno, st = stat(b"link_in", FOLLOW)
    assert errno == Errno.SUCCESS and st[2] == wasi.Filetype.REGULAR_FILE and st[4] == len(b"inside")
    assert stat(b"../outside/secret.txt", 0)[0] == Errno.NOTCAPABLE


def test_rename_out_of_the_preopen_is_denied(guest, tree):
    def rename(old, new, new_fd=3):
        o, ol = guest.put(old)
        n, nl = guest.put(new)
        return guest.call("path_rename", 3, o, ol, new_fd, n, nl)

    assert rename(b"sub/file.txt", b"../stolen.txt") == Errno.NOTCAPABLE
    assert rename(b"sub/file.txt", b"link_out_rel/stolen.txt") == Errno.NOTCAPABLE
    assert rename(b"../secret.txt", b"mine.txt") == Errno.NOTCAPABLE
    assert rename(b"link_out_rel/secret.txt", b"mine.txt") == Errno.NOTCAPABLE
    assert (tree / "sandbox" / "sub" / "file.txt").read_bytes() == b"inside"
    # a symlink itself may be renamed (it moves, it is not followed)
    assert rename(b"link_out_abs", b"sub/moved_link") == Errno.SUCCESS
    assert os.readlink(tree / "sandbox" / "sub" / "moved_link") == str(tree / "outside" / "secret.txt")


def test_hard_links_cannot_reach_outside(guest, tree):
    def link(old, new, flags=0):
        o, ol = guest.put(old)
        n, nl = guest.put(new)
        return guest.call("path_link", 3, flags, o, ol, 3, n, nl)

    assert link(b"sub/file.txt", b"../hard") == Errno.NOTCAPABLE
    assert link(b"link_out_rel/secret.txt", b"stolen") == Errno.NOTCAPABLE
    assert link(b"link_out_abs", b"stolen", FOLLOW) == Errno.NOTCAPABLE
    assert link(b"../secret.txt", b"stolen") == Errno.NOTCAPABLE
    assert (tree / "outside" / "secret.txt").stat().st_nlink == 1
    # without FOLLOW the link itself is linked: still a symlink, still denied when used
    assert link(b"link_out_abs", b"link_copy") == Errno.SUCCESS
    assert (tree / "sandbox" / "link_copy").is_symlink()
    assert guest.open(b"link_copy", rights=READ) == (Errno.NOTCAPABLE, None)
    assert link(b"sub/file.txt", b"sub/hard") == Errno.SUCCESS
    assert (tree / "sandbox" / "sub" / "file.txt").stat().st_nlink == 2


def test_mutations_through_escapes_are_denied(guest):
    assert guest.path("path_create_directory", 3, b"../newdir") == Errno.NOTCAPABLE
    assert guest.path("path_create_directory", 3, b"link_out_rel/newdir") == Errno.NOTCAPABLE
    assert guest.path("path_unlink_file", 3, b"link_out_rel/secret.txt") == Errno.NOTCAPABLE
    assert guest.path("path_unlink_file", 3, b"../secret.txt") == Errno.NOTCAPABLE
    assert guest.path("path_remove_directory", 3, b"../outside") == Errno.NOTCAPABLE
    assert guest.path("path_remove_directory", 3, b"sub/up/..") == Errno.NOTCAPABLE

    def set_times(path, flags):
        ptr, length = guest.put(path)
        return guest.call("path_filestat_set_times", 3, flags, ptr, length, 1, 1, int(wasi.abi.Fstflags.MTIM))

    assert set_times(b"link_out_abs", FOLLOW) == Errno.NOTCAPABLE
    assert set_times(b"link_out_rel/secret.txt", 0) == Errno.NOTCAPABLE


def test_symlink_contents_must_be_relative(guest, tree):
    def symlink(contents, where):
        c, cl = guest.put(contents)
        w, wl = guest.put(where)
        return guest.call("path_symlink", c, cl, 3, w, wl)

    assert symlink(b"/etc/passwd", b"abs_link") == Errno.NOTCAPABLE
    assert symlink(b"whatever", b"../outside/planted") == Errno.NOTCAPABLE
    assert symlink(b"", b"empty") == Errno.NOENT
    assert symlink(b"../outside", b"rel_out") == Errno.SUCCESS  # harmless: never followed outside
    assert guest.open(b"rel_out/secret.txt", rights=READ) == (Errno.NOTCAPABLE, None)


def test_readlink_truncates_and_checks_kind(guest):
    buf, used = guest.alloc(64), guest.alloc(4)
    assert guest.path("path_readlink", 3, b"link_in", buf, 4, used) == Errno.SUCCESS
    assert guest.u32(used) == 4 and guest.read(buf, 4) == b"sub/"
    assert guest.path("path_readlink", 3, b"sub/file.txt", buf, 64, used) == Errno.INVAL
    assert guest.path("path_readlink", 3, b"../outside", buf, 64, used) == Errno.NOTCAPABLE


# -- rights ----------------------------------------------------------------------------


def test_read_only_preopen(guest, tree):
    ro = 4
    errno, (_, _, base, inheriting) = guest.fdstat(ro)
    assert errno == Errno.SUCCESS
    assert not base & (R.PATH_CREATE_FILE | R.PATH_UNLINK_FILE | R.PATH_RENAME_SOURCE | R.PATH_LINK_SOURCE)
    assert not inheriting & R.FD_WRITE
    assert guest.open(b"readme.txt", dirfd=ro, rights=READ | int(R.FD_WRITE)) == (Errno.NOTCAPABLE, None)
    assert guest.open(b"new.txt", dirfd=ro, oflags=1, rights=READ) == (Errno.NOTCAPABLE, None)
    assert guest.open(b"readme.txt", dirfd=ro, oflags=8, rights=READ) == (Errno.NOTCAPABLE, None)
    assert guest.path("path_create_directory", ro, b"d") == Errno.NOTCAPABLE
    assert guest.path("path_unlink_file", ro, b"readme.txt") == Errno.NOTCAPABLE
    o, ol = guest.put(b"readme.txt")
    n, nl = guest.put(b"taken.txt")
    assert guest.call("path_rename", ro, o, ol, 3, n, nl) == Errno.NOTCAPABLE
    assert guest.call("path_link", ro, 0, o, ol, 3, n, nl) == Errno.NOTCAPABLE
    errno, fd = guest.open(b"readme.txt", dirfd=ro, rights=READ)
    assert errno == Errno.SUCCESS and _read_all(guest, fd) == b"read me"
    assert guest.write(fd, b"x")[0] == Errno.NOTCAPABLE
    assert guest.call("fd_filestat_set_size", fd, 0) == Errno.NOTCAPABLE
    assert (tree / "ro" / "readme.txt").read_bytes() == b"read me"
    assert sorted(os.listdir(tree / "ro")) == ["readme.txt"]


def test_rights_can_only_be_dropped(guest):
    errno, fd = guest.open(b"sub/file.txt", rights=READ | int(R.FD_WRITE))
    assert errno == Errno.SUCCESS
    _, (_, _, base, _) = guest.fdstat(fd)
    assert base & R.FD_WRITE
    assert guest.call("fd_fdstat_set_rights", fd, base & ~R.FD_WRITE, 0) == Errno.SUCCESS
    assert guest.write(fd, b"x") == (Errno.NOTCAPABLE, 0)
    assert guest.call("fd_fdstat_set_rights", fd, base, 0) == Errno.NOTCAPABLE  # cannot add back
    assert guest.call("fd_fdstat_set_rights", fd, int(R.FD_READ), 0) == Errno.SUCCESS
    seek_out = guest.alloc(8)
    assert guest.call("fd_seek", fd, 1, 0, seek_out) == Errno.NOTCAPABLE
    # a preopen without PATH_OPEN opens nothing
    _, (_, _, dir_base, dir_inheriting) = guest.fdstat(3)
    assert guest.call("fd_fdstat_set_rights", 3, dir_base & ~R.PATH_OPEN, dir_inheriting) == Errno.SUCCESS
    assert guest.open(b"sub/file.txt", rights=READ) == (Errno.NOTCAPABLE, None)


def test_inheriting_rights_bound_what_a_subdirectory_opens(guest):
    errno, sub = guest.open(b"sub", oflags=int(wasi.abi.Oflags.DIRECTORY), rights=wasi.abi.RIGHTS_DIRECTORY,
                            inheriting=READ)
    assert errno == Errno.SUCCESS
    assert guest.open(b"file.txt", dirfd=sub, rights=READ | int(R.FD_WRITE)) == (Errno.NOTCAPABLE, None)
    errno, fd = guest.open(b"file.txt", dirfd=sub, rights=READ)
    assert errno == Errno.SUCCESS and _read_all(guest, fd) == b"inside"
    # path calls on a regular file fd are NOTDIR
    assert guest.path("path_create_directory", fd, b"x") == Errno.NOTDIR


# -- symlinks swapped in while we resolve ------------------------------------------------


def test_directory_swapped_for_an_escaping_symlink_mid_walk(guest, tree, monkeypatch):
    """Between two steps of the walk, the host replaces directory ``sub`` with
    a symlink to the outside. The walker must not follow it."""
    box = tree / "sandbox"
    real_open = os.open
    swapped = []

    def swapping_open(path, flags, mode=0o777, *, dir_fd=None):
        if path == b"sub" and not swapped:
            os.rename(box / "sub", box / "sub.old")
            os.symlink(str(tree / "outside"), box / "sub")
            swapped.append(True)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(sandbox_mod.os, "open", swapping_open)
    assert guest.open(b"sub/secret.txt", rights=READ) == (Errno.NOTCAPABLE, None)
    assert swapped


def test_final_file_swapped_for_an_escaping_symlink(guest, tree, monkeypatch):
    """The final component turns into an absolute symlink right before the
    open: O_NOFOLLOW refuses it and the walker sees the absolute target."""
    box = tree / "sandbox"
    real_open = os.open

    def swapping_open(path, flags, mode=0o777, *, dir_fd=None):
        if path == b"file.txt" and not (box / "sub" / "file.txt").is_symlink():
            os.unlink(box / "sub" / "file.txt")
            os.symlink(str(tree / "outside" / "secret.txt"), box / "sub" / "file.txt")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(sandbox_mod.os, "open", swapping_open)
    assert guest.open(b"sub/file.txt", rights=READ, follow=True) == (Errno.NOTCAPABLE, None)
    assert guest.open(b"sub/file.txt", rights=READ, follow=False) == (Errno.LOOP, None)
