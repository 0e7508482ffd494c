#!/usr/bin/env python3
"""Standalone checker for the engine's front end (decode/validate/compile).

Builds tests/c/front_check.c with the front-end sources (no Python runtime
needed), runs it over every module of the spec testsuite and reports, per
expectation class and per file, how many modules got the right outcome:

    ok         every ``module`` command, plus ``assert_unlinkable`` and
               ``assert_uninstantiable`` modules (they are valid): must compile
               and pass the internal-code verifier
    malformed  binary ``assert_malformed``: must fail with ERR_MALFORMED
    invalid    ``assert_invalid``: must fail with ERR_INVALID

It also counts how many error messages start with the suite's text.

Usage (from the repository root)::

    python tests/c/front_check.py                 # spec suite, -O1 build
    python tests/c/front_check.py --asan          # same under ASan + UBSan
    python tests/c/front_check.py --mutate 3000   # mutation fuzzing (best with --asan)
    python tests/c/front_check.py --dump F.wasm 3 # disassemble function 3
    python tests/c/front_check.py --bench F.wasm  # compile throughput

Exit status is 0 when every expectation holds and nothing crashed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "asyncwasm" / "_engine"
SOURCES = ["decode.c", "validate.c", "validate_module.c", "compile.c", "module.c"]
SPEC = Path(os.environ.get("WASM_SPEC_DIR", ROOT.parent / "shared" / "wasm-spec")) / "json"
BUILD = ROOT / "build" / "front_check"

Entry = Tuple[str, str, str, str]  # expect, path, text, script


def build(asan: bool, optimize: str = "-O1") -> Path:
    """Compiles the checker; returns the binary's path."""
    BUILD.mkdir(parents=True, exist_ok=True)
    exe = BUILD / ("front_check_asan" if asan else f"front_check{optimize}")
    cmd = [
        "gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", optimize, "-g",
        # The engine's directory first: its compile.h must win over Python's.
        "-I", str(ENGINE), "-I", sysconfig.get_paths()["include"],
        str(ROOT / "tests" / "c" / "front_check.c"),
        *[str(ENGINE / s) for s in SOURCES],
        "-o", str(exe),
    ]
    if asan:
        cmd[1:1] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    "-fno-omit-frame-pointer"]
    subprocess.run(cmd, check=True)
    return exe


def manifest_entries() -> List[Entry]:
    """Every binary module the suite mentions, with what it expects."""
    entries: List[Entry] = []
    for js in sorted(SPEC.glob("*.json")):
        script = js.stem
        for cmd in json.loads(js.read_text())["commands"]:
            kind = cmd["type"]
            expect: Optional[str] = None
            if kind == "module" or kind in ("assert_unlinkable", "assert_uninstantiable"):
                expect = "ok"
            elif kind == "assert_malformed" and cmd.get("module_type") == "binary":
                expect = "malformed"
            elif kind == "assert_invalid":
                expect = "invalid"
            if expect is None or not cmd.get("filename", "").endswith(".wasm"):
                continue
            text = cmd.get("text", "")
            entries.append((expect, str(SPEC / cmd["filename"]), text, script))
    return entries


def write_manifest(entries: List[Entry]) -> Path:
    path = BUILD / "manifest.txt"
    with open(path, "w") as f:
        for expect, file, text, _ in entries:
            f.write(f"{expect}\t{file}\t{text}\n")
    return path


def run_checker(exe: Path, manifest: Path, count: int) -> Dict[int, Tuple[str, str]]:
    """Runs the checker, restarting after crashes. Returns index -> (kind, message);
    a crash is kind "crash" with the tail of stderr as message."""
    results: Dict[int, Tuple[str, str]] = {}
    start = 0
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    while start < count:
        proc = subprocess.run([str(exe), "--manifest", str(manifest), str(start)],
                              capture_output=True, text=True, env=env)
        last = start - 1
        for line in proc.stdout.splitlines():
            if line.startswith("R\t"):
                _, idx, kind, _offset, _func, msg = line.split("\t", 5)
                results[int(idx)] = (kind, msg)
                last = int(idx)
            elif line.startswith("VERIFY"):
                print(line)
        if proc.returncode == 0 and not proc.stderr.strip():
            break
        crashed = last + 1
        if crashed >= count:  # finished, but the exit (leak check) failed
            print("checker exited with", proc.returncode, proc.stderr[-3000:])
            results[count - 1] = ("crash", proc.stderr[-500:])
            break
        results[crashed] = ("crash", proc.stderr[-2000:])
        start = crashed + 1
    return results


