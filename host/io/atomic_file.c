/* Atomic file replacement: temp file in the target's folder, fsync, rename, fsync folder. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"

void dc_f32_to_le(float *x, size_t n) {
    if (dc_host_is_le()) return;
    for (size_t i = 0; i < n; i++) {
        uint8_t b[4], r[4];
        memcpy(b, &x[i], 4);
        r[0] = b[3], r[1] = b[2], r[2] = b[1], r[3] = b[0];
        memcpy(&x[i], r, 4);
    }
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

dc_status dc_atomic_open(dc_atomic_file *af, const char *path, dc_error *err) {
    memset(af, 0, sizeof *af);
    if (!path || !path[0]) return dc_set_error(err, DC_ERR_ARG, "no output path given");
    size_t cap = strlen(path) + 48;
    af->path = dup_str(path);
    af->tmp = malloc(cap);
    if (!af->path || !af->tmp) {
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
    }
    /* "<path>.tmp.<pid>.<random>": unique per writer, so two writers (threads, or processes
     * that ignore the run folder's lock) never share a temp file, and the pid says whose it
     * is when a dead process left it behind (dc_run_clean_temp). mkstemp opens with
     * O_EXCL: never through a file or symlink someone else put there. */
    snprintf(af->tmp, cap, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int e = errno;
        dc_status s = dc_set_error(err, DC_ERR_IO, "cannot write '%s': creating '%s' failed: %s",
                                   path, af->tmp, strerror(e));
        free(af->tmp); /* nothing was created: nothing to remove */
        free(af->path);
        memset(af, 0, sizeof *af);
        return s;
    }
    (void)fchmod(fd, 0644); /* mkstemp's 0600 would hide checkpoints from other readers */
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        dc_atomic_abort(af);
        return dc_set_error(err, DC_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return DC_OK;
}

dc_status dc_atomic_write(dc_atomic_file *af, const void *data, size_t n, dc_error *err) {
    if (!af->f || af->failed) return dc_set_error(err, DC_ERR_STATE, "write to a closed file");
    if (n && fwrite(data, 1, n, af->f) != n) {
        int e = errno;
        af->failed = 1;
        return dc_set_error(err, DC_ERR_IO, "writing '%s' failed: %s", af->tmp, strerror(e));
    }
    return DC_OK;
}

static void fsync_parent(const char *path) {
    char *dir = dup_str(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        slash[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd); /* some file systems refuse fsync on folders: the rename is done anyway */
        close(fd);
    }
    free(dir);
}

dc_status dc_atomic_commit(dc_atomic_file *af, dc_error *err) {
    if (!af->f || af->failed) {
        dc_atomic_abort(af);
        return dc_set_error(err, DC_ERR_STATE, "commit of a failed or closed file");
    }
    int e = 0;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) e = errno;
    if (fclose(af->f) != 0 && !e) e = errno;
    af->f = NULL;
    if (e) {
        dc_status s = dc_set_error(err, DC_ERR_IO, "writing '%s' failed: %s", af->tmp, strerror(e));
        dc_atomic_abort(af);
        return s;
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        dc_status s = dc_set_error(err, DC_ERR_IO, "cannot replace '%s': %s", af->path, strerror(e));
        dc_atomic_abort(af);
        return s;
    }
    fsync_parent(af->path);
    free(af->tmp);
    free(af->path);
    af->tmp = af->path = NULL;
    return DC_OK;
}

void dc_atomic_abort(dc_atomic_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}
