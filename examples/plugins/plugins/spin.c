/* A plug-in in C that never returns: its policy's fuel and timeout stop it. */
#include <stddef.h>
#include <stdint.h>

__attribute__((export_name("handle"))) uint64_t handle(const uint8_t *input, size_t len)
{
    volatile uint64_t spins = len;
    (void)input;
    for (;;) spins++;
}
