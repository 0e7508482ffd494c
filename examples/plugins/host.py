"""A trio application with Wasm plug-ins.

    python examples/plugins/host.py                     # the plug-ins in plugins/, sample inputs
    python examples/plugins/host.py "some text" ...     # your inputs
    python examples/plugins/host.py --plugins DIR       # another folder

Every ``NAME.wasm`` in the folder is a plug-in, with its policy in
``NAME.json`` beside it (missing: the strictest defaults)::

    {"memory": "2MiB", "fuel": 2000000, "timeout": 1.0, "imports": ["log"], "config": {"key": "value"}}

- ``memory``: cap on its linear memory (``64KiB``, ``2MiB``, or bytes);
- ``fuel``: instructions per call (null: no limit);
- ``timeout``: seconds per call;
- ``imports``: the host functions it may import (``log``, ``time_ms``,
  ``config``) and ``wasi`` (an empty WASI: no files, no network, output
  discarded); a plug-in importing anything else is refused at load;
- ``config``: the strings ``host.config(key)`` gives it.

The plug-in ABI: export ``memory``, an allocator GuestHeap recognizes
(``malloc``/``free``, ``allocate``/``free``, ``cabi_realloc`` ...) and
``handle(ptr, len) -> i64``: the input bytes in, ``(ptr << 32) | len`` of
the output (allocated by the plug-in, freed by the host) out.

Each call gets a fresh instance of the plug-in's compiled module (a module
compiles once; instantiating takes microseconds), so a call that
traps, runs out of fuel or is stopped cannot leave state behind for the
next one. Every plug-in is called with every input at once, in one trio
nursery; the host survives whatever they do and prints what each cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import trio

import asyncwasm
from asyncwasm import I32, I64, Caller, FuelExhausted, FuncType, Interrupted, Limits, Linker, Module, Trap
from asyncwasm.interop import GuestHeap, HeapError, unpack_ptr_len

HERE = Path(__file__).resolve().parent
SAMPLES: list[Union[str, bytes]] = [
    "Hello, plug-ins!",
    "the quick brown fox jumps over the lazy dog",
    "grüße aus dem Wasm-Land",
    b"raw \x00\x01\x02 bytes \xff",
    "lorem ipsum dolor sit amet " * 4000,  # 108 KB: more than some policies allow
]
UNITS = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "": 1}
PAGE = 65536


# -- policies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What a plug-in may use. The defaults are the strictest sensible ones."""

    memory: int = 1 << 20
    fuel: Optional[int] = 1_000_000
    timeout: float = 1.0
    imports: frozenset[str] = frozenset()
    config: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Policy":
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text(encoding="utf-8"))
        unknown = set(raw) - {"memory", "fuel", "timeout", "imports", "config"}
        if unknown:
            raise ValueError(f"{path.name}: unknown policy keys {sorted(unknown)}")
        return cls(
            memory=_size(raw.get("memory", cls.memory)),
            fuel=raw.get("fuel", cls.fuel),
            timeout=float(raw.get("timeout", cls.timeout)),
            imports=frozenset(raw.get("imports", ())),
            config={str(k): str(v) for k, v in raw.get("config", {}).items()},
        )

    def limits(self) -> Limits:
        return Limits(max_memory_pages=self.memory // PAGE, fuel=self.fuel)


def _size(value: Union[int, str]) -> int:
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    number = text.rstrip("kmgib")
    return int(number) * UNITS[text[len(number):]]


# -- the host functions plug-ins may import --------------------------------------------


def _log(name: str) -> Callable[..., None]:
    def log(caller: Caller, ptr: int, length: int) -> None:
        memory = caller.memory
        assert memory is not None
        text = memory.read(ptr, min(length, 200)).decode("utf-8", "replace")
        print(f"  [{name}] {text}", flush=True)

    return log


def _config(policy: Policy) -> Callable[..., int]:
    def config(caller: Caller, ptr: int, length: int) -> int:
        heap = GuestHeap(caller.instance)  # the calling plug-in's own allocator
        value = policy.config.get(heap.read_str(ptr, length), "")
        if not value:
            return 0
        buffer = heap.write(value)  # the plug-in owns it now
        return (buffer.ptr << 32) | buffer.len

    return config


def _time_ms() -> int:
    return time.time_ns() // 1_000_000


def host_functions(name: str, policy: Policy) -> dict[str, tuple[FuncType, Callable[..., object], bool]]:
    """name -> (type, function, wants the caller)."""
    return {
        "log": (FuncType([I32, I32], []), _log(name), True),
        "config": (FuncType([I32, I32], [I64]), _config(policy), True),
        "time_ms": (FuncType([], [I64]), _time_ms, False),
    }


# -- plug-ins ------------------------------------------------------------------------------


class Refused(Exception):
    """The plug-in cannot be loaded under its policy."""


@dataclass
class Plugin:
    name: str
    language: str
    module: Module
    policy: Policy
    linker: Linker
    outcomes: Counter[str] = field(default_factory=Counter)
    fuel_used: int = 0
    seconds: float = 0.0
    peak_pages: int = 0

    @classmethod
    def load(cls, wasm: Path) -> "Plugin":
        name = wasm.stem
        policy = Policy.load(wasm.with_suffix(".json"))
        module = Module.from_file(wasm)
        functions = host_functions(name, policy)
        linker = Linker()
        for imp in module.imports:
            if imp.module == "wasi_snapshot_preview1" and "wasi" in policy.imports:
                continue
            what = f"{imp.module}.{imp.name}"
            if imp.module != "host" or imp.name not in policy.imports:
                allowed = ", ".join(sorted(policy.imports)) or "nothing"
                raise Refused(f"it imports {what}, which its policy does not grant (allowed: {allowed})")
            if imp.name not in functions:
                raise Refused(f"it imports {what}, which the host does not have")
        for fname in policy.imports & set(functions):
            functype, function, wants_caller = functions[fname]
            linker.define_func("host", fname, functype, function, access_caller=wants_caller)
        if "wasi" in policy.imports:
            linker.define_wasi()  # nothing granted: no args, env, files or network; output discarded
        if "handle" not in {e.name for e in module.exports}:
            raise Refused("it does not export handle(ptr, len) -> i64")
        try:  # a trial instance: does it fit its policy (its memory's minimum, for one)?
            linker.instantiate(module, limits=policy.limits()).close()
        except asyncwasm.LinkError as exc:
            raise Refused(str(exc)) from None
        return cls(name, _language(wasm), module, policy, linker)

    async def call(self, data: Union[str, bytes]) -> tuple[str, str]:
        """(outcome, output or reason) of one call with ``data``."""
        started = time.perf_counter()
        instance = None
        try:
            with trio.move_on_after(self.policy.timeout) as scope:
                instance = await self.linker.instantiate_async(self.module, limits=self.policy.limits())
                with instance:
                    if "_initialize" in instance.exports:
                        await _func(instance, "_initialize").call_async()
                    heap = GuestHeap(instance)
                    async with await heap.write_async(data) as buffer:
                        packed = await _func(instance, "handle").call_async(buffer.ptr, buffer.len)
                    if not packed:
                        return "failed", "the plug-in returned no output"
                    ptr, length = unpack_ptr_len(packed)
                    output = heap.read(ptr, length)
                    await heap.free_async(ptr, length)
                    return "ok", output.decode("utf-8", "replace")
            assert scope.cancelled_caught
            return "timed out", f"stopped after {self.policy.timeout} s"
        except FuelExhausted as exc:
            return "out of fuel", f"used its {exc.consumed} units of fuel"
        except Trap as exc:
            used = f" (memory {_pages(instance) * 64} of {self.policy.memory >> 10} KiB)" if instance else ""
            return "trapped", str(exc).splitlines()[0] + used
        except (HeapError, Interrupted, asyncwasm.LinkError) as exc:
            return "failed", str(exc)
        finally:
            self.seconds += time.perf_counter() - started
            if instance is not None:
                self.fuel_used += instance.statistics().fuel_used
                self.peak_pages = max(self.peak_pages, _pages(instance))


def _pages(instance: asyncwasm.Instance) -> int:
    memory = instance.exports.get("memory")
    return memory.size if isinstance(memory, asyncwasm.Memory) else 0


def _func(instance: asyncwasm.Instance, name: str) -> asyncwasm.Func:
    func = instance.exports[name]
    if not isinstance(func, asyncwasm.Func):
        raise Refused(f"its export {name!r} is not a function")
    return func


def _language(wasm: Path) -> str:
    for suffix, language in ((".c", "C"), (".zig", "Zig"), (".rs", "Rust")):
        if wasm.with_suffix(suffix).exists():
            return language
    return "?"


def _show(data: Union[str, bytes], width: int = 40) -> str:
    text = repr(data)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- the application -------------------------------------------------------------------------


async def run(folder: Path, inputs: list[Union[str, bytes]]) -> list[Plugin]:
    plugins: list[Plugin] = []
    for wasm in sorted(folder.glob("*.wasm")):
        try:
            plugins.append(Plugin.load(wasm))
        except (Refused, asyncwasm.WasmError, ValueError) as exc:
            print(f"{wasm.stem}: refused: {exc}")
    print(f"loaded {len(plugins)} plug-ins: {', '.join(f'{p.name} ({p.language})' for p in plugins)}")

    results: dict[tuple[str, int], tuple[str, str]] = {}

    async def one(plugin: Plugin, index: int) -> None:
        outcome, detail = await plugin.call(inputs[index])
        plugin.outcomes[outcome] += 1
        results[plugin.name, index] = (outcome, detail)

    async with trio.open_nursery() as nursery:  # every plug-in, every input, at once
        for plugin in plugins:
            for index in range(len(inputs)):
                nursery.start_soon(one, plugin, index)

    for plugin in plugins:
        for index, data in enumerate(inputs):
            outcome, detail = results[plugin.name, index]
            shown = _show(detail, 60) if outcome == "ok" else detail
            print(f"{plugin.name:10} {_show(data):42} {outcome:12} {shown}")
    print()
    print(f"{'plug-in':10} {'lang':5} {'calls':>5} {'ok':>3} {'trapped':>7} {'no fuel':>7} {'timeout':>7} "
          f"{'failed':>6} {'fuel used':>11} {'seconds':>8} {'peak memory':>12}")  # fmt: skip
    for p in plugins:
        o = p.outcomes
        print(f"{p.name:10} {p.language:5} {sum(o.values()):5} {o['ok']:3} {o['trapped']:7} {o['out of fuel']:7} "
              f"{o['timed out']:7} {o['failed']:6} {p.fuel_used:11,} {p.seconds:8.3f} "
              f"{p.peak_pages * 64:9,} KiB")  # fmt: skip
    return plugins


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="texts to give every plug-in (default: samples)")
    parser.add_argument("--plugins", type=Path, default=HERE / "plugins", help="the plug-in folder")
    args = parser.parse_args(argv)
    inputs: list[Union[str, bytes]] = list(args.inputs) or SAMPLES
    trio.run(run, args.plugins, inputs)
    print("\nthe host is still here: every call ended, however its plug-in behaved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
