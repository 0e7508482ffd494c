"""Rebuild the example plug-ins (plugins/*.c, *.zig, *.rs -> *.wasm).

    python examples/plugins/build.py            # every plug-in whose toolchain is installed
    python examples/plugins/build.py upper      # some, by name

The built .wasm files are committed, so host.py never needs a toolchain.

- C: zig's clang and wasi-libc (``pip install ziglang``), a WASI reactor
  whose allocator is libc's malloc/free, exported:
  ``python -m ziglang cc --target=wasm32-wasi -mexec-model=reactor ...``.
- Zig: ``python -m ziglang build-exe -target wasm32-freestanding -fno-entry
  -rdynamic`` (exports are the ``export fn``\\ s).
- Rust: a rustc whose std has a WASI target (``wasm32-wasip1``, or
  ``wasm32-wasi`` before 1.78; Debian: ``apt-get install rustc
  libstd-rust-dev-wasm32``), ``--crate-type cdylib``. Set ``$RUSTC`` to
  choose one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

PLUGINS = Path(__file__).resolve().parent / "plugins"
ZIG = [sys.executable, "-m", "ziglang"]
C_FLAGS = ["--target=wasm32-wasi", "-O2", "-s", "-Wall", "-Wextra", "-Werror", "-mexec-model=reactor",
           "-Wl,--export=malloc", "-Wl,--export=free", "-Wl,-z,stack-size=65536"]  # fmt: skip
ZIG_FLAGS = ["-target", "wasm32-freestanding", "-O", "ReleaseSmall", "-fno-entry", "-rdynamic"]
RUST_FLAGS = ["--edition", "2021", "-D", "warnings", "--crate-type", "cdylib", "-C", "opt-level=s",
              "-C", "strip=symbols"]  # fmt: skip


def _rust() -> Optional[tuple[str, str]]:
    """(rustc, WASI target) whose std is installed, or None."""
    for rustc in (os.environ.get("RUSTC"), shutil.which("rustc"), "/usr/bin/rustc"):
        if not rustc or not os.path.exists(rustc):
            continue
        sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True).stdout.strip()
        for target in ("wasm32-wasip1", "wasm32-wasi"):
            if (Path(sysroot) / "lib" / "rustlib" / target / "lib").is_dir():
                return rustc, target
    return None


def command(source: Path) -> Optional[list[str]]:
    """The command that builds ``source`` beside it, or None without its toolchain."""
    output = source.with_suffix(".wasm")
    if source.suffix == ".c":
        return [*ZIG, "cc", *C_FLAGS, str(source), "-o", str(output)]
    if source.suffix == ".zig":
        return [*ZIG, "build-exe", *ZIG_FLAGS, str(source), f"-femit-bin={output}"]
    rust = _rust()
    if rust is None:
        return None
    rustc, target = rust
    return [rustc, "--target", target, *RUST_FLAGS, f"--remap-path-prefix={source.parent}=.", str(source), "-o",
            str(output)]  # fmt: skip


def main(names: list[str]) -> int:
    sources = sorted(p for p in PLUGINS.iterdir() if p.suffix in (".c", ".zig", ".rs"))
    if names:
        sources = [p for p in sources if p.stem in names]
    for source in sources:
        cmd = command(source)
        if cmd is None:
            print(f"skipping {source.name}: no rustc with a WASI std", file=sys.stderr)
            continue
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
