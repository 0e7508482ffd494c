"""Build the benchmark kernels: wasm (committed) and native (scratch).

    python benchmarks/build.py            build everything, then check it
    python benchmarks/build.py --verify   fail if wasm/ differs from a fresh build
    python benchmarks/build.py --kernels fib,sieve --no-native

For each kernels/<name>.c this makes:

- wasm/<name>.wasm: ``python -m ziglang cc --target=wasm32-freestanding -O2``
  with no libc and no entry point, exporting ``run`` and the memory. This is
  the module as wasm-ld emits it (with its padded LEB128 relocation sites);
  asyncwasm and wasmtime run it. It must import nothing.
- wasm/<name>.m3.wasm: the same module re-encoded by wabt (wasm2wat, then
  wat2wasm), which writes minimal LEB128s; pywasm3 runs this one. The
  instruction stream is checked to be identical to the original's, so all
  engines execute the same code. Falls back to binaryen's wasm-opt (which
  re-encodes through its own IR, so the code may differ slightly).
- build/lib<name>.so: ``gcc -O2`` shared library, loaded with ctypes so the
  native time is measured in the same process as the others.

Both builds use -fno-builtin (gcc also -fno-tree-loop-distribute-patterns)
so neither compiler replaces the kernels' own loops with libc calls, and
-ffp-contract=off so no fused multiply-add changes f64 results.

The committed .wasm files are deterministic for a given ziglang version
(ZIG_VERSION below); with another version, --verify reports a difference.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import Kernel

ZIG_VERSION = "0.17.1"  # the ziglang release the committed wasm/ was built with

COMMON_FLAGS = [
    "-O2", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
    "-fno-builtin", "-fno-math-errno", "-ffp-contract=off",
]
WASM_FLAGS = COMMON_FLAGS + [
    "--target=wasm32-freestanding", "-g0", "-nostdlib",
    "-Wl,--no-entry", "-Wl,--export=run",
]
# wasm/<name>.simd.wasm: the same, clang's vectorizers targeting Wasm SIMD (benchmarks/simd.py).
SIMD_FLAGS = ["-msimd128"]
NATIVE_FLAGS = COMMON_FLAGS + [
    "-fno-tree-loop-distribute-patterns", "-fPIC", "-shared", "-fvisibility=hidden",
]


class BuildError(Exception):
    pass


def run_tool(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=kwargs.pop("text", True), **kwargs)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr}")
    return proc


def zig_cc() -> list[str]:
    return [sys.executable, "-m", "ziglang", "cc"]


def zig_version() -> str:
    return run_tool([sys.executable, "-m", "ziglang", "version"]).stdout.strip()


def compile_wasm(kernel: Kernel, out_dir: Path, simd: bool = False) -> Path:
    """Compile one kernel to out_dir/<name>.wasm and sanity-check it.

    The file keeps its final name even in a scratch directory: wasm-ld
    stores the output's file name in the name section.
    """
    out = out_dir / (kernel.wasm_simd if simd else kernel.wasm).name
    run_tool(zig_cc() + WASM_FLAGS + (SIMD_FLAGS if simd else []) + ["-o", str(out), str(kernel.source)])
    data = out.read_bytes()
    if benchlib.import_count(data):
        raise BuildError(f"{out.name} imports something; kernels must be self-contained")
    if benchlib.section_size(data, benchlib.CODE_SECTION) == 0:
        raise BuildError(f"{out.name} has no code section")
    return out


def wat_of(path: Path) -> str:
    return run_tool(["wasm2wat", "--no-debug-names", str(path)]).stdout


def reencoder_available() -> bool:
    return bool((shutil.which("wasm2wat") and shutil.which("wat2wasm")) or shutil.which("wasm-opt"))


def reencode_for_wasm3(original: Path, out: Path) -> str:
    """Write out with minimal LEB128s; return how it was made."""
    if shutil.which("wasm2wat") and shutil.which("wat2wasm"):
        with tempfile.TemporaryDirectory() as tmp:
            wat = Path(tmp) / "module.wat"
            run_tool(["wasm2wat", str(original), "-o", str(wat)])
            run_tool(["wat2wasm", "--debug-names", str(wat), "-o", str(out)])
        if wat_of(original) != wat_of(out):
            raise BuildError(f"{out.name}: re-encoded instructions differ from {original.name}")
        return "wabt, same instructions"
    if shutil.which("wasm-opt"):
        run_tool(["wasm-opt", "--detect-features", str(original), "-o", str(out)])
        return "binaryen (re-encoded through its IR)"
    raise BuildError("neither wabt (wasm2wat, wat2wasm) nor binaryen (wasm-opt) is installed; "
                     "apt-get install wabt")


def compile_native(kernel: Kernel) -> Path:
    benchlib.BUILD_DIR.mkdir(exist_ok=True)
    cc = os.environ.get("CC", "gcc")
    run_tool([cc] + NATIVE_FLAGS + ["-o", str(kernel.native), str(kernel.source)])
    ctypes.CDLL(str(kernel.native)).run  # raises if the symbol is missing
    return kernel.native


def install(fresh: Path, target: Path, verify: bool) -> str:
    """Copy a fresh build over the committed file; report what changed."""
    new = fresh.read_bytes()
    old = target.read_bytes() if target.exists() else None
    if old == new:
        return "unchanged"
    if verify:
        return "DIFFERS" if old is not None else "MISSING"
    target.write_bytes(new)
    return "new" if old is None else "updated"


def build_wasm(kernels: list[Kernel], verify: bool) -> bool:
    version = zig_version()
    if version != ZIG_VERSION:
        print(f"note: ziglang {version}, wasm/ was built with {ZIG_VERSION}; "
              "expect byte differences")
    benchlib.WASM_DIR.mkdir(exist_ok=True)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for kernel in kernels:
            fresh = compile_wasm(kernel, scratch)
            fresh_m3 = scratch / kernel.wasm_m3.name
            status = install(fresh, kernel.wasm, verify)
            if status == "unchanged" and kernel.wasm_m3.exists() and not reencoder_available():
                # Nothing to re-encode: the committed .m3.wasm matches this build.
                fresh_m3.write_bytes(kernel.wasm_m3.read_bytes())
                how = "committed; wabt/binaryen not installed"
            else:
                how = reencode_for_wasm3(fresh, fresh_m3)
            status_m3 = install(fresh_m3, kernel.wasm_m3, verify)
            status_simd = install(compile_wasm(kernel, scratch, simd=True), kernel.wasm_simd, verify)
            ok &= all(s not in ("DIFFERS", "MISSING") for s in (status, status_m3, status_simd))
            code = benchlib.section_size(fresh.read_bytes(), benchlib.CODE_SECTION)
            print(f"  {kernel.wasm.name:18} {fresh.stat().st_size:6} bytes, code {code:5} bytes: {status}; "
                  f"{kernel.wasm_m3.name} {fresh_m3.stat().st_size} bytes ({how}): {status_m3}; "
                  f"{kernel.wasm_simd.name}: {status_simd}")
    return ok


def load_wasmtime(kernel: Kernel):
    import wasmtime

    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, kernel.wasm.read_bytes())
    run = wasmtime.Instance(store, module, []).exports(store)["run"]
    return lambda n: run(store, n)


def load_wasmtime_simd(kernel: Kernel):
    import wasmtime

    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, kernel.wasm_simd.read_bytes())
    run = wasmtime.Instance(store, module, []).exports(store)["run"]
    return lambda n: run(store, n)


def load_wasm3(kernel: Kernel):
    import wasm3

    env = wasm3.Environment()
    runtime = env.new_runtime(64 * 1024)
    runtime.load(env.parse_module(kernel.wasm_m3.read_bytes()))
    return runtime.find_function("run")


def load_native(kernel: Kernel):
    run = ctypes.CDLL(str(kernel.native)).run
    run.argtypes = [ctypes.c_int32]
    run.restype = ctypes.c_int32
    return run


def check_builds(kernels: list[Kernel]) -> bool:
    """Run every available build at n_quick; all checksums must agree."""
    loaders = {"native": load_native, "wasmtime": load_wasmtime, "wasmtime-simd": load_wasmtime_simd,
               "pywasm3": load_wasm3}
    ok = True
    for kernel in kernels:
        n = kernel.n_quick
        results = {}
        for engine, load in loaders.items():
            try:
                results[engine] = load(kernel)(n)
            except (ImportError, OSError) as exc:
                results[engine] = f"unavailable ({exc.__class__.__name__})"
        numbers = [v for v in results.values() if isinstance(v, int)]
        expected = benchlib.EXPECTED.get(kernel.name, {}).get(n, numbers[0] if numbers else None)
        agree = bool(numbers) and all(benchlib.same_checksum(v, expected) for v in numbers)
        ok &= agree
        shown = ", ".join(f"{engine} {value}" for engine, value in results.items())
        print(f"  {kernel.name:10} run({n}): {shown}: {'ok' if agree else 'MISMATCH'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the benchmark kernels.")
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    parser.add_argument("--verify", action="store_true",
                        help="do not write wasm/; fail if a fresh build differs from it")
    parser.add_argument("--no-wasm", action="store_true", help="skip the wasm builds")
    parser.add_argument("--no-native", action="store_true", help="skip the native builds")
    parser.add_argument("--no-check", action="store_true", help="skip the checksum check")
    args = parser.parse_args(argv)
    kernels = benchlib.select_kernels(args.kernels)

    ok = True
    try:
        if not args.no_wasm:
            print("wasm (zig cc, wasm32-freestanding):")
            ok &= build_wasm(kernels, args.verify)
        if not args.no_native:
            print("native (gcc -O2, shared libraries in build/):")
            for kernel in kernels:
                print(f"  {compile_native(kernel).name}")
        if not args.no_check:
            print(f"checksums at n_quick:")
            ok &= check_builds(kernels)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
