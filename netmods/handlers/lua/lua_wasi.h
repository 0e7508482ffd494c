/* Lua 5.4 on wasm32-wasi without setjmp/longjmp (force-included into every
 * Lua source file by netmods/handlers/build.py).
 *
 * wasm32-wasi has setjmp/longjmp only with the exception-handling proposal,
 * which asyncwasm does not implement. Lua raises errors (and coroutine
 * yields from C) by longjmp, so here a raise ends the program instead: the
 * error message goes to stderr and the process exits with status 1, which
 * handler mode answers with a 500. Scripts run normally until they raise;
 * pcall cannot catch, and coroutine.yield ends the program the same way. */
#ifndef LUA_WASI_H
#define LUA_WASI_H

struct lua_State;
_Noreturn void lua_wasi_throw(struct lua_State *L, int status);

#define LUAI_THROW(L, c) lua_wasi_throw(L, (c)->status)
#define LUAI_TRY(L, c, a) { a }
#define luai_jmpbuf int /* unused */

/* No shell and no temporary files on WASI: os.execute() says no shell is
 * available, os.tmpname() and io.tmpfile() fail with an error. */
#define l_system(cmd) ((cmd) == NULL ? 0 : -1)
#define LUA_TMPNAMBUFSIZE 32
#define lua_tmpnam(b, e) { (void)(b); e = 1; }

#endif
