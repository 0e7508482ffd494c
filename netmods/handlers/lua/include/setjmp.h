/* Stands in for wasi-libc's <setjmp.h>, which refuses to compile without
 * the exception-handling proposal: Lua's ldo.c includes it, and lua_wasi.h
 * replaces every use of it. */
#ifndef LUA_WASI_SETJMP_H
#define LUA_WASI_SETJMP_H
#endif
