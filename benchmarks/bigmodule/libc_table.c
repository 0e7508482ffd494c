/*
 * libc_table.c: pulls a broad slice of wasi-libc (musl) into the
 * compile-speed module: stdio formatting and scanning, number parsing,
 * sorting, regex, fnmatch, time formatting, wide characters and libm.
 * Taking each function's address keeps the linker from dropping it; this
 * is real, widely deployed C code compiled to wasm, not generated code.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

typedef void (*any_function)(void);
#define F(name) (any_function)(name)

__attribute__((used)) const any_function libc_functions[] = {
    /* stdio */
    F(printf), F(snprintf), F(vfprintf), F(sscanf), F(fscanf), F(fopen),
    F(fgets), F(fputs), F(fwrite), F(fread), F(fflush), F(setvbuf),
    /* numbers, memory, sorting */
    F(strtod), F(strtold), F(strtol), F(strtoull), F(qsort), F(bsearch),
    F(malloc), F(free), F(realloc), F(calloc), F(memmem), F(strstr),
    /* text processing */
    F(regcomp), F(regexec), F(regerror), F(regfree), F(fnmatch),
    F(strerror), F(strsignal), F(getenv), F(setlocale), F(hsearch), F(tsearch),
    /* time */
    F(strftime), F(strptime), F(mktime), F(gmtime_r), F(localtime_r),
    /* wide characters */
    F(wcstombs), F(mbstowcs), F(wcsftime), F(swprintf), F(wcstod),
    /* libm: double */
    F(sin), F(cos), F(tan), F(asin), F(acos), F(atan2), F(sinh), F(cosh),
    F(tanh), F(asinh), F(acosh), F(atanh), F(exp), F(exp2), F(expm1),
    F(log), F(log2), F(log10), F(log1p), F(pow), F(cbrt), F(hypot), F(fmod),
    F(lgamma), F(tgamma), F(erf), F(erfc), F(j0), F(j1), F(jn), F(y0), F(yn),
    /* libm: float and long double */
    F(sinf), F(cosf), F(expf), F(logf), F(powf),
    F(sinl), F(cosl), F(expl), F(logl), F(powl), F(lgammal), F(tgammal),
};
