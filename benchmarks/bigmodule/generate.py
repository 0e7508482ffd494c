"""Write a large C file of generated functions, deterministically.

Used by compile_speed.py to grow the compile-throughput module past 1 MB of
code. The functions have the shapes compilers see in real programs: loops
over arrays, nested conditionals, switch statements (br_table), calls to
other functions, calls through function-pointer tables (call_indirect),
u32/u64 integer mixing, f64 arithmetic and struct field updates. All
arithmetic is unsigned or floating-point, so nothing is undefined behaviour.

The output depends only on (seed, count): a private xorshift generator is
used, not `random`, so no Python release can change it.

    python benchmarks/bigmodule/generate.py OUT.c [--count 3000] [--seed 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

FAMILIES = ("int", "hash", "float", "parse", "record")
TABLE_SIZE = 16  # entries per family in the function-pointer tables


class Rng:
    """xorshift64: deterministic and independent of the Python version."""

    def __init__(self, seed: int) -> None:
        self.state = (seed * 0x9E3779B97F4A7C15 + 1) & (2**64 - 1) or 1

    def next(self) -> int:
        x = self.state
        x ^= (x << 13) & (2**64 - 1)
        x ^= x >> 7
        x ^= (x << 17) & (2**64 - 1)
        self.state = x
        return x

    def below(self, n: int) -> int:
        return self.next() % n

    def choice(self, items):
        return items[self.below(len(items))]

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent


SIGNATURES = {
    "int": ("uint32_t", "uint32_t *buf, uint32_t len, uint32_t x", "buf, len, acc"),
    "hash": ("uint64_t", "const uint8_t *p, uint32_t len, uint64_t seed", "p, len, acc"),
    "float": ("double", "const double *v, uint32_t len, double x", "v, len, acc"),
    "parse": ("uint32_t", "const char *s, uint32_t len", "s, len"),
    "record": ("uint32_t", "struct record *r, uint32_t k", "r, k"),
}


class FunctionWriter:
    """Builds one function body as a list of C lines."""

    def __init__(self, rng: Rng, family: str, index: int, earlier: list[int]) -> None:
        self.rng = rng
        self.family = family
        self.index = index
        self.earlier = earlier  # indices of earlier functions of this family
        self.lines: list[str] = []
        self.loop_depth = 0

    # expressions ---------------------------------------------------------
    # Integer operands each family has in scope: (always, inside loops).
    INT_LEAVES = {
        "int": (["acc", "x", "len"], ["i", "buf[i]", "buf[(i + 1u) % len]"]),
        "hash": (["(uint32_t)acc", "(uint32_t)(seed >> 7)", "len"], ["i", "p[i] * 0x01010101u"]),
        "float": (["len"], ["i"]),
        "parse": (["acc", "len"], ["i", "(unsigned char)s[i] * 0x01000193u"]),
        "record": (["acc", "k", "r->count", "r->sum"], ["i", "r->items[i & 7u]"]),
    }

    def int_leaf(self) -> str:
        always, in_loop = self.INT_LEAVES[self.family]
        leaves = always + [f"{self.rng.below(1000)}u", f"0x{self.rng.next() & 0xFFFFFFFF:x}u"]
        if self.loop_depth:
            leaves += in_loop
        return self.rng.choice(leaves)

    def int_expr(self, depth: int = 2) -> str:
        if depth == 0 or self.rng.chance(30):
            return self.int_leaf()
        a, b = self.int_expr(depth - 1), self.int_expr(depth - 1)
        if a == b:  # avoid x op x: compilers warn about self-comparisons
            b = f"({b} + {1 + self.rng.below(9)}u)"
        kind = self.rng.below(9)
        if kind < 5:
            return f"({a} {self.rng.choice(['+', '-', '*', '^', '&', '|'])} {b})"
        if kind == 5:
            return f"({a} {self.rng.choice(['<<', '>>'])} ({b} & 31u))"
        if kind == 6:
            return f"({a} / ({b} | 1u))"
        if kind == 7:
            return f"(({a} {self.rng.choice(['<', '>', '==', '!='])} {b}) ? {self.int_leaf()} : {self.int_leaf()})"
        return f"rotl32({a}, {1 + self.rng.below(31)})"

    def float_expr(self, depth: int = 2) -> str:
        if depth == 0 or self.rng.chance(30):
            leaves = ["acc", "x", f"{self.rng.below(10000) / 64.0!r}", "(double)len"]
            if self.loop_depth:
                leaves += ["v[i]", "(double)i"]
            return self.rng.choice(leaves)
        a, b = self.float_expr(depth - 1), self.float_expr(depth - 1)
        if a == b:
            b = f"({b} + 0.25)"
        kind = self.rng.below(6)
        if kind < 4:
            return f"({a} {self.rng.choice(['+', '-', '*', '*'])} {b})"
        if kind == 4:
            return f"({a} / ({b} + 1.5))"
        return f"__builtin_sqrt(__builtin_fabs({a}))"

    # statements ----------------------------------------------------------
    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def statement(self, indent: int, depth: int) -> None:
        kind = self.rng.below(10)
        if depth > 0 and kind == 0 and self.loop_depth < 2:
            self.loop(indent, depth)
        elif depth > 0 and kind in (1, 2):
            self.conditional(indent, depth)
        elif depth > 0 and kind == 3:
            self.switch(indent, depth)
        elif kind == 4 and self.earlier:
            self.call(indent)
        else:
            self.update(indent)

    def update(self, indent: int) -> None:
        family = self.family
        if family == "float":
            self.emit(indent, f"acc {self.rng.choice(['+', '-', '*'])}= {self.float_expr()};")
        elif family == "hash":
            self.emit(indent, f"acc = (acc ^ (uint64_t)({self.int_expr(1)})) * 0x100000001B3ull;")
            self.emit(indent, f"acc = rotl64(acc, {1 + self.rng.below(63)}) + 0x{self.rng.next():x}ull;")
        elif family == "record":
            field = self.rng.choice(["count", "sum", "flags", "last"])
            self.emit(indent, f"r->{field} = r->{field} {self.rng.choice(['+', '^', '|', '*'])} {self.int_expr(1)};")
            self.emit(indent, f"acc += r->{field};")
        else:
            self.emit(indent, f"acc {self.rng.choice(['+', '^', '-'])}= {self.int_expr()};")

    def loop(self, indent: int, depth: int) -> None:
        self.loop_depth += 1
        if self.family == "parse":
            self.emit(indent, "for (uint32_t i = 0; i < len && s[i]; i++) {")
            self.emit(indent + 1, "unsigned char c = (unsigned char)s[i];")
            self.emit(indent + 1, "if (c >= '0' && c <= '9') acc = acc * 10u + (c - '0');")
            self.emit(indent + 1, f"else if (c == '{self.rng.choice(list(',;:/ '))}') acc ^= i;")
        elif self.family == "record":
            self.emit(indent, f"for (uint32_t i = 0; i < (k & 15u); i++) {{")
            self.emit(indent + 1, f"r->items[i & 7u] += i * {self.rng.below(97) + 1}u + acc;")
        else:
            self.emit(indent, "for (uint32_t i = 0; i < len; i++) {")
        for _ in range(1 + self.rng.below(3)):
            self.statement(indent + 1, depth - 1)
        self.emit(indent, "}")
        self.loop_depth -= 1

    def condition(self) -> str:
        if self.family == "float":
            return f"{self.float_expr(1)} {self.rng.choice(['<', '>'])} {self.float_expr(1)}"
        return f"({self.int_expr(1)} & {1 << self.rng.below(8)}u) != 0"

    def conditional(self, indent: int, depth: int) -> None:
        self.emit(indent, f"if ({self.condition()}) {{")
        for _ in range(1 + self.rng.below(2)):
            self.statement(indent + 1, depth - 1)
        if self.rng.chance(50):
            self.emit(indent, "} else {")
            self.statement(indent + 1, depth - 1)
        self.emit(indent, "}")

    def switch(self, indent: int, depth: int) -> None:
        cases = 4 + self.rng.below(12)
        scrutinee = "(uint32_t)acc"
        if self.family == "float":
            scrutinee = "float_index(acc * 7.0, 1024u)"
        self.emit(indent, f"switch ({scrutinee} % {cases}u) {{")
        for case in range(cases):
            self.emit(indent, f"case {case}:")
            self.statement(indent + 1, depth - 1)
            self.emit(indent + 1, "break;")
        self.emit(indent, "default:")
        self.emit(indent + 1, "break;")
        self.emit(indent, "}")

    def call(self, indent: int) -> None:
        _, _, args = SIGNATURES[self.family]
        prefix = self.family[0]
        if self.rng.chance(30):
            index = "float_index(acc, 16u)" if self.family == "float" else f"(uint32_t)acc % {TABLE_SIZE}u"
            target = f"{self.family}_table[{index}]"
        else:
            target = f"{prefix}{self.rng.choice(self.earlier)}"
        call = f"{target}({args})"
        if self.family == "float":
            self.emit(indent, f"acc = acc * 0.5 + {call};")
        else:
            self.emit(indent, f"acc += {call};")

    def write(self) -> str:
        ret, params, _ = SIGNATURES[self.family]
        name = f"{self.family[0]}{self.index}"
        init = {"int": "x ^ len", "hash": "seed", "float": "x", "parse": "len", "record": "k"}[self.family]
        self.emit(0, f"{ret} {name}({params})")
        self.emit(0, "{")
        self.emit(1, f"{ret} acc = {init};")
        for param in params.split(", "):
            self.emit(1, f"(void){param.split()[-1].lstrip('*')};  /* not every body reads it */")
        for _ in range(3 + self.rng.below(6)):
            self.statement(1, 3)
        self.emit(1, "return acc;")
        self.emit(0, "}")
        return "\n".join(self.lines)


PRELUDE = """\
/* Generated by benchmarks/bigmodule/generate.py: do not edit. */
#include <stddef.h>
#include <stdint.h>