def judge(expect: str, text: str, kind: str, msg: str) -> str:
    """Returns "pass", "wrong" or "crash"."""
    if kind == "crash":
        return "crash"
    return "pass" if kind == expect else "wrong"


def report(entries: List[Entry], results: Dict[int, Tuple[str, str]], verbose: bool) -> bool:
    per_class = collections.defaultdict(collections.Counter)
    per_file = collections.defaultdict(collections.Counter)
    text_match = collections.Counter()
    failures = []
    for i, (expect, path, text, script) in enumerate(entries):
        kind, msg = results.get(i, ("crash", "no result"))
        verdict = judge(expect, text, kind, msg)
        per_class[expect][verdict] += 1
        per_file[script][verdict] += 1
        if expect in ("malformed", "invalid"):
            text_match["total"] += 1
            if kind == expect and msg.startswith(text):
                text_match["match"] += 1
            elif kind == expect and verbose:
                print(f"  text: {Path(path).name}: expected {text!r}, got {msg!r}")
        if verdict != "pass":
            failures.append((script, Path(path).name, expect, text, kind, msg))

    print(f"{'class':<10} {'passed':>7} {'wrong':>6} {'crashed':>8}")
    for expect in ("ok", "malformed", "invalid"):
        c = per_class[expect]
        print(f"{expect:<10} {c['pass']:>7} {c['wrong']:>6} {c['crash']:>8}")
    print(f"messages starting with the suite's text: {text_match['match']}/{text_match['total']}")
    bad_files = [s for s, c in sorted(per_file.items()) if c["wrong"] or c["crash"]]
    if bad_files:
        print("files with failures (passed/wrong/crashed):")
        for s in bad_files:
            c = per_file[s]
            print(f"  {s}: {c['pass']}/{c['wrong']}/{c['crash']}")
    for script, name, expect, text, kind, msg in failures[:60]:
        print(f"FAIL {name}: expected {expect} ({text!r}), got {kind}: {msg[:300]}")
    return all(per_class[e]["wrong"] == 0 and per_class[e]["crash"] == 0 for e in ("ok", "malformed", "invalid"))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asan", action="store_true", help="build with -fsanitize=address,undefined")
    ap.add_argument("--mutate", type=int, metavar="N", help="run N mutants of the valid modules")
    ap.add_argument("--seed", type=int, default=1, help="mutation seed (default 1)")
    ap.add_argument("--dump", nargs=2, metavar=("WASM", "FUNC"), help="disassemble one function")
    ap.add_argument("--bench", metavar="WASM", help="measure compile throughput on WASM")
    ap.add_argument("-v", "--verbose", action="store_true", help="show message mismatches")
    args = ap.parse_args(argv)

    # Throughput is measured with the extension's own optimisation level (setup.py).
    exe = build(args.asan, "-O2" if args.bench else "-O1")
    if args.dump:
        return subprocess.run([str(exe), "--dump", *args.dump]).returncode
    if args.bench:
        return subprocess.run([str(exe), "--bench", args.bench]).returncode
    if not SPEC.is_dir():
        print(f"spec testsuite not found at {SPEC}")
        return 2
    entries = manifest_entries()
    manifest = write_manifest(entries)
    if args.mutate:
        proc = subprocess.run([str(exe), "--mutate", str(manifest), str(args.mutate), str(args.seed)],
                              capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0 or proc.stderr.strip():
            print("MUTATION RUN FAILED (exit %d)\n%s" % (proc.returncode, proc.stderr[-5000:]))
            return 1
        print("mutation run clean")
        return 0
    results = run_checker(exe, manifest, len(entries))
    return 0 if report(entries, results, args.verbose) else 1


if __name__ == "__main__":
    sys.exit(main())
