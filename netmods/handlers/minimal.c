/* minimal: the smallest useful CGI handler, one fixed response in one write.
 * The handler benchmark (benchmarks/handler_load.py) compares it with a pure
 * trio + h11 server answering the same bytes. */
#include <unistd.h>

static const char response[] =
    "Content-Type: text/plain\r\n"
    "Content-Length: 21\r\n"
    "\r\n"
    "hello from asyncwasm\n";

int main(void) {
    return write(1, response, sizeof response - 1) == sizeof response - 1 ? 0 : 1;
}
