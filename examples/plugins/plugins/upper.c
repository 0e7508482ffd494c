/* A plug-in in C: upper-cases its input (ASCII letters; other bytes pass
 * through) and tells the host how much it did through host.log. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((import_module("host"), import_name("log"))) void host_log(const char *text, size_t len);

__attribute__((export_name("handle"))) uint64_t handle(const uint8_t *input, size_t len)
{
    uint8_t *out = malloc(len ? len : 1);
    if (out == NULL) return 0;
    size_t changed = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = input[i];
        if (c >= 'a' && c <= 'z') {
            c -= 'a' - 'A';
            changed++;
        }
        out[i] = c;
    }
    char note[64];
    int n = snprintf(note, sizeof note, "upper-cased %zu of %zu bytes", changed, len);
    host_log(note, (size_t)n);
    return ((uint64_t)(uintptr_t)out << 32) | len;
}
