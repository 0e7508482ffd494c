#!/usr/bin/env bash
# Builds the C engine in each of its build variants and runs the same tests
# against every one:
#
#   default       computed-goto dispatch, SSE2 SIMD where the CPU has it
#   portable      -DASYNCWASM_PORTABLE_DISPATCH: the switch-loop dispatch
#   no-intrinsics -DASYNCWASM_NO_SIMD_INTRINSICS: the portable C form of every
#                 SIMD operation (what non-x86 machines run)
#
#   scripts/build-variants.sh                       # every variant, the engine tests
#   scripts/build-variants.sh portable -- tests/spec  # one variant, any pytest arguments
#
# Each variant is built (CFLAGS carries its define; setup.py's flags still
# apply, warnings included) in a temporary copy of the repository, so the
# in-place build is left alone. These are the only build switches besides
# ASYNCWASM_SANITIZE (scripts/asan-tests.sh).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

declare -A defines=(
    [default]=""
    [portable]="-DASYNCWASM_PORTABLE_DISPATCH"
    [no-intrinsics]="-DASYNCWASM_NO_SIMD_INTRINSICS"
)
declare -A expect=( # what asyncwasm._engine.BUILD must say (x86-64)
    [default]="dispatch=computed-goto simd=sse2"
    [portable]="dispatch=switch simd=sse2"
    [no-intrinsics]="dispatch=computed-goto simd=portable"
)

variants=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
    [[ -v "defines[$1]" ]] || { echo "build-variants: unknown variant '$1' (default, portable, no-intrinsics)" >&2; exit 2; }
    variants+=("$1")
    shift
done
[[ $# -gt 0 ]] && shift # the --
[[ ${#variants[@]} -eq 0 ]] && variants=(default portable no-intrinsics)
if [[ $# -eq 0 ]]; then
    set -- tests/spec tests/c tests/test_module.py tests/test_engine_runtime.py tests/test_execution.py \
        tests/test_costs.py tests/test_kernels.py tests/test_robustness.py tests/test_toolchain_guests.py
fi

# The spec suite is found relative to the repository root, which moves.
if [[ -z "${ASYNCWASM_SPEC_DIR:-}" && -d "$repo/../shared/wasm-spec" ]]; then
    export ASYNCWASM_SPEC_DIR="$(cd "$repo/../shared/wasm-spec" && pwd)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/asyncwasm-variants.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for variant in "${variants[@]}"; do
    copy="$work/$variant"
    mkdir -p "$copy"
    cp -r "$repo/asyncwasm" "$repo/tests" "$repo/netmods" "$repo/benchmarks" "$repo/setup.py" "$repo/pyproject.toml" "$copy/"
    find "$copy" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
    echo "build-variants: $variant (${defines[$variant]:-no define})" >&2
    if ! (cd "$copy" && CFLAGS="${defines[$variant]}" "$python" setup.py -q build_ext --inplace \
            --build-temp "$work/build-$variant" >"$work/$variant.log" 2>&1); then
        cat "$work/$variant.log" >&2
        failed+=("$variant (build)")
        continue
    fi
    if grep -E "warning:" "$work/$variant.log" >&2; then
        failed+=("$variant (compiler warnings)")
    fi
    (
        cd "$copy"
        export PYTHONPATH="$copy"
        "$python" - "$copy" "${expect[$variant]}" <<'EOF'
import platform, sys
import asyncwasm._engine as e
if not e.__file__.startswith(sys.argv[1]):
    sys.exit(f"build-variants: imported {e.__file__}, not the variant's build")
if platform.machine() in ("x86_64", "AMD64") and e.BUILD != sys.argv[2]:
    sys.exit(f"build-variants: the build says {e.BUILD!r}, expected {sys.argv[2]!r}")
print(f"build-variants: {e.BUILD}", file=sys.stderr)
EOF
        "$python" -m pytest -q -p no:cacheprovider "$@"
    ) || failed+=("$variant (tests)")
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "build-variants: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "build-variants: passed: ${variants[*]}" >&2
