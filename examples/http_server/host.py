"""Host N instances of a Wasm HTTP server from one compiled Module, on trio.

    python examples/http_server/host.py --instances 16                  # N instances, one shared listener
    python examples/http_server/host.py --instances 4 --mode per-instance   # one listener (port) each
    python examples/http_server/host.py --module netmods/http_server_poll/http_server_poll.wasm --instances 1

Two ways to put N servers behind the network:

- ``shared`` (default): one listening socket for all. The host accepts and
  hands each connection to an instance that waits in ``sock_accept``
  (:class:`asyncwasm.serve.Handoff`, given to the guests as their
  pre-opened listener), so no two tasks ever wait on the same fd and a busy
  instance is never handed a connection.
- ``per-instance``: instance i gets its own listening socket (ports
  PORT, PORT+1, ...; all random with port 0), as separate processes would.

Every instance is instantiated from the same compiled ``Module`` (compiled
once; each instance has its own linear memory and WASI context) and runs
its ``_start`` in its own trio task: a guest blocked in ``sock_accept`` or
``sock_recv`` suspends only its own task. Ctrl-C stops everything (each
instance's sockets are closed when it is cancelled).

This is what ``asyncwasm serve`` does, minus restarts and graceful
shutdown (see asyncwasm/serve/server.py for those).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from pathlib import Path

import trio

import asyncwasm
from asyncwasm import Linker, Module, WasiConfig
from asyncwasm.run import open_listener
from asyncwasm.serve import Handoff

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = ROOT / "netmods" / "http_server" / "http_server.wasm"


async def run_instance(linker: Linker, module: Module, index: int) -> None:
    """One instance: instantiate, run ``_start`` until it ends or is cancelled."""
    instance = await linker.instantiate_async(module)
    with instance:  # closes its WASI context: listener copy, connections
        try:
            await instance.exports["_start"].call_async()
            print(f"instance {index} returned", file=sys.stderr)
        except asyncwasm.Exit as exc:
            print(f"instance {index} exited with status {exc.code}", file=sys.stderr)
        except asyncwasm.Trap as exc:
            print(f"instance {index} trapped: {exc}", file=sys.stderr)


async def stop_on_signal(scope: trio.CancelScope) -> None:
    """Ctrl-C / SIGTERM: cancel every instance (their sockets close)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            print("stopping", file=sys.stderr)
            scope.cancel()
            return


async def shared(module: Module, host: str, port: int, instances: int) -> None:
    handoff = Handoff([open_listener(host, port, backlog=1024)])
    print(f"{instances} instances on http://{host}:{handoff.addresses()[0][1]}/ (one shared listener)",
          file=sys.stderr, flush=True)
    linker = Linker()
    linker.define_wasi(WasiConfig(listeners=[handoff], stderr="inherit"))  # one WASI context per instance
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, nursery.cancel_scope)
            nursery.start_soon(handoff.accept_loop)
            for index in range(instances):
                nursery.start_soon(run_instance, linker, module, index)
    finally:
        handoff.close()


async def per_instance(module: Module, host: str, port: int, instances: int) -> None:
    listeners: list[socket.socket] = []
    try:
        for index in range(instances):
            listeners.append(open_listener(host, port + index if port else 0, backlog=1024))
        ports = [sock.getsockname()[1] for sock in listeners]
        print(f"{instances} instances on ports {', '.join(map(str, ports))} (one listener each)",
              file=sys.stderr, flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, nursery.cancel_scope)
            for index, sock in enumerate(listeners):
                linker = Linker()
                linker.define_wasi(WasiConfig(listeners=[sock], stderr="inherit"))  # the context dups it
                nursery.start_soon(run_instance, linker, module, index)
    finally:
        for sock in listeners:
            sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE, help="the .wasm server (default: http_server)")
    parser.add_argument("--instances", "-n", type=int, default=8)
    parser.add_argument("--mode", choices=["shared", "per-instance"], default="shared")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="port (per-instance: the first); 0 = random")
    args = parser.parse_args(argv)
    module = Module.from_file(args.module)  # compiled once, instantiated N times
    run = shared if args.mode == "shared" else per_instance
    trio.run(run, module, args.host, args.port, args.instances)
    return 0


if __name__ == "__main__":
    sys.exit(main())
