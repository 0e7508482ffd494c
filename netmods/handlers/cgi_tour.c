/* cgi_tour: a CGI/1.1 handler exercising what `asyncwasm serve --handler` offers.
 *
 * The mode is PATH_INFO (the path after the route prefix):
 *   /env            text/plain: every environment variable, one KEY=VALUE a line, sorted
 *   /echo           the request body back, with the request's Content-Type (stdin to stdout, streamed)
 *   /count          reads stdin to its end and prints how many bytes and their sum mod 2^32
 *   /status/NNN     "Status: NNN Custom" and a short body
 *   /stream/N       N bytes of a repeating pattern, written 64 KiB at a time, no Content-Length
 *   /length         a body with its Content-Length
 *   /short-length   says Content-Length: 100, writes 5 bytes
 *   /sleep/MS       sleeps MS milliseconds (poll_oneoff), then answers
 *   /head-then-sleep/MS  the header block and a first line, then sleeps, then a second line
 *   /stderr         three lines on stderr, then an answer
 *   /local          a local redirect to SCRIPT_NAME/env?from=local
 *   /client         a client redirect to https://example.org/moved
 *   /exit/N         exit(N) before writing anything
 *   /trap           traps before writing anything
 *   /late-trap      writes the head and some body, then traps
 *   /spin           loops forever
 *   /bad            a header line without a colon
 *   /nohead         a body without any header block
 *   /silent         writes nothing
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *env_or(const char *name, const char *fallback) {
    const char *value = getenv(name);
    return value ? value : fallback;
}

static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int compare(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t done = write(fd, p, n);
        if (done <= 0) exit(3);
        p += done;
        n -= (size_t)done;
    }
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static char buffer[65536];

static int show_env(void) {
    size_t count = 0;
    while (environ[count]) count++;
    char **sorted = malloc((count + 1) * sizeof *sorted);
    if (!sorted) return 1;
    memcpy(sorted, environ, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, compare);
    printf("Content-Type: text/plain\n\n");
    for (size_t i = 0; i < count; i++) printf("%s\n", sorted[i]);
    return 0;
}

static int echo(void) {
    char head[512];
    int n = snprintf(head, sizeof head, "Content-Type: %s\r\n\r\n", env_or("CONTENT_TYPE", "application/octet-stream"));
    write_all(1, head, (size_t)n);
    ssize_t got;
    while ((got = read(0, buffer, sizeof buffer)) > 0) write_all(1, buffer, (size_t)got);
    return got < 0 ? 4 : 0;
}

static int count(void) {
    uint64_t total = 0;
    uint32_t sum = 0;
    ssize_t got;
    while ((got = read(0, buffer, sizeof buffer)) > 0) {
        total += (uint64_t)got;
        for (ssize_t i = 0; i < got; i++) sum += (unsigned char)buffer[i];
    }
    if (got < 0) return 4;
    printf("Content-Type: text/plain\n\n%llu %lu\n", (unsigned long long)total, (unsigned long)sum);
    return 0;
}

static int stream(unsigned long long n) {
    for (size_t i = 0; i < sizeof buffer; i++) buffer[i] = (char)('a' + i % 26);
    write_all(1, "Content-Type: application/octet-stream\n\n", 40);
    while (n > 0) {
        size_t part = n < sizeof buffer ? (size_t)n : sizeof buffer;
        write_all(1, buffer, part);
        n -= part;
    }
    return 0;
}

int main(void) {
    const char *mode = env_or("PATH_INFO", "");
    if (strcmp(mode, "/env") == 0) return show_env();
    if (strcmp(mode, "/echo") == 0) return echo();
    if (strcmp(mode, "/count") == 0) return count();
    if (starts(mode, "/status/")) {
        printf("Status: %s Custom\nContent-Type: text/plain\n\nstatus %s\n", mode + 8, mode + 8);
        return 0;
    }
    if (starts(mode, "/stream/")) return stream(strtoull(mode + 8, NULL, 10));
    if (strcmp(mode, "/length") == 0) {
        printf("Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n");
        return 0;
    }
    if (strcmp(mode, "/short-length") == 0) {
        printf("Content-Type: text/plain\nContent-Length: 100\n\nshort");
        return 0;
    }
    if (starts(mode, "/sleep/")) {
        sleep_ms(strtol(mode + 7, NULL, 10));
        printf("Content-Type: text/plain\n\nslept\n");
        return 0;
    }
    if (starts(mode, "/head-then-sleep/")) {
        const char first[] = "Content-Type: text/plain\n\nfirst\n";
        write_all(1, first, sizeof first - 1);
        sleep_ms(strtol(mode + 17, NULL, 10));
        write_all(1, "second\n", 7);
        return 0;
    }
    if (strcmp(mode, "/stderr") == 0) {
        fprintf(stderr, "line one\nline two\npartial");
        fflush(stderr);
        fprintf(stderr, " line three\n\x1b[2Jescape\n");
        printf("Content-Type: text/plain\n\nlogged\n");
        return 0;
    }
    if (strcmp(mode, "/local") == 0) {
        printf("Location: %s/env?from=local\n\n", env_or("SCRIPT_NAME", ""));
        return 0;
    }
    if (strcmp(mode, "/client") == 0) {
        printf("Location: https://example.org/moved\n\n");
        return 0;
    }
    if (starts(mode, "/exit/")) return atoi(mode + 6);
    if (strcmp(mode, "/trap") == 0) __builtin_trap();
    if (strcmp(mode, "/late-trap") == 0) {
        const char part[] = "Content-Type: text/plain\n\npart of a body";
        write_all(1, part, sizeof part - 1);
        __builtin_trap();
    }
    if (strcmp(mode, "/spin") == 0) {
        volatile unsigned long spins = 0;
        for (;;) spins++;
    }
    if (strcmp(mode, "/bad") == 0) {
        printf("Content-Type: text/plain\nthis line has no colon\n\nbody\n");
        return 0;
    }
    if (strcmp(mode, "/nohead") == 0) {
        printf("just a body\n");
        return 0;
    }
    if (strcmp(mode, "/silent") == 0) return 0;
    printf("Status: 404 Not Here\nContent-Type: text/plain\n\nno mode %s\n", mode);
    return 0;
}
