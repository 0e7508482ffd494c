"""Builds the C engine (asyncwasm._engine) with the machine's C compiler.

ASYNCWASM_SANITIZE=1 builds with AddressSanitizer and UBSan (scripts/asan-tests.sh).
"""
import glob
import os

from setuptools import Extension, setup

# -ffp-contract=off: Wasm float ops round after each step; a fused multiply-add would not.
extra_compile_args = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-fno-strict-aliasing", "-ffp-contract=off"]
extra_link_args = []
if os.environ.get("ASYNCWASM_SANITIZE"):
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_compile_args += flags
    extra_link_args += flags

setup(
    ext_modules=[
        Extension(
            "asyncwasm._engine",
            sources=sorted(glob.glob("asyncwasm/_engine/*.c")),
            depends=glob.glob("asyncwasm/_engine/*.h")
            + glob.glob("asyncwasm/_engine/*.def")
            + glob.glob("asyncwasm/_engine/*.inc"),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ]
)
