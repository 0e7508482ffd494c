"""Pure-Python versions of the benchmark kernels.

Each function computes exactly what kernels/<name>.c computes (same
algorithm, same PRNG, same floating-point operation order) and returns the
same i32 checksum, written the way a Python programmer would write it:
lists, bytes and slicing where Python has them, explicit loops where the
algorithm is the loop. Two are worth knowing when reading the numbers:

- sieve crosses off multiples with slice assignment and collects primes
  with a comprehension, so much of its work runs inside CPython's C code;
- strings uses bytes objects, bytes.find and bytes comparison instead of
  byte loops, so it measures idiomatic Python, not an interpreted strlen.

The harness runs these at Kernel.n_python and scales the time to Kernel.n
by the kernel's cost model; the report marks that column as scaled.

Usage: python benchmarks/pure_python.py [--kernels fib,sha256] [--n N]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import struct
import sys
import time
from typing import Callable, Iterator

MASK32 = 0xFFFFFFFF
MIX_SEED = 0x811C9DC5


def mix32(hash_: int, value: int) -> int:
    """bench.h mix32: FNV-1a style step, modulo 2**32."""
    return ((hash_ ^ (value & MASK32)) * 0x01000193) & MASK32


def to_i32(value: int) -> int:
    """Reinterpret the low 32 bits as a signed i32, as run() returns it."""
    value &= MASK32
    return value - (1 << 32) if value & 0x80000000 else value


def xorshift32(state: int) -> Iterator[int]:
    """bench.h xorshift32 as an endless generator of successive states."""
    x = state
    while True:
        x ^= (x << 13) & MASK32
        x ^= x >> 17
        x ^= (x << 5) & MASK32
        yield x


# --- fib ----------------------------------------------------------------------


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def run_fib(n: int) -> int:
    return to_i32(fib(n))


# --- sieve --------------------------------------------------------------------


def run_sieve(n: int) -> int:
    composite = bytearray(n)
    i = 2
    while i * i < n:
        if not composite[i]:
            start = i * i
            composite[start::i] = b"\x01" * len(range(start, n, i))
        i += 1
    primes = [p for p in range(2, n) if not composite[p]]
    return to_i32(mix32(mix32(MIX_SEED, len(primes)), sum(primes)))


# --- matmul -------------------------------------------------------------------


def run_matmul(n: int) -> int:
    a = [[((i * 7 + j * 3) % 17) / 16.0 - 0.5 for j in range(n)] for i in range(n)]
    b = [[((i * 5 + j * 11) % 13) / 8.0 - 0.75 for j in range(n)] for i in range(n)]
    c = []
    for a_row in a:
        c_row = [0.0] * n
        for a_ik, b_row in zip(a_row, b):
            c_row = [c_ij + a_ik * b_kj for c_ij, b_kj in zip(c_row, b_row)]
        c.append(c_row)

    hash_ = MIX_SEED
    for row in c:
        for bits in struct.unpack(f"<{n}Q", struct.pack(f"<{n}d", *row)):
            hash_ = mix32(hash_, (bits ^ (bits >> 32)) & MASK32)
    return to_i32(hash_)


# --- sha256 -------------------------------------------------------------------

PATTERN_BYTES = 65536
SHA256_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1,
    0x923F82A4, 0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3,
    0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786,
    0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147,
    0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13,
    0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A,
    0x5B9CCA4F, 0x682E6FF3, 0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208,
    0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)
SHA256_H0 = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
             0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)


def sha256_pattern() -> bytes:
    """The kernel's 64 KiB message pattern: top byte of each xorshift32 state."""
    rng = xorshift32(0x9E3779B9)
    return bytes(next(rng) >> 24 for _ in range(PATTERN_BYTES))


