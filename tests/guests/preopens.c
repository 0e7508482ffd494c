/* Lists the guest's pre-opened fds in order, one line each, from fd 3 up
 * to the first fd that is not open (a listener is not a prestat, so
 * fd_fdstat_get decides):
 *   fd 3: dir /data (read-write)      a preopened directory
 *   fd 4: dir /ro (read-only)         ... without the path_open write rights
 *   fd 5: socket-stream               a pre-opened listener
 */
#include <stdio.h>
#include <stdlib.h>
#include <wasi/api.h>

int main(void) {
    for (__wasi_fd_t fd = 3;; fd++) {
        __wasi_prestat_t prestat;
        __wasi_errno_t err = __wasi_fd_prestat_get(fd, &prestat);
        __wasi_fdstat_t st;
        __wasi_errno_t stat_err = __wasi_fd_fdstat_get(fd, &st);
        if (stat_err == __WASI_ERRNO_BADF) break;
        if (stat_err != 0) {
            printf("fd %u: fd_fdstat_get failed (%u)\n", fd, stat_err);
            return 1;
        }
        if (err == 0) {
            size_t len = prestat.u.dir.pr_name_len;
            char *name = calloc(len + 1, 1);
            if (!name || __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0) return 1;
            int writable = (st.fs_rights_inheriting & __WASI_RIGHTS_FD_WRITE) != 0;
            printf("fd %u: dir %s (%s)\n", fd, name, writable ? "read-write" : "read-only");
            free(name);
        } else if (st.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM) {
            printf("fd %u: socket-stream\n", fd);
        } else {
            printf("fd %u: filetype %u\n", fd, st.fs_filetype);
        }
    }
    return 0;
}
