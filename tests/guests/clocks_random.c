/* Prints clock readings and random bytes (deterministic under fake sources). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec res, rt, m1, m2;
    printf("res_ok=%d\n", clock_getres(CLOCK_MONOTONIC, &res) == 0 && (res.tv_sec > 0 || res.tv_nsec > 0));
    clock_gettime(CLOCK_REALTIME, &rt);
    printf("realtime=%lld.%09ld\n", (long long)rt.tv_sec, rt.tv_nsec);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    long long d = (long long)(m2.tv_sec - m1.tv_sec) * 1000000000LL + (m2.tv_nsec - m1.tv_nsec);
    printf("monotonic=%lld.%09ld nondecreasing=%d\n", (long long)m1.tv_sec, m1.tv_nsec, d >= 0);
    unsigned char bytes[8];
    if (getentropy(bytes, sizeof bytes) != 0) return 1;
    printf("random=");
    for (unsigned i = 0; i < sizeof bytes; i++) printf("%02x", bytes[i]);
    printf("\n");
    return 0;
}
