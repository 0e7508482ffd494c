/* A plug-in in C that imports a host function its policy does not grant:
 * the host refuses to load it. */
#include <stddef.h>
#include <stdint.h>

__attribute__((import_module("host"), import_name("time_ms"))) int64_t host_time_ms(void);

__attribute__((export_name("handle"))) uint64_t handle(const uint8_t *input, size_t len)
{
    (void)input;
    return (uint64_t)host_time_ms() + len;
}
