/* Run folders: the advisory lock that keeps two trainings out of one folder, the clean-up of
 * temp files that dead writers left, and the check (and clearing) of an old run's files.
 *
 * The lock is flock() on FOLDER/.lock: the kernel drops it when the holder exits, however it
 * exits (kill -9 included), so a crashed run never leaves a folder locked. The file holds the
 * holder's pid so the refusal can name it. */
#define _DEFAULT_SOURCE /* flock, d_type */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconv/io.h"
#include "internal.h"

#define LOCK_FILE ".lock"

struct dc_run_lock {
    int fd;
    char *folder;
};

/* "a/b" + "/" + "c" on the heap: paths are never cut to a buffer's size. */
static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (!p) return NULL;
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

dc_status dc_make_folders(const char *path, dc_error *err) {
    char *tmp = malloc(strlen(path) + 1);
    if (!tmp) return dc_set_error(err, DC_ERR_OOM, "run folder: out of memory");
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) break; /* the last mkdir says why */
            *p = '/';
        }
    int e = mkdir(tmp, 0755) != 0 && errno != EEXIST ? errno : 0;
    free(tmp);
    struct stat st;
    if (!e && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) e = ENOTDIR;
    if (e)
        return dc_set_error(err, DC_ERR_IO, "cannot create run folder '%s': %s", path, strerror(e));
    return DC_OK;
}

dc_status dc_run_lock_acquire(const char *folder, dc_run_lock **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_run_lock_acquire: out is NULL");
    *out = NULL;
    if (!folder || !folder[0]) return dc_set_error(err, DC_ERR_ARG, "no run folder given");
    DC_TRY(dc_make_folders(folder, err));
    dc_run_lock *l = calloc(1, sizeof *l);
    char *path = join(folder, LOCK_FILE);
    if (l) l->folder = malloc(strlen(folder) + 1);
    if (!l || !path || !l->folder) {
        if (l) free(l->folder);
        free(l);
        free(path);
        return dc_set_error(err, DC_ERR_OOM, "run folder lock: out of memory");
    }
    strcpy(l->folder, folder);
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    dc_status s = DC_OK;
    if (l->fd < 0) {
        s = dc_set_error(err, DC_ERR_IO, "cannot open the lock file '%s': %s", path,
                         strerror(errno));
    } else if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        char holder[32] = {0};
        ssize_t n = e == EWOULDBLOCK ? pread(l->fd, holder, sizeof holder - 1, 0) : -1;
        const long pid = n > 0 ? strtol(holder, NULL, 10) : 0;
        if (e != EWOULDBLOCK)
            s = dc_set_error(err, DC_ERR_IO, "cannot lock '%s': %s", path, strerror(e));
        else if (pid > 0)
            s = dc_set_error(err, DC_ERR_STATE,
                             "run folder '%s' is in use by process %ld (another training in "
                             "it?); wait for it to finish or stop it",
                             folder, pid);
        else
            s = dc_set_error(err, DC_ERR_STATE, "run folder '%s' is locked by another process",
                             folder);
    } else {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        /* the pid only names the holder in a refusal: failing to write it is harmless */
        if (ftruncate(l->fd, 0) == 0 && pwrite(l->fd, pid, (size_t)n, 0) == n) (void)0;
    }
    free(path);
    if (s != DC_OK) {
        dc_run_lock_release(l);
        return s;
    }
    *out = l;
    return DC_OK;
}

void dc_run_lock_release(dc_run_lock *l) {
    if (!l) return;
    if (l->fd >= 0) close(l->fd); /* closing drops the flock */
    free(l->folder);
    free(l);
}

/* The pid in "<name>.tmp.<pid>[.<suffix>]", or 0 when name is no temp file of ours. */
static long temp_file_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    if (end == t + 5 || (*end && *end != '.') || pid <= 0) return 0;
    return pid;
}

static int remove_stale_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const long pid = temp_file_pid(e->d_name);
        /* a live writer (this process, or a reader tool writing next to the run) keeps its
         * file; kill(pid, 0) fails with ESRCH only when no such process exists */
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *p = join(dir, e->d_name);
        if (p && unlink(p) == 0) removed++;
        free(p);
    }
    closedir(d);
    return removed;
}

int dc_run_clean_temp(const char *folder) {
    if (!folder) return 0;
    char *samples = join(folder, "samples");
    int n = remove_stale_in(folder) + (samples ? remove_stale_in(samples) : 0);
    free(samples);
    return n;
}

/* What a training run writes into its folder (train.c, the CLI's report and samples). */
static const char *const run_files[] = {"model.safetensors", "loss.csv",
                                        "loss.png",          "report.html",
                                        "val_accuracy.csv",  "model.best.safetensors", "config.json"};

dc_status dc_run_folder_check_empty(const char *folder, dc_error *err) {
    DIR *d = opendir(folder);
    if (!d) {
        if (errno == ENOENT) return DC_OK;
        return dc_set_error(err, DC_ERR_IO, "cannot read run folder '%s': %s", folder,
                            strerror(errno));
    }
    struct dirent *e;
    dc_status s = DC_OK;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, LOCK_FILE)) continue;
        s = dc_set_error(err, DC_ERR_STATE,
                         "run folder '%s' is not empty (it holds '%s'): continue that run with "
                         "--resume, choose another folder, or give --force to replace the old "
                         "run's files",
                         folder, n);
        break;
    }
    closedir(d);
    return s;
}

static dc_status remove_if_present(const char *folder, const char *name, dc_error *err) {
    char *p = join(folder, name);
    if (!p) return dc_set_error(err, DC_ERR_OOM, "run folder: out of memory");
    dc_status s = DC_OK;
    if (unlink(p) != 0 && errno != ENOENT)
        s = dc_set_error(err, DC_ERR_IO, "cannot remove '%s': %s", p, strerror(errno));
    free(p);
    return s;
}

dc_status dc_run_folder_clear(const char *folder, dc_error *err) {
    for (size_t i = 0; i < DC_ARRAY_LEN(run_files); i++)
        DC_TRY(remove_if_present(folder, run_files[i], err));
    /* samples/: the old run's grids (epoch_NNNN.png) and the report's thumbnails
     * (val_NN.png, train_NN.png), nothing else of the user's */
    char *samples = join(folder, "samples");
    if (!samples) return dc_set_error(err, DC_ERR_OOM, "run folder: out of memory");
    DIR *d = opendir(samples);
    dc_status s = DC_OK;
    if (d) {
        struct dirent *e;
        while (s == DC_OK && (e = readdir(d))) {
            static const char *const patterns[] = {"epoch_%*d.png%n", "val_%*d.png%n",
                                                   "train_%*d.png%n"};
            for (size_t k = 0; k < DC_ARRAY_LEN(patterns) && s == DC_OK; k++) {
                int n = 0;
                if (sscanf(e->d_name, patterns[k], &n) >= 0 && n > 0 && !e->d_name[n]) {
                    s = remove_if_present(samples, e->d_name, err);
                    break;
                }
            }
        }
        closedir(d);
        if (s == DC_OK) rmdir(samples); /* only when empty: anything else stays */
    }
    free(samples);
    return s;
}
