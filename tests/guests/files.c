/* File system walk-through inside the preopen /sandbox. Every step prints
 * "step: ok" or "step: errno=N" (wasi-libc errno values are WASI errnos),
 * plus the data it checks, so the test compares a transcript. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void report(const char *step, int rc) {
    if (rc < 0) printf("%s: errno=%d\n", step, errno);
    else printf("%s: ok\n", step);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path) {
    DIR *d = opendir(path);
    if (!d) { printf("opendir %s: errno=%d\n", path, errno); return; }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp);
    printf("list %s:", path);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

int main(void) {
    char buf[64];
    struct stat st;

    report("mkdir dir", mkdir("/sandbox/dir", 0755));
    int fd = open("/sandbox/dir/f.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    report("create f.txt", fd);
    report("write", (int)write(fd, "hello world", 11) == 11 ? 0 : -1);
    report("close", close(fd));

    fd = open("/sandbox/dir/f.txt", O_RDWR);
    report("open rdwr", fd);
    printf("seek=%ld\n", (long)lseek(fd, 6, SEEK_SET));
    ssize_t n = read(fd, buf, 5);
    printf("read=%.*s\n", (int)n, buf);
    printf("tell=%ld\n", (long)lseek(fd, 0, SEEK_CUR));
    n = pread(fd, buf, 5, 0);
    printf("pread=%.*s\n", (int)n, buf);
    report("pwrite", (int)pwrite(fd, "J", 1, 0) == 1 ? 0 : -1);
    report("ftruncate", ftruncate(fd, 5));
    report("fstat", fstat(fd, &st));
    printf("size=%ld regular=%d\n", (long)st.st_size, S_ISREG(st.st_mode));
    n = pread(fd, buf, sizeof buf, 0);
    printf("content=%.*s\n", (int)n, buf);
    report("close", close(fd));

    struct timespec times[2] = {{1000000000, 0}, {1234567890, 500}};
    report("utimensat", utimensat(AT_FDCWD, "/sandbox/dir/f.txt", times, 0));
    report("stat", stat("/sandbox/dir/f.txt", &st));
    printf("mtime=%ld.%09ld atime=%ld\n", (long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, (long)st.st_atim.tv_sec);

    report("rename", rename("/sandbox/dir/f.txt", "/sandbox/dir/g.txt"));
    report("link", link("/sandbox/dir/g.txt", "/sandbox/dir/h.txt"));
    report("stat g", stat("/sandbox/dir/g.txt", &st));
    printf("nlink=%ld\n", (long)st.st_nlink);
    report("symlink", symlink("g.txt", "/sandbox/dir/s"));
    n = readlink("/sandbox/dir/s", buf, sizeof buf);
    printf("readlink=%.*s\n", (int)(n < 0 ? 0 : n), buf);
    fd = open("/sandbox/dir/s", O_RDONLY);
    report("open via symlink", fd);
    n = read(fd, buf, sizeof buf);
    printf("via symlink=%.*s\n", (int)(n < 0 ? 0 : n), buf);
    close(fd);
    report("lstat s", lstat("/sandbox/dir/s", &st));
    printf("s is link=%d\n", S_ISLNK(st.st_mode));
    list("/sandbox/dir");

    report("rmdir non-empty", rmdir("/sandbox/dir"));
    report("open dir for write", open("/sandbox/dir", O_WRONLY));
    report("open missing", open("/sandbox/missing", O_RDONLY));
    report("escape dotdot", open("/sandbox/dir/../../secret.txt", O_RDONLY));
    report("escape symlink", open("/sandbox/outside/secret.txt", O_RDONLY));
    report("escape abs symlink", open("/sandbox/abs", O_RDONLY));
    report("read only create", open("/ro/new.txt", O_CREAT | O_WRONLY, 0644));
    fd = open("/ro/readme.txt", O_RDONLY);
    report("read only read", fd);
    n = read(fd, buf, sizeof buf);
    printf("readme=%.*s\n", (int)(n < 0 ? 0 : n), buf);
    close(fd);

    report("unlink s", unlink("/sandbox/dir/s"));
    report("unlink h", unlink("/sandbox/dir/h.txt"));
    report("unlink g", unlink("/sandbox/dir/g.txt"));
    report("unlink dir", unlink("/sandbox/dir"));
    report("rmdir", rmdir("/sandbox/dir"));
    list("/sandbox");
    return 0;
}
