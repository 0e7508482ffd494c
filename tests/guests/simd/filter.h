/* filter.h -- what the SIMD guests' drivers share: read all of stdin, write
 * all of a buffer to stdout, fail with one line on stderr (exit status 1).
 * TOOL names the program in messages. */
#ifndef SIMD_GUEST_FILTER_H
#define SIMD_GUEST_FILTER_H

#include <stdio.h>
#include <stdlib.h>

static void die(const char *what)
{
    fprintf(stderr, TOOL ": %s\n", what);
    exit(1);
}

static unsigned char *read_all(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0;) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    if (!buf || ferror(stdin)) die("cannot read the input");
    *len = n;
    return buf;
}

static void write_all(const void *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0) die("cannot write the output");
}

#endif /* SIMD_GUEST_FILTER_H */
