"""Build the SIMD guests: real C libraries compiled with ``-msimd128``.

    python tests/guests/simd/build.py                  # both .wasm files, here
    python tests/guests/simd/build.py --native lz4_tool -o /tmp/lz4_tool

Each guest is a small driver written here (``<name>.c``, a stdin-to-stdout
filter) linked with a library whose C sources come from a PyPI sdist that
bundles them:

- ``deflate_tool``: libdeflate 1.26 (DEFLATE/zlib/gzip compression and
  decompression, CRC-32, Adler-32), from the sdist of ``deflate`` 0.9.0;
- ``lz4_tool``: LZ4 1.9.4 (block and frame formats, LZ4-HC, xxHash), from
  the sdist of ``lz4`` 4.4.5.

The sdists are fetched with ``pip download`` (checked against the SHA-256
below) into ``build/simd-guests/``; only the drivers, this script and the
.wasm files are committed. The Wasm build is ``python -m ziglang cc
--target=wasm32-wasi -O2 -msimd128``: clang's vectorizers turn the
libraries' loops into v128 code (Adler-32, xxHash, match-finder set-up,
copies). The native reference build is ``gcc -O2`` of the same sources.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from typing import Optional

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
CACHE = REPO / "build" / "simd-guests"
# Third-party sources: their own warning settings, not ours.
WASM_FLAGS = ["--target=wasm32-wasi", "-O2", "-msimd128", "-s"]
NATIVE_FLAGS = ["-O2"]


@dataclass(frozen=True)
class Library:
    dist: str  # the PyPI distribution whose sdist bundles the C sources
    version: str
    sha256: str
    root: str  # the library's directory inside the sdist
    sources: tuple[str, ...]  # globs under root

    @property
    def sdist(self) -> str:
        return f"{self.dist}-{self.version}.tar.gz"


GUESTS = {
    "deflate_tool": Library("deflate", "0.9.0", "962e0a6f1ea3a94b900a8ea0ce138fa92bfcbafda5b86367104a259ffcd3462b",
                            "libdeflate", ("lib/*.c", "lib/*/*.c")),
    "lz4_tool": Library("lz4", "4.4.5", "5f0b9e53c1e82e88c10d7c180069363980136b9d7a8306c4dca4f760d60c39f0",
                        "lz4libs", ("*.c",)),
}


class SourcesUnavailable(RuntimeError):
    """The library's sdist could not be fetched (offline, pip missing)."""


def library_dir(name: str) -> pathlib.Path:
    """The library's source directory, fetched and unpacked on first use."""
    lib = GUESTS[name]
    unpacked = CACHE / f"{lib.dist}-{lib.version}"
    if not (unpacked / lib.root).is_dir():
        archive = CACHE / lib.sdist
        if not archive.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", lib.dist,
                   f"{lib.dist}=={lib.version}", "-d", str(CACHE)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0 or not archive.exists():
                raise SourcesUnavailable(f"pip download {lib.dist}=={lib.version} failed: {proc.stderr[-500:]}")
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != lib.sha256:
            raise SourcesUnavailable(f"{archive} has SHA-256 {digest}, expected {lib.sha256}")
        with tarfile.open(archive) as tar:
            tar.extractall(CACHE, filter="data")
    return unpacked / lib.root


def _sources(name: str) -> list[str]:
    root = library_dir(name)
    files = sorted(str(p) for pattern in GUESTS[name].sources for p in root.glob(pattern))
    return ["-I", str(root), *files, str(HERE / f"{name}.c")]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def build_wasm(name: str, output: Optional[pathlib.Path] = None) -> pathlib.Path:
    output = output or HERE / f"{name}.wasm"
    _run([sys.executable, "-m", "ziglang", "cc", *WASM_FLAGS, *_sources(name), "-o", str(output)])
    return output


def build_native(name: str, output: pathlib.Path) -> pathlib.Path:
    _run(["gcc", *NATIVE_FLAGS, *_sources(name), "-o", str(output)])
    return output


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(GUESTS)}")
    ap.add_argument("--native", action="store_true", help="build one guest for the host instead")
    ap.add_argument("-o", "--output", type=pathlib.Path)
    args = ap.parse_args(argv)
    names = args.names or list(GUESTS)
    unknown = [n for n in names if n not in GUESTS]
    if unknown:
        ap.error(f"no SIMD guest named {', '.join(unknown)} (there are: {', '.join(GUESTS)})")
    if args.native:
        if len(names) != 1 or args.output is None:
            ap.error("--native takes one NAME and -o OUTPUT")
        print(build_native(names[0], args.output))
        return 0
    for name in names:
        print(build_wasm(name, args.output if len(names) == 1 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
