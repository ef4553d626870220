/* libFuzzer target: the IDX reader (dc_dataset_load_idx) on arbitrary bytes, plain or
 * gzipped (zlib's gz* API reads either), as an images file and as the labels file of a
 * fixed valid images file. The bytes go to anonymous memory files (memfd) opened through
 * /proc/self/fd, so the reader runs exactly as on real files. Built and run by ci/fuzz. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "deconv/data.h"

/* Writes the bytes to a fresh memory file; *path names it. Returns the fd or -1. */
static int memory_file(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("fuzz_idx", 0);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t r = write(fd, data + done, size - done);
        if (r <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)r;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], images[64];
    int fd = memory_file(data, size, path, sizeof path);
    if (fd < 0) abort();
    dc_error err = {0};
    dc_dataset *ds = NULL;
    if (dc_dataset_load_idx(path, NULL, 8, 1, &ds, &err) == DC_OK && ds->n < 1) abort();
    dc_dataset_free(ds);
    ds = NULL;

    /* the same bytes as the labels of two 2x2 images */
    static const uint8_t two_images[16 + 8] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2,
                                               1, 2, 3, 4, 5, 6, 7, 8};
    int images_fd = memory_file(two_images, sizeof two_images, images, sizeof images);
    if (images_fd < 0) abort();
    if (dc_dataset_load_idx(images, path, 2, 3, &ds, &err) == DC_OK &&
        (ds->n != 2 || ds->n_classes < 1 || ds->n_classes > 256))
        abort();
    dc_dataset_free(ds);
    close(images_fd);
    close(fd);
    return 0;
}
