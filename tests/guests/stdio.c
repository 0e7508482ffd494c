/* stdio checks, chosen by argv[1]:
 *   upper : copy stdin to stdout upper-cased, then "read N bytes" on stderr
 *   kinds : print the WASI filetype and isatty() of fds 0, 1 and 2
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static int upper(void) {
    char buf[256];
    long total = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]);
        if (write(1, buf, (size_t)n) != n) return 2;
        total += n;
    }
    if (n < 0) return 3;
    fprintf(stderr, "read %ld bytes\n", total);
    return 0;
}

static int kinds(void) {
    for (int fd = 0; fd < 3; fd++) {
        __wasi_fdstat_t st;
        __wasi_errno_t err = __wasi_fd_fdstat_get((__wasi_fd_t)fd, &st);
        printf("fd%d err=%d type=%d tty=%d\n", fd, err, st.fs_filetype, isatty(fd));
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "upper") == 0) return upper();
    if (argc > 1 && strcmp(argv[1], "kinds") == 0) return kinds();
    fprintf(stderr, "usage: stdio upper|kinds\n");
    return 64;
}
