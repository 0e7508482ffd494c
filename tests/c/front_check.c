/* front_check.c -- standalone driver for the engine's front end
 * (decode.c, validate.c, compile.c, module.c), built and run by
 * front_check.py. No Python runtime is needed; engine.h only pulls in
 * Python.h for types.
 *
 *   front_check --manifest FILE [START]   check each "<expect>\t<path>\t<text>" line from
 *                                         line START on; one result line per module
 *   front_check --mutate FILE COUNT SEED  decode+compile COUNT mutants (truncations and
 *                                         byte flips) of the "ok" modules of FILE
 *   front_check --dump FILE.wasm FUNC     disassemble the compiled code of function FUNC
 *   front_check --bench FILE.wasm [N]     compile N times, report MB/s of code section
 *
 * Every compiled function is also run through verify_code(), which checks
 * the internal-code invariants the interpreter relies on (engine.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compile.h"
#include "engine.h"

/* ---- the internal-code format, from opcodes.def ---------------------------------------- */

static const char *const internal_operands[OP__COUNT] = {
#define INTERNAL(NAME, OPERANDS) [OP_##NAME] = OPERANDS,
#include "opcodes.def"
};

static const uint8_t numeric_arity[OP__COUNT] = { /* 0: not numeric; else operand count */
#define NUMERIC(NAME, PREFIX, CODE, TEXT, IN1, IN2, OUT) [OP_##NAME] = (VT_##IN2 == VT_NONE) ? 2 : 3,
#include "opcodes.def"
};

static const uint8_t is_memop[OP__COUNT] = {
#define LOAD(NAME, CODE, TEXT, TYPE, ALIGN) [OP_##NAME] = 1,
#define STORE(NAME, CODE, TEXT, TYPE, ALIGN) [OP_##NAME] = 1,
#include "opcodes.def"
};

