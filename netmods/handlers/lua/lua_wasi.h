/* What Lua 5.4 needs on wasm32-wasi beyond its C89 configuration
 * (force-included into every Lua source file by netmods/handlers/build.py).
 *
 * Errors and coroutine yields from C use Lua's default setjmp/longjmp
 * (LUAI_THROW/LUAI_TRY in ldo.c), which wasm32-wasi provides through Wasm
 * exception handling: build.py compiles with -mexception-handling and
 * -mllvm -wasm-enable-sjlj, and lua_wasi.c defines the tag longjmp throws.
 *
 * No shell and no temporary files on WASI: os.execute() says no shell is
 * available, os.tmpname() and io.tmpfile() fail with an error. */
#ifndef LUA_WASI_H
#define LUA_WASI_H

#define l_system(cmd) ((cmd) == NULL ? 0 : -1)
#define LUA_TMPNAMBUFSIZE 32
#define lua_tmpnam(b, e) { (void)(b); e = 1; }

#endif
