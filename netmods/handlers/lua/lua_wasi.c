/* What Lua needs on wasm32-wasi beyond wasi-libc: see lua_wasi.h. */
#include <errno.h>
#include <stdio.h>

/* The exception tag longjmp throws (LLVM's __c_longjmp, one i32: the
 * address of the jmp_buf's argument block). Compiled code and wasi-libc's
 * setjmp runtime refer to it; this toolchain's wasi-libc does not define
 * it. */
__asm__(".globl __c_longjmp\n"
        ".tagtype __c_longjmp i32\n"
        "__c_longjmp:\n");

/* wasi-libc declares tmpfile but has no definition (no /tmp): io.tmpfile()
 * gets a failure to report. */
FILE *tmpfile(void) {
    errno = ENOTSUP;
    return NULL;
}