/* Bit k set: operand k of the instruction is a v128 (two slots). */
#define V128_BIT(T, K) ((VT_##T == VT_V128) << (K))
static const uint8_t v128_operands[OP__COUNT] = {
    [OP_COPY128] = 3, [OP_SELECT128] = 7, [OP_GLOBAL_GET128] = 1, [OP_GLOBAL_SET128] = 2,
#define SIMD_OP(NAME, CODE, TEXT, FUNC, IN1, IN2, OUT) \
    [OP_##NAME] = V128_BIT(OUT, 0) | V128_BIT(IN1, 1) | V128_BIT(IN2, 2),
#define SIMD_LANE_OP(NAME, CODE, TEXT, FUNC, IN1, IN2, OUT, LANES) \
    [OP_##NAME] = V128_BIT(OUT, 0) | V128_BIT(IN1, 1) | V128_BIT(IN2, 2),
#define SIMD_TERNARY(NAME, CODE, TEXT, FUNC) [OP_##NAME] = 15,
#define SIMD_LOAD(NAME, CODE, TEXT, FUNC, ALIGN_LOG2) [OP_##NAME] = 1,
#define SIMD_STORE(NAME, CODE, TEXT, ALIGN_LOG2) [OP_##NAME] = 2,
#define SIMD_LOAD_LANE(NAME, CODE, TEXT, ALIGN_LOG2) [OP_##NAME] = 5,
#define SIMD_STORE_LANE(NAME, CODE, TEXT, ALIGN_LOG2) [OP_##NAME] = 2,
#define SIMD_CONST(NAME, CODE, TEXT) [OP_##NAME] = 1,
#define SIMD_SHUFFLE(NAME, CODE, TEXT) [OP_##NAME] = 7,
#define SIMD_LOAD_OP(NAME, OP, FUNC) [OP_##NAME] = 3,
#define SIMD_STORE_OF(NAME, OP, FUNC) [OP_##NAME] = 6,
#define SIMD_LOAD_SUM(NAME, BASE, FUNC, ALIGN_LOG2) [OP_##NAME] = 1,
#define SIMD_STORE_SUM(NAME, BASE) [OP_##NAME] = 4,
#define SIMD_CHAIN_UNARY(NAME, FIRST, SECOND, FUNC1, FUNC2) [OP_##NAME] = 3,
#include "opcodes.def"
};

/* Operand letters of `op` (see opcodes.def). */
static const char *operand_letters(uint32_t op) {
    if (internal_operands[op])
        return internal_operands[op];
    if (numeric_arity[op] == 2)
        return "ss";
    if (numeric_arity[op] == 3)
        return "sss";
    if (is_memop[op])
        return "ssi";
    return NULL;
}

/* Words taken by the instruction at code[pc], or 0 when it is cut off. */
static uint32_t instr_words(const uint32_t *code, uint32_t len, uint32_t pc) {
    uint32_t op = code[pc];
    if (op >= OP__COUNT)
        return 0;
    const char *ops = operand_letters(op);
    uint32_t n = 1;
    for (const char *c = ops; *c; c++) {
        if (*c == '*') { /* BR_TABLE: n + 1 (target, charge) pairs after "si" */
            if (pc + 2 >= len || code[pc + 2] >= len)
                return 0;
            n += 2 * (code[pc + 2] + 1);
        } else {
            n += *c == 'L' ? 2 : 1;
        }
    }
    return pc + n <= len ? n : 0;
}

/* Pair rows (PAIR, PAIR_GOTO): their members, 0 for other rows. */
static const uint16_t pair_first[OP__COUNT] = {
#define PAIR(NAME, FIRST, SECOND, OPERANDS) [OP_##NAME] = OP_##FIRST,
#define PAIR_GOTO(NAME, FIRST, SECOND, OPERANDS) [OP_##NAME] = OP_##FIRST,
#include "opcodes.def"
};
static const uint16_t pair_second[OP__COUNT] = {
#define PAIR(NAME, FIRST, SECOND, OPERANDS) [OP_##NAME] = OP_##SECOND,
#define PAIR_GOTO(NAME, FIRST, SECOND, OPERANDS) [OP_##NAME] = OP_##SECOND,
#include "opcodes.def"
};

/* Words of a fixed-length instruction's operands (no '*'). */
static uint32_t operand_words(uint32_t op) {
    uint32_t n = 0;
    for (const char *l = operand_letters(op); *l; l++)
        n += *l == 'L' ? 2 : 1;
    return n;
}

/* Whether every pair row's operands are its first's, the second's opcode
 * word ('i'), then the second's: the layout the interpreter relies on. */
static bool pair_rows_ok(void) {
    bool ok = true;
    for (uint32_t op = 0; op < OP__COUNT; op++) {
        if (!pair_second[op])
            continue;
        char want[64];
        snprintf(want, sizeof want, "%si%s", operand_letters(pair_first[op]), operand_letters(pair_second[op]));
        if (strcmp(want, operand_letters(op)) != 0) {
            printf("VERIFY opcodes.def: pair row %s spells \"%s\", its members \"%s\"\n", wasm_op_name(op),
                   operand_letters(op), want);
            ok = false;
        }
    }
    return ok;
}

/* Marks the opcode word of each pair member after the first (2 in `start`)
 * in the instruction `op` at pc (op is code[pc], or a member's row), and
 * checks that it still holds the member's own opcode, which the
 * interpreter runs it by. */
static bool mark_members(const uint32_t *code, uint32_t op, uint32_t pc, uint8_t *start) {
    if (!pair_second[op])
        return true;
    uint32_t at = pc + 1 + operand_words(pair_first[op]);
    if (code[at] != pair_second[op])
        return false;
    start[at] = 2;
    return mark_members(code, pair_first[op], pc, start) && mark_members(code, pair_second[op], at, start);
}

/* ---- verifier -------------------------------------------------------------------------- */

static int verify_fail(uint32_t func, uint32_t pc, const char *what) {
    printf("VERIFY function %u pc %u: %s\n", func, pc, what);
    return -1;
}

/* What may end a function's code: control never falls through it (the
 * unconditional jumps and returns, and what cg_emit_terminal emits: tail
 * calls and throws). */
static bool is_terminator(uint32_t op) {
    switch (op) {
    case OP_RETURN: case OP_ADD_RETURN: case OP_JUMP: case OP_UNREACHABLE: case OP_BR_TABLE:
    case OP_RETURN_CALL: case OP_RETURN_CALL_INDIRECT: case OP_THROW: case OP_THROW_REF:
        return true;
    default:
        return false;
    }
}

/* Checks what the interpreter assumes of compiled code: whole instructions,
 * operands in range, jumps to instruction starts (never into a pair), a
 * FUEL >= 1 at the function's entry, charges no larger than the body's
 * instruction count, a terminator last, each pair member's own opcode word
 * in place, a srcmap pair per instruction and per pair member in code
 * order, and slot counts that add up. */
static int verify_code(const wasm_module *m, uint32_t func) {
    const wasm_code *c = &m->funcs[func].code;
    const uint32_t *code = c->code;
    uint32_t len = c->code_len;
    uint8_t *start = calloc(len + 1, 1);
    if (!start)
        return verify_fail(func, 0, "out of memory");
    int rc = 0;
    uint32_t ninstr = 0, last = 0;
    for (uint32_t pc = 0; pc < len;) {
        uint32_t n = instr_words(code, len, pc);
        if (!n) {
            rc = verify_fail(func, pc, "bad opcode or cut-off instruction");
            goto out;
        }
        start[pc] = 1;
        if (!mark_members(code, code[pc], pc, start)) {
            rc = verify_fail(func, pc, "a pair member's opcode word changed");
            goto out;
        }
        last = pc;
        pc += n;
    }
    for (uint32_t pc = 0; pc < len; pc++)
        ninstr += start[pc] != 0;
    if (len == 0 || !is_terminator(code[last])) {
        rc = verify_fail(func, last, "code does not end with a terminator");
        goto out;
    }
    if (code[0] != OP_FUEL || len < 2 || code[1] == 0) {
        rc = verify_fail(func, 0, "function entry is not a FUEL >= 1");
        goto out;
    }
    if (c->srcmap_len != ninstr) {
        rc = verify_fail(func, 0, "srcmap does not have one pair per instruction and pair member");
        goto out;
    }
    for (uint32_t i = 0; i < c->srcmap_len; i++) {
        uint32_t at = c->srcmap[2 * i], off = c->srcmap[2 * i + 1];
        if (at > len || !start[at] || (i && at <= c->srcmap[2 * i - 2]) || off < c->body_offset ||
            off >= c->body_offset + c->body_len) {
            rc = verify_fail(func, at, "bad srcmap pair");
            goto out;
        }
    }
    if (c->max_slots < (uint64_t)c->nlocal_slots + c->nconst_slots || c->nlocal_slots < c->nparam_slots ||
        c->nconst_slots > CG_MAX_CONSTS || !c->frame_init) {
        rc = verify_fail(func, 0, "inconsistent slot counts");
        goto out;
    }
    for (uint32_t i = 0; i < c->nlocal_slots - c->nparam_slots; i++) {
        if (c->frame_init[i] != 0) {
            rc = verify_fail(func, 0, "a declared local does not start at zero");
            goto out;
        }
    }
    for (uint32_t pc = 0; pc < len; pc += instr_words(code, len, pc)) {
        uint32_t op = code[pc], w = pc + 1;
        for (const char *l = operand_letters(op); *l; l++) {
            uint32_t x = code[w];
            bool ok = true;
            switch (*l) {
            case 's': /* a call's base may sit at the top: no arguments, no results */
                ok = x < c->max_slots ||
                     (x == c->max_slots && w == pc + (op == OP_CALL || op == OP_CALL_DEFINED ? 2 : 4) &&
                      (op == OP_CALL || op == OP_CALL_DEFINED || op == OP_CALL_INDIRECT));
                if (v128_operands[op] & (1u << (w - pc - 1))) /* a v128: both slots in the frame */
                    ok = ok && x + 1 < c->max_slots;
                w++;
                break;
            case 't': ok = x < len && start[x] == 1; w++; break;
            case 'c': ok = x <= c->body_len; w++; break; /* at most one instruction per byte */
            case 'f': ok = x < m->nfuncs; w++; break;
            case 'g': ok = x < m->nglobals; w++; break;
            case 'T': ok = x < m->ntables; w++; break;
            case 'e': ok = x < m->nelems; w++; break;
            case 'd': ok = x < m->datacount; w++; break;
            case 'y': ok = x < m->ntypes; w++; break;
            case 'L': w += 2; break;
            case 'i': w++; break;
            case '*': /* BR_TABLE (target, charge) pairs: the count was the previous word */
                for (uint32_t k = 0; ok && k <= code[pc + 2]; k++, w += 2)
                    ok = code[w] < len && start[code[w]] == 1 && code[w + 1] <= c->body_len;
                break;
            }
            if (!ok) {
                char what[64];
                snprintf(what, sizeof what, "operand '%c' out of range", *l);
                rc = verify_fail(func, pc, what);
                goto out;
            }
        }
    }
out:
    free(start);
    return rc;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const char *kind_name(int kind) {
    switch (kind) {
    case ERR_NONE: return "ok";
    case ERR_MALFORMED: return "malformed";
    case ERR_INVALID: return "invalid";
    case ERR_NOMEM: return "nomem";
    default: return "?";
    }
}

/* Decode, validate, compile, verify. Returns the error kind (ERR_NONE ok). */
static int front_end(const uint8_t *bytes, size_t len, wasm_module *m, wasm_error *err) {
    if (wasm_decode(bytes, len, m, err) != 0)
        return err->kind;
    if (wasm_validate_and_compile(m, err) != 0)
        return err->kind;
    for (uint32_t i = m->nimported_funcs; i < m->nfuncs; i++) {
        if (verify_code(m, i) != 0) {
            snprintf(err->message, sizeof err->message, "verify failed in function %u", i);
            err->kind = -1;
            return -1;
        }
    }
    return ERR_NONE;
}

/* ---- modes ------------------------------------------------------------------------------- */

static int run_manifest(const char *manifest, long start) {
    FILE *f = fopen(manifest, "r");
    if (!f) {
        perror(manifest);
        return 2;
    }
    char line[4096];
    long idx = -1;
    while (fgets(line, sizeof line, f)) {
        idx++;
        if (idx < start)
            continue;
        line[strcspn(line, "\n")] = 0;
        char *path = strchr(line, '\t');
        if (!path)
            continue;
        path++;
        char *tab = strchr(path, '\t');
        if (tab)
            *tab = 0;
        size_t len;
        uint8_t *bytes = read_file(path, &len);
        if (!bytes) {
            printf("R\t%ld\tunreadable\t0\t-1\t%s\n", idx, path);
            continue;
        }
        wasm_module m;
        wasm_error err;
        int kind = front_end(bytes, len, &m, &err);
        printf("R\t%ld\t%s\t%zu\t%lld\t%s\n", idx, kind < 0 ? "verify" : kind_name(kind),
               kind ? err.offset : 0, kind ? (long long)err.func : -1LL, kind ? err.message : "");
        fflush(stdout);
        wasm_module_free(&m);
        free(bytes);
    }
    fclose(f);
    return 0;
}

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Picks a random defined function body of a valid module. */
static bool pick_body(const uint8_t *bytes, size_t len, size_t *at, size_t *blen) {
    wasm_module m;
    wasm_error err;
    bool ok = wasm_decode(bytes, len, &m, &err) == 0 && m.nfuncs > m.nimported_funcs;
    if (ok) {
        uint32_t f = m.nimported_funcs + (uint32_t)(rng() % (m.nfuncs - m.nimported_funcs));
        *at = m.funcs[f].code.body_offset;
        *blen = m.funcs[f].code.body_len;
        ok = *blen > 0;
    }
    wasm_module_free(&m);
    return ok;
}

static int run_mutate(const char *manifest, long count, uint64_t seed) {
    FILE *f = fopen(manifest, "r");
    if (!f) {
        perror(manifest);
        return 2;
    }
    /* Load every "ok" module. */
    size_t n = 0, cap = 0;
    uint8_t **mods = NULL;
    size_t *lens = NULL;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "ok\t", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = 0;
        char *path = line + 3, *tab = strchr(path, '\t');
        if (tab)
            *tab = 0;
        size_t len;
        uint8_t *b = read_file(path, &len);
        if (!b)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            mods = realloc(mods, cap * sizeof *mods);
            lens = realloc(lens, cap * sizeof *lens);
        }
        mods[n] = b;
        lens[n++] = len;
    }
    fclose(f);
    if (!n) {
        fprintf(stderr, "no modules\n");
        return 2;
    }
    rng_state = seed ? seed : 1;
    long counts[4] = {0};
    for (long i = 0; i < count; i++) {
        size_t k = rng() % n, len = lens[k];
        uint8_t *buf = malloc(len ? len : 1);
        memcpy(buf, mods[k], len);
        int how = (int)(rng() % 6); /* 0 truncate, 1-2 flip anywhere, 3-5 change a body */
        size_t body_at, body_len;
        if (how >= 3 && pick_body(buf, len, &body_at, &body_len)) {
            /* Mutate inside one function body, where validation gets exercised:
             * random bytes or plausible opcodes. */
            int flips = 1 + (int)(rng() % 3);
            for (int j = 0; j < flips; j++) {
                size_t at = body_at + rng() % body_len;
                static const uint8_t plausible[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0B, 0x0C, 0x0D,
                                                    0x0E, 0x0F, 0x10, 0x11, 0x1A, 0x1B, 0x20, 0x21, 0x41,
                                                    0x42, 0x45, 0x6A, 0x7C, 0xD0, 0xD2, 0xFC};
                buf[at] = (rng() % 4 == 0) ? (uint8_t)rng() : plausible[rng() % sizeof plausible];
            }
        } else if (how == 0 && len > 8) { /* truncate */
            len = 8 + rng() % (len - 8);
        } else { /* flip 1-4 random bytes (past the header half the time) */
            int flips = 1 + (int)(rng() % 4);
            for (int j = 0; j < flips && len; j++) {
                size_t at = (rng() & 1) && len > 8 ? 8 + rng() % (len - 8) : rng() % len;
                buf[at] = (uint8_t)(how == 1 ? buf[at] ^ (1u << (rng() % 8)) : rng());
            }
        }
        wasm_module m;
        wasm_error err;
        int kind = front_end(buf, len, &m, &err);
        if (kind < 0) {
            printf("VERIFY FAILED on mutant %ld of module %zu: %s\n", i, k, err.message);
            return 1;
        }
        counts[kind]++;
        wasm_module_free(&m);
        free(buf);
    }
    printf("mutants %ld: ok %ld, malformed %ld, invalid %ld, nomem %ld\n", count, counts[0], counts[1],
           counts[2], counts[3]);
    for (size_t i = 0; i < n; i++)
        free(mods[i]);
    free(mods);
    free(lens);
    return 0;
}

/* Prints the operands of the instruction at pc; a pair member's opcode
 * word (2 in `member`) as the member's name. */
static void print_operands(const wasm_module *m, const uint32_t *code, uint32_t pc, const uint8_t *member) {
    const char *letters = operand_letters(code[pc]);
    uint32_t w = pc + 1;
    for (const char *l = letters; *l; l++) {
        uint32_t x = code[w];
        switch (*l) {
        case 's': printf(" s%u", x); w++; break;
        case 't': printf(" ->%u", x); w++; break;
        case 'c': printf(" $%u", x); w++; break;
        case 'f':
            printf(" f%u", x);
            if (x < m->nfuncs && m->funcs[x].name.len)
                printf("<%.*s>", (int)m->funcs[x].name.len, m->funcs[x].name.ptr);
            w++;
            break;
        case 'g': printf(" g%u", x); w++; break;
        case 'T': printf(" table%u", x); w++; break;
        case 'e': printf(" elem%u", x); w++; break;
        case 'd': printf(" data%u", x); w++; break;
        case 'y': printf(" type%u", x); w++; break;
        case 'i': member[w] == 2 ? printf(" %s", wasm_op_name(x)) : printf(" %u", x); w++; break;
        case 'L': printf(" 0x%016llx", (unsigned long long)code[w] | (unsigned long long)code[w + 1] << 32); w += 2; break;
        case '*':
            printf(" [");
            for (uint32_t k = 0; k <= code[pc + 2]; k++, w += 2)
                printf(k ? " ->%u $%u" : "->%u $%u", code[w], code[w + 1]);
            printf("]");
            break;
        }
    }
}

static int run_dump(const char *path, long func) {
    size_t len;
    uint8_t *bytes = read_file(path, &len);
    if (!bytes) {
        perror(path);
        return 2;
    }
    wasm_module m;
    wasm_error err;
    int kind = front_end(bytes, len, &m, &err);
    free(bytes);
    if (kind != ERR_NONE) {
        printf("%s at offset 0x%zx (function %lld): %s\n", kind_name(kind), err.offset, (long long)err.func,
               err.message);
        wasm_module_free(&m);
        return 1;
    }
    if (func < 0 || (uint64_t)func >= m.nfuncs || m.funcs[func].imported) {
        printf("function %ld is not a defined function (functions %u..%u are)\n", func,
               m.nimported_funcs, m.nfuncs ? m.nfuncs - 1 : 0);
        wasm_module_free(&m);
        return 1;
    }
    const wasm_func *fn = &m.funcs[func];
    const wasm_code *c = &fn->code;
    const wasm_functype *ft = &m.types[fn->typeidx];
    printf("function %ld", func);
    if (fn->name.len)
        printf(" <%.*s>", (int)fn->name.len, fn->name.ptr);
    printf(": type %u (", fn->typeidx);
    for (uint32_t i = 0; i < ft->nparams; i++)
        printf(i ? " %s" : "%s", valtype_name(ft->params[i]));
    printf(") -> (");
    for (uint32_t i = 0; i < ft->nresults; i++)
        printf(i ? " %s" : "%s", valtype_name(ft->results[i]));
    printf(")\n  body at 0x%x, %u bytes; %u words; slots: %u param, %u local, %u const, %u max\n  locals:",
           c->body_offset, c->body_len, c->code_len, c->nparam_slots, c->nlocal_slots, c->nconst_slots,
           c->max_slots);
    for (uint32_t i = 0; i < c->nlocals; i++)
        printf(" %s", valtype_name(c->local_types[i]));
    printf("\n");
    uint32_t nzero = c->nlocal_slots - c->nparam_slots;
    for (uint32_t k = 0; k < c->nconst_slots; k++)
        printf("  s%u = const 0x%llx\n", c->nlocal_slots + k, (unsigned long long)c->frame_init[nzero + k]);
    uint8_t *member = calloc(c->code_len + 1, 1);
    if (!member) {
        wasm_module_free(&m);
        return 2;
    }
    for (uint32_t pc = 0; pc < c->code_len; pc += instr_words(c->code, c->code_len, pc))
        mark_members(c->code, c->code[pc], pc, member);
    uint32_t si = 0;
    for (uint32_t pc = 0; pc < c->code_len; pc += instr_words(c->code, c->code_len, pc)) {
        while (si < c->srcmap_len && c->srcmap[2 * si] < pc)
            si++;
        printf("  %5u  %-20s", pc, wasm_op_name(c->code[pc]));
        print_operands(&m, c->code, pc, member);
        if (si < c->srcmap_len && c->srcmap[2 * si] == pc)
            printf("    ; @0x%x", c->srcmap[2 * si + 1]);
        printf("\n");
    }
    free(member);
    wasm_module_free(&m);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run_bench(const char *path, long iterations) {
    size_t len;
    uint8_t *bytes = read_file(path, &len);
    if (!bytes) {
        perror(path);
        return 2;
    }
    double best_decode = 1e9, best_compile = 1e9;
    uint64_t code_bytes = 0, funcs = 0, words = 0;
    for (long it = 0; it < iterations; it++) {
        wasm_module m;
        wasm_error err;
        double t0 = now();
        if (wasm_decode(bytes, len, &m, &err) != 0) {
            printf("decode failed: %s\n", err.message);
            return 1;
        }
        double t1 = now();
        if (wasm_validate_and_compile(&m, &err) != 0) {
            printf("compile failed at 0x%zx (function %lld): %s\n", err.offset, (long long)err.func, err.message);
            return 1;
        }
        double t2 = now();
        if (t1 - t0 < best_decode)
            best_decode = t1 - t0;
        if (t2 - t1 < best_compile)
            best_compile = t2 - t1;
        code_bytes = funcs = words = 0;
        for (uint32_t i = m.nimported_funcs; i < m.nfuncs; i++) {
            code_bytes += m.funcs[i].code.body_len;
            words += m.funcs[i].code.code_len;
            funcs++;
        }
        wasm_module_free(&m);
    }
    free(bytes);
    double total = best_decode + best_compile;
    printf("%s: %zu bytes, %llu functions, %.2f MB code section, %llu code words\n", path, len,
           (unsigned long long)funcs, code_bytes / 1e6, (unsigned long long)words);
    printf("best of %ld: decode %.2f ms, validate+compile %.2f ms => %.0f MB/s of code section "
           "(%.0f MB/s counting decode)\n",
           iterations, best_decode * 1e3, best_compile * 1e3, code_bytes / 1e6 / best_compile,
           code_bytes / 1e6 / total);
    return 0;
}

int main(int argc, char **argv) {
    if (!pair_rows_ok())
        return 1;
    if (argc >= 3 && strcmp(argv[1], "--manifest") == 0)
        return run_manifest(argv[2], argc >= 4 ? atol(argv[3]) : 0);
    if (argc >= 5 && strcmp(argv[1], "--mutate") == 0)
        return run_mutate(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10));
    if (argc >= 4 && strcmp(argv[1], "--dump") == 0)
        return run_dump(argv[2], atol(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "--bench") == 0)
        return run_bench(argv[2], argc >= 4 ? atol(argv[3]) : 20);
    fprintf(stderr,
            "usage: %s --manifest FILE [START] | --mutate FILE COUNT SEED | --dump FILE.wasm FUNC | "
            "--bench FILE.wasm [N]\n",
            argv[0]);
    return 2;
}
