// build-flags: -mexec-model=reactor -Wl,--export=malloc -Wl,--export=free -Wl,-z,stack-size=65536
/* A WASI reactor whose allocator is libc's malloc/free (exported), with
 * string and columnar-buffer functions for the GuestHeap tests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* A new NUL-terminated copy of text[0..len) upper-cased (ASCII). */
EXPORT("upper") char *upper(const char *text, size_t len)
{
    char *out = malloc(len + 1);
    if (out == NULL) return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    out[len] = '\0';
    return out;
}

/* "hello, NAME!" for a NUL-terminated name, as a new C string. */
EXPORT("greet") char *greet(const char *name)
{
    size_t n = strlen(name);
    char *out = malloc(n + 9);
    if (out == NULL) return NULL;
    memcpy(out, "hello, ", 7);
    memcpy(out + 7, name, n);
    memcpy(out + 7 + n, "!", 2);
    return out;
}

/* FNV-1a of the bytes. */
EXPORT("fnv1a") uint32_t fnv1a(const uint8_t *data, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ data[i]) * 16777619u;
    return h;
}

/* A column of n doubles: value i is i * 0.5 (read by the host without a copy). */
EXPORT("column") double *column(size_t n)
{
    double *values = malloc(n * sizeof *values);
    if (values == NULL) return NULL;
    for (size_t i = 0; i < n; i++) values[i] = (double)i * 0.5;
    return values;
}

/* The sum of a column of n doubles (written by the host in place). */
EXPORT("sum") double sum(const double *values, size_t n)
{
    double total = 0;
    for (size_t i = 0; i < n; i++) total += values[i];
    return total;
}
