"""Runs one netmods module on asyncwasm, for the blocking-socket tests.

    host = AsyncHost(wasm_path, args=["prog"], env={"A": "1"}, listener=sock)
    thread = host.start()          # trio.run in a background thread; or host.run() here
    ...                            # talk to it with ordinary blocking sockets
    host.stop(); thread.join()

This is asyncwasm's real hosting path (``Linker.define_wasi``,
``instantiate_async``, ``call_async``), driven by ``trio.run`` on a thread
of its own so the test's clients can block. ``stop()`` cancels the guest
through a trio cancel scope (the guest is normally blocked in
``sock_accept`` or ``sock_recv`` then), which closes its sockets.

The guest may connect to 127.0.0.0/8 and resolve names (the http_client
tests); anything else is refused by the network policy (ACCES).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import trio

import asyncwasm
from asyncwasm.wasi import WasiConfig
from asyncwasm.wasi.netpolicy import NetPolicy

_MODULES: dict[str, asyncwasm.Module] = {}
LOOPBACK_POLICY = NetPolicy(connect=["127.0.0.0/8"], dns=True)


def compiled(path: Path | str) -> asyncwasm.Module:
    """The module at ``path``, compiled once per test session."""
    key = str(path)
    if key not in _MODULES:
        _MODULES[key] = asyncwasm.Module.from_file(key)
    return _MODULES[key]


class AsyncHost:
    def __init__(self, wasm: Path | str, args: Optional[list[str]] = None, env: Optional[dict[str, str]] = None,
                 listener: object = None, net_policy: NetPolicy = LOOPBACK_POLICY) -> None:
        self.module = compiled(wasm)
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.calls: dict[str, int] = {}
        self.exit_code: Optional[int] = None
        self.error: Optional[BaseException] = None
        self.config = WasiConfig(argv=args or [Path(wasm).stem], env=env or {},
                                 listeners=[listener] if listener is not None else [],
                                 stdout=self.stdout, stderr=self.stderr, net_policy=net_policy,
                                 trace=self._count)
        self._token: Optional[trio.lowlevel.TrioToken] = None
        self._scope: Optional[trio.CancelScope] = None
        self._ready = threading.Event()

    def _count(self, name: str, args: dict, errno: Optional[int]) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def main(self) -> Optional[int]:
        """Run ``_start``; its exit code (0 when it returns), None if stopped."""
        linker = asyncwasm.Linker()
        linker.define_wasi(self.config)
        with trio.CancelScope() as self._scope:
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            instance = await linker.instantiate_async(self.module)
            try:
                await instance.exports["_start"].call_async()
                self.exit_code = 0
            except asyncwasm.Exit as exc:
                self.exit_code = exc.code
            finally:
                instance.close()
        return self.exit_code

    def run(self) -> Optional[int]:
        try:
            return trio.run(self.main)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            return None
        finally:
            self._ready.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        self._ready.wait(10)
        return thread

    def stop(self) -> None:
        """Cancel the guest (from any thread); harmless once it ended."""
        token, scope = self._token, self._scope
        if token is None or scope is None:
            return
        try:
            trio.from_thread.run_sync(scope.cancel, trio_token=token)
        except trio.RunFinishedError:
            pass