struct record {
    uint32_t count, sum, flags, last;
    uint32_t items[8];
};

static inline uint32_t rotl32(uint32_t v, unsigned r) { return (v << r) | (v >> (32u - r)); }
static inline uint64_t rotl64(uint64_t v, unsigned r) { return (v << r) | (v >> (64u - r)); }

/* v as an index below n; out-of-range values and NaN give 0 (no UB). */
static inline uint32_t float_index(double v, uint32_t n) { return v >= 0.0 && v < (double)n ? (uint32_t)v : 0u; }
"""


def generate(count: int, seed: int) -> str:
    rng = Rng(seed)
    by_family: dict[str, list[int]] = {f: [] for f in FAMILIES}
    declarations, bodies = [], []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        ret, params, _ = SIGNATURES[family]
        declarations.append(f"{ret} {family[0]}{index}({params});")
        # Calls go to a few recent functions, so the call graph is deep but
        # acyclic (the tables make indirect cycles possible, as in real code).
        writer = FunctionWriter(rng, family, index, by_family[family][-8:])
        bodies.append(writer.write())
        by_family[family].append(index)

    tables = []
    for family in FAMILIES:
        ret, params, _ = SIGNATURES[family]
        members = by_family[family]
        picks = [f"{family[0]}{members[(k * len(members)) // TABLE_SIZE]}" for k in range(TABLE_SIZE)]
        tables.append(f"{ret} (*const {family}_table[{TABLE_SIZE}])({params}) = {{{', '.join(picks)}}};")
    everything = [f"{f[0]}{i}" for f in FAMILIES for i in by_family[f]]
    keep = ("/* Every generated function, so the linker keeps them all. */\n"
            f"const void *const generated_functions[{len(everything)}] = {{\n    "
            + ",\n    ".join(f"(const void *){name}" for name in everything) + "\n};\n")
    return "\n".join([PRELUDE, *declarations, "", *tables, "", "\n\n".join(bodies), "", keep])


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate a large C file.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.write_text(generate(args.count, args.seed))


if __name__ == "__main__":
    main()
