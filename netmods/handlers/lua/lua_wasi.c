/* What Lua needs on wasm32-wasi beyond wasi-libc: see lua_wasi.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lua.h"

_Noreturn void lua_wasi_throw(lua_State *L, int status) {
    const char *message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    fflush(stdout);
    if (status == LUA_YIELD)
        fprintf(stderr, "lua: coroutine.yield from C is not available in this build (no longjmp on wasm32-wasi)\n");
    else
        fprintf(stderr, "lua: %s\n", message ? message : "error object is not a string");
    fflush(stderr);
    _Exit(1);
}

/* wasi-libc declares tmpfile but has no definition (no /tmp): io.tmpfile()
 * gets a failure to report. */
FILE *tmpfile(void) {
    errno = ENOTSUP;
    return NULL;
}
