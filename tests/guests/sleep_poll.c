/* argv[1] = "sleep MS": nanosleep, then print the elapsed monotonic ms.
 * argv[1] = "stdin MS": poll() stdin with a timeout, print the result, and
 * when readable read and echo a line. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc < 3) return 64;
    int ms = atoi(argv[2]);
    if (strcmp(argv[1], "sleep") == 0) {
        long long start = now_ms();
        struct timespec req = {ms / 1000, (long)(ms % 1000) * 1000000L};
        int rc = nanosleep(&req, NULL);
        printf("nanosleep=%d elapsed_ok=%d\n", rc, now_ms() - start >= ms);
        return 0;
    }
    if (strcmp(argv[1], "stdin") == 0) {
        struct pollfd p = {0, POLLIN, 0};
        int rc = poll(&p, 1, ms);
        printf("poll=%d in=%d\n", rc, (p.revents & POLLIN) != 0);
        if (rc == 1) {
            char buf[64];
            ssize_t n = read(0, buf, sizeof buf);
            printf("got=%.*s\n", (int)(n < 0 ? 0 : n), buf);
        }
        return 0;
    }
    return 64;
}
