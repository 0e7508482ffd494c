/* A plug-in in C with a bug: it writes through a wild pointer, which traps
 * ("out of bounds memory access") instead of corrupting the host. */
#include <stddef.h>
#include <stdint.h>

__attribute__((export_name("handle"))) uint64_t handle(const uint8_t *input, size_t len)
{
    volatile uint32_t *wild = (volatile uint32_t *)(uintptr_t)(0xFFFFFF00u - len);
    *wild = input[0];
    return 0;
}
