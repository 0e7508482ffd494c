/* interp_dispatch.h -- the one place that decides how fiber_run dispatches.
 *
 * Handlers (the interp_*.inc fragments) do not know how they are reached:
 * each one starts with HANDLER(NAME) and ends with exactly one NEXT(n), where
 * n is the instruction's length in code words (0 after a handler has set ip
 * to a jump target). While a handler runs, `ip` points at its opcode word,
 * so a trap reports the trapping instruction. A handler that has set ip to
 * an instruction whose opcode it knows at compile time may end with
 * RUN_HANDLER(NAME) instead (the PAIR_GOTO rows: the second member's own
 * handler, after the first's body).
 *
 * Two strategies, same handlers:
 *   - computed goto (GCC and Clang): a table of label addresses expanded from
 *     opcodes.def; every handler ends in its own indirect jump, which the
 *     branch predictor learns per handler.
 *   - a switch inside a loop: standard C, used by other compilers and forced
 *     with -DASYNCWASM_PORTABLE_DISPATCH so that it keeps compiling and
 *     passing the tests.
 *
 * fiber_run's body uses, in this order:
 *     DISPATCH_TABLE_BEGIN  DISPATCH_TABLE_ENTRY(NAME) per opcodes.def row  DISPATCH_TABLE_END
 *     DISPATCH_BEGIN  handlers...  DISPATCH_END
 */
#ifndef ASYNCWASM_INTERP_DISPATCH_H
#define ASYNCWASM_INTERP_DISPATCH_H

#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(ASYNCWASM_PORTABLE_DISPATCH)
#define INTERP_COMPUTED_GOTO 1
#else
#define INTERP_COMPUTED_GOTO 0
#endif

#if INTERP_COMPUTED_GOTO

#define DISPATCH_TABLE_BEGIN static const void *const dispatch_table[OP__COUNT] = {
#define DISPATCH_TABLE_ENTRY(NAME) [OP_##NAME] = &&handler_##NAME,
/* The table's address in a local that the compiler cannot see through, so
 * the loop keeps it in a register rather than rebuilding it at every NEXT. */
#define DISPATCH_TABLE_END                        \
    };                                            \
    const void *const *dispatch = dispatch_table; \
    __asm__("" : "+r"(dispatch));

#define DISPATCH_BEGIN NEXT(0);
#define DISPATCH_END
#define HANDLER(NAME) handler_##NAME:
#define NEXT(n)                          \
    do {                                 \
        ip += (n);                       \
        goto *dispatch[*ip];             \
    } while (0)
/* *ip is OP_NAME: a direct jump, no table load, no indirect branch. */
#define RUN_HANDLER(NAME) goto handler_##NAME

#else /* switch loop */

#define DISPATCH_TABLE_BEGIN
#define DISPATCH_TABLE_ENTRY(NAME)
#define DISPATCH_TABLE_END

#define DISPATCH_BEGIN \
    dispatch_next:     \
    switch ((enum wasm_op)*ip) {
#define DISPATCH_END                      \
    default:                              \
        goto bad_opcode;                  \
        }
#define HANDLER(NAME) case OP_##NAME:
#define NEXT(n)                \
    do {                       \
        ip += (n);             \
        goto dispatch_next;    \
    } while (0)
/* *ip is OP_NAME: the switch finds its case (standard C has no label
 * addresses, and a label per case would go unused in most). */
#define RUN_HANDLER(NAME) goto dispatch_next

#endif

#endif /* ASYNCWASM_INTERP_DISPATCH_H */
