/* A plug-in in C that allocates without bound: its policy's memory cap makes
 * malloc fail, and it aborts (a trap) as C programs do when out of memory. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void **kept; /* every block stays reachable, so none can be optimized away */

__attribute__((export_name("handle"))) uint64_t handle(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    for (;;) {
        void **block = malloc(1 << 16);
        if (block == NULL) abort();
        memset(block, 0xAB, 1 << 16);
        *block = kept;
        kept = block;
    }
}
