#!/usr/bin/env bash
# Runs the tests against an AddressSanitizer + UBSan build of the C engine.
#
#   scripts/asan-tests.sh                 # decoder/validator tests + spec harness
#   scripts/asan-tests.sh tests           # any pytest arguments instead
#
# Tests that start foreign programs (curl, rustc, gcc-built servers) pass
# LD_PRELOAD on to them, and some of those misbehave under libasan (rustc
# aborts, curl hangs): leave netmods/tests, tests/test_toolchain_guests.py,
# tests/test_serve_tls.py::test_curl and the native-comparison tests out of
# sanitized runs.
#
# The extension is built with ASYNCWASM_SANITIZE=1 (see setup.py) in a
# temporary copy of the repository, so the normal in-place build is left
# alone. Python is not built with ASan, so libasan is LD_PRELOADed; leak
# checking is off because CPython keeps objects alive until exit by design.
# Any sanitizer report fails the run: ASan and UBSan halt on the first error,
# and their logs are collected and checked as well.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

libasan="$(gcc -print-file-name=libasan.so)"
if [[ ! -e "$libasan" || "$libasan" == "libasan.so" ]]; then
    echo "asan-tests: libasan not found (gcc -print-file-name=libasan.so gave '$libasan')" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/asyncwasm-asan.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A copy of the sources: the package, the tests, and the build files.
mkdir -p "$work/repo"
cp -r "$repo/asyncwasm" "$repo/tests" "$repo/netmods" "$repo/examples" "$repo/setup.py" "$repo/pyproject.toml" "$work/repo/"
[[ -f "$repo/README.md" ]] && cp "$repo/README.md" "$work/repo/"
mkdir -p "$work/repo/benchmarks" && cp -r "$repo/benchmarks/wasm" "$work/repo/benchmarks/"  # tests/c/test_pair_goto.py runs the kernels
[[ -f "$repo/Dockerfile" ]] && cp -r "$repo/Dockerfile" "$repo/.dockerignore" "$repo/deploy" "$work/repo/"  # tests/test_deploy.py
find "$work/repo" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +

echo "asan-tests: building the engine with ASYNCWASM_SANITIZE=1 in $work/repo" >&2
(cd "$work/repo" && ASYNCWASM_SANITIZE=1 "$python" setup.py -q build_ext --inplace --build-temp "$work/build" >"$work/build.log" 2>&1) || {
    cat "$work/build.log" >&2
    exit 1
}

# The spec suites are found relative to the repository root, which moved.
if [[ -z "${ASYNCWASM_SPEC_DIR:-}" && -d "$repo/../shared/wasm-spec" ]]; then
    export ASYNCWASM_SPEC_DIR="$(cd "$repo/../shared/wasm-spec" && pwd)"
fi
if [[ -z "${ASYNCWASM_SPEC3_DIR:-}" && -d "$repo/../shared/wasm-spec-3.0" ]]; then
    export ASYNCWASM_SPEC3_DIR="$(cd "$repo/../shared/wasm-spec-3.0" && pwd)"
fi

if [[ $# -eq 0 ]]; then
    set -- tests/test_module.py tests/test_robustness.py tests/spec tests/test_exceptions.py \
        tests/test_tail_calls.py tests/test_module_features.py tests/test_turns_eh_tail.py
    for extra in "$work"/repo/tests/test_decode*.py "$work"/repo/tests/test_validat*.py; do
        [[ -e "$extra" ]] && set -- "$@" "${extra#"$work/repo/"}"
    done
fi

logs="$work/sanitizer-logs"
mkdir -p "$logs"
status=0
(
    cd "$work/repo"
    export LD_PRELOAD="$libasan"
    export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$logs/asan"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
    export PYTHONMALLOC=malloc   # let ASan see Python-object overflows too
    export ASYNCWASM_ASAN=1      # tests marked "rss" skip: the quarantine keeps freed memory resident
    # Make sure the sanitized copy is what the tests import.
    "$python" -c 'import sys, asyncwasm._engine as e; sys.exit(0 if e.__file__.startswith(sys.argv[1]) else f"imported {e.__file__}, not the ASan build")' "$work/repo"
    "$python" -m pytest -q -p no:cacheprovider "$@"
) || status=$?

if compgen -G "$logs/*" >/dev/null; then
    echo "asan-tests: sanitizer reports:" >&2
    cat "$logs"/* >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "asan-tests: pytest failed with status $status" >&2
fi
exit "$status"
