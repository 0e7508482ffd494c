"""An idle guest holds no host fd of its own (issue 11): inherited stdio is
borrowed, not duplicated, and a handoff listener borrows the host's
listening socket. Closing the guest's fds never closes the host's."""

from __future__ import annotations

import os

import pytest
import trio

from asyncwasm.serve.handoff import Handoff
from asyncwasm.wasi import WasiConfig, WasiContext
from asyncwasm.wasi.abi import Errno, Fdflags, Filetype, WasiError


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_inherited_stdio_and_a_handoff_listener_cost_no_fd():
    handoff = Handoff.bind(["127.0.0.1:0"])
    config = WasiConfig(stdin="inherit", stdout="inherit", stderr="inherit", listeners=[handoff])
    before = _open_fds()
    contexts = [WasiContext(config) for _ in range(50)]
    assert _open_fds() == before
    ctx = contexts[0]
    assert ctx.fds.get(1).fd == 1 and ctx.fds.get(2).fd == 2  # the host's own, shared
    assert ctx.fds.get(3).filetype == Filetype.SOCKET_STREAM
    assert ctx.listener_addresses() == {3: handoff.addresses()[0]}
    ctx.fds.close(1)  # the guest closes its stdout: the host's stays open
    ctx.fds.close(3)
    os.fstat(1)
    assert handoff.listener.fileno() >= 0
    for ctx in contexts:
        ctx.close()
    assert _open_fds() == before
    handoff.close()


def test_a_file_object_for_stdout_is_still_duplicated(tmp_path):
    with open(tmp_path / "out", "wb") as out:
        before = _open_fds()
        ctx = WasiContext(WasiConfig(stdout=out))
        assert _open_fds() == before + 1  # its owner may close it while the guest runs
        ctx.close()
        assert _open_fds() == before


async def test_a_handoff_listener_after_the_host_stopped_accepting():
    # A draining guest keeps polling its listener: it must stay a listener
    # that never has a connection, not become BADF.
    handoff = Handoff.bind(["127.0.0.1:0"])
    ctx = WasiContext(WasiConfig(listeners=[handoff]))
    entry = ctx.fds.get(3)
    handoff.stop_accepting()
    assert entry.poll_read() is None
    entry.fdflags = int(Fdflags.NONBLOCK)
    with pytest.raises(WasiError) as again:
        entry.accept()
    assert again.value.errno == Errno.AGAIN
    with trio.move_on_after(0.05) as scope:
        entry.fdflags = 0
        await entry.accept()  # a blocking guest just waits
    assert scope.cancelled_caught
    ctx.close()
    with pytest.raises(WasiError) as closed:
        entry.poll_read()
    assert closed.value.errno == Errno.BADF
    handoff.close()