def sha256_message(n: int) -> bytes:
    pattern = sha256_pattern()
    return (pattern * (n // PATTERN_BYTES + 1))[:n]


def _rotr(x: int, r: int) -> int:
    return ((x >> r) | (x << (32 - r))) & MASK32


def _sha256_compress(state: list[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        x, y = w[t - 15], w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & MASK32)
    a, b, c, d, e, f, g, h = state
    for k, wt in zip(SHA256_K, w):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        choose = (e & f) ^ (~e & g)
        temp1 = h + s1 + choose + k + wt
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        majority = (a & b) ^ (a & c) ^ (b & c)
        h, g, f, e, d, c, b, a = g, f, e, (d + temp1) & MASK32, c, b, a, (temp1 + s0 + majority) & MASK32
    for i, v in enumerate((a, b, c, d, e, f, g, h)):
        state[i] = (state[i] + v) & MASK32


def sha256_words(message: bytes) -> list[int]:
    """SHA-256 (FIPS 180-4) of message, as the eight digest words."""
    padded = message + b"\x80" + b"\0" * ((55 - len(message)) % 64)
    padded += struct.pack(">Q", len(message) * 8)
    state = list(SHA256_H0)
    for offset in range(0, len(padded), 64):
        _sha256_compress(state, padded[offset:offset + 64])
    return state


def fold_digest(words: list[int]) -> int:
    hash_ = MIX_SEED
    for word in words:
        hash_ = mix32(hash_, word)
    return to_i32(hash_)


def run_sha256(n: int) -> int:
    return fold_digest(sha256_words(sha256_message(n)))


def sha256_reference(n: int) -> int:
    """The kernel's checksum computed with hashlib (an independent check)."""
    digest = hashlib.sha256(sha256_message(n)).digest()
    return fold_digest(list(struct.unpack(">8I", digest)))


# --- quicksort ----------------------------------------------------------------


def quicksort(a: list[int], lo: int, hi: int) -> None:
    """Sort a[lo..hi] (inclusive): Hoare partition, as in quicksort.c."""
    while lo < hi:
        pivot = a[lo + (hi - lo) // 2]
        i, j = lo - 1, hi + 1
        while True:
            i += 1
            while a[i] < pivot:
                i += 1
            j -= 1
            while a[j] > pivot:
                j -= 1
            if i >= j:
                break
            a[i], a[j] = a[j], a[i]
        if j - lo < hi - j:
            quicksort(a, lo, j)
            lo = j + 1
        else:
            quicksort(a, j + 1, hi)
            hi = j


def run_quicksort(n: int) -> int:
    rng = xorshift32(0x2545F491)
    values = [next(rng) for _ in range(n)]
    quicksort(values, 0, n - 1)
    hash_ = MIX_SEED
    previous = 0
    for v in values:
        if v < previous:
            return -2
        previous = v
        hash_ = mix32(hash_, v)
    return to_i32(hash_)


# --- strings ------------------------------------------------------------------

SLOT_COUNT = 64
LINE_BYTES = 1024


def run_strings(n: int) -> int:
    rng = xorshift32(0x6C078965)
    slots = [b""] * SLOT_COUNT
    line = bytearray()
    hash_ = MIX_SEED
    for iteration in range(n):
        r = next(rng)
        length = 8 + r % 112
        word = bytearray([97 + (r >> 8) % 26]) * length
        word[(r >> 16) % length] = 97 + (r >> 24) % 26
        slot = slots[iteration % SLOT_COUNT] = bytes(word)
        hash_ = mix32(hash_, len(slot))

        older = slots[(iteration + 17) % SLOT_COUNT]
        hash_ = mix32(hash_, 0 if slot < older else 1 if slot == older else 2)
        hash_ = mix32(hash_, slot.find(97 + r % 26))  # -1 folds as 0xFFFFFFFF

        if len(line) + length + 1 > LINE_BYTES:
            hash_ = mix32(hash_, len(line))
            line.clear()
        line += slot
    return to_i32(mix32(hash_, len(line)))


# --- nbody --------------------------------------------------------------------

SOLAR_MASS = 4.0 * math.pi * math.pi
DAYS_PER_YEAR = 365.24
NBODY_INITIAL = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    (4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
     1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05,
     9.54791938424326609e-04),
    (8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
     -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05,
     2.85885980666130812e-04),
    (1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05,
     4.36624404335156298e-05),
    (1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05,
     5.15138902046611451e-05),
)


def nbody_energy(pos: list[list[float]], vel: list[list[float]], mass: list[float]) -> float:
    e = 0.0
    count = len(mass)
    for i in range(count):
        vx, vy, vz = vel[i]
        e += 0.5 * mass[i] * (vx * vx + vy * vy + vz * vz)
        for j in range(i + 1, count):
            dx = pos[i][0] - pos[j][0]
            dy = pos[i][1] - pos[j][1]
            dz = pos[i][2] - pos[j][2]
            e -= mass[i] * mass[j] / math.sqrt(dx * dx + dy * dy + dz * dz)
    return e


def run_nbody(n: int, dt: float = 0.01) -> int:
    pos = [list(body[0:3]) for body in NBODY_INITIAL]
    vel = [[v * DAYS_PER_YEAR for v in body[3:6]] for body in NBODY_INITIAL]
    mass = [body[6] * SOLAR_MASS for body in NBODY_INITIAL]
    px = py = pz = 0.0
    for (vx, vy, vz), m in zip(vel, mass):
        px += vx * m
        py += vy * m
        pz += vz * m
    vel[0] = [-px / SOLAR_MASS, -py / SOLAR_MASS, -pz / SOLAR_MASS]

    def energy_code(e: float) -> int:
        return int(e * 1e9) & MASK32

    hash_ = mix32(MIX_SEED, energy_code(nbody_energy(pos, vel, mass)))
    pairs = [(pos[i], vel[i], mass[i], pos[j], vel[j], mass[j])
             for i in range(len(mass)) for j in range(i + 1, len(mass))]
    bodies = list(zip(pos, vel))
    for _ in range(n):
        for p_i, v_i, m_i, p_j, v_j, m_j in pairs:
            dx = p_i[0] - p_j[0]
            dy = p_i[1] - p_j[1]
            dz = p_i[2] - p_j[2]
            dist2 = dx * dx + dy * dy + dz * dz
            magnitude = dt / (dist2 * math.sqrt(dist2))
            mi = m_i * magnitude
            mj = m_j * magnitude
            v_i[0] -= dx * mj
            v_i[1] -= dy * mj
            v_i[2] -= dz * mj
            v_j[0] += dx * mi
            v_j[1] += dy * mi
            v_j[2] += dz * mi
        for p, v in bodies:
            p[0] += dt * v[0]
            p[1] += dt * v[1]
            p[2] += dt * v[2]
    return to_i32(mix32(hash_, energy_code(nbody_energy(pos, vel, mass))))


KERNELS: dict[str, Callable[[int], int]] = {
    "fib": run_fib,
    "sieve": run_sieve,
    "matmul": run_matmul,
    "sha256": run_sha256,
    "quicksort": run_quicksort,
    "strings": run_strings,
    "nbody": run_nbody,
}


def main(argv: list[str] | None = None) -> int:
    import benchlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all)")
    parser.add_argument("--n", type=int, help="problem size (default: each kernel's n_python)")
    args = parser.parse_args(argv)

    failures = 0
    for kernel in benchlib.select_kernels(args.kernels):
        n = args.n if args.n is not None else kernel.n_python
        start = time.perf_counter()
        checksum = KERNELS[kernel.name](n)
        elapsed = time.perf_counter() - start
        expected = benchlib.EXPECTED.get(kernel.name, {}).get(n)
        if kernel.name == "sha256":
            expected = sha256_reference(n)
        verdict = "?" if expected is None else "ok" if benchlib.same_checksum(checksum, expected) else "MISMATCH"
        failures += verdict == "MISMATCH"
        print(f"{kernel.name:10} n={n:<10} {elapsed * 1e3:9.1f} ms  checksum {checksum:>12}  {verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
