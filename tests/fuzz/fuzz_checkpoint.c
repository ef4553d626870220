/* libFuzzer target: dc_checkpoint_read_meta and dc_checkpoint_load on arbitrary bytes.
 *
 * The bytes go to an anonymous memory file (memfd) opened through /proc/self/fd, so the
 * reader runs exactly as on a real checkpoint. The "model" is a fixed set of parameters
 * shaped like a small network's (conv, batch-norm state, dense), with an Adam optimizer
 * so the optimizer-state paths run too. Built and run by ci/fuzz. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "deconv/deconv.h"
#include "deconv/io.h"

typedef struct fuzz_model {
    dc_backend *be;
    dc_params *params;
    dc_optim *opt;
} fuzz_model;

static fuzz_model *model(void) {
    static fuzz_model m; /* the harness's one fixed model; the library keeps no globals */
    if (m.params) return &m;
    dc_error err = {0};
    static const struct {
        const char *name;
        int ndim, shape[4], trainable;
    } decl[] = {
        {"enc1.weight", 4, {2, 1, 3, 3}, 1},
        {"enc1.bias", 1, {2}, 1},
        {"bn1.running_var", 1, {2}, 0},
        {"fc.weight", 2, {3, 8}, 1},
        {"fc.bias", 1, {3}, 1},
    };
    if (dc_backend_create_cpu(1, &m.be, &err) != DC_OK || dc_params_create(m.be, &m.params) != DC_OK) {
        fprintf(stderr, "fuzz setup: %s\n", err.msg);
        abort();
    }
    for (size_t i = 0; i < sizeof decl / sizeof decl[0]; i++)
        if (dc_params_declare(m.params, decl[i].name, decl[i].ndim, decl[i].shape, DC_INIT_HE, 9, 9,
                              decl[i].trainable, NULL) != DC_OK)
            abort();
    dc_rng rng;
    dc_rng_seed(&rng, 1);
    dc_optim_config cfg;
    dc_optim_config_default(&cfg, DC_OPTIM_ADAM);
    if (dc_params_init(m.params, &rng) != DC_OK || dc_optim_create(m.params, &cfg, &m.opt) != DC_OK) abort();
    return &m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_model *m = model();
    int fd = memfd_create("checkpoint", 0);
    if (fd < 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    dc_error err = {0};
    dc_meta meta = {0};
    dc_checkpoint_read_meta(path, &meta, &err);
    dc_meta_clear(&meta);
    /* the caller's expected kind, then the load with and without the optimizer */
    dc_meta_set(&meta, "model", "{\"kind\":\"complete\"}");
    dc_checkpoint_load(path, m->params, (size & 1) ? m->opt : NULL, &meta, &err);
    dc_meta_clear(&meta);
    close(fd);
    return 0;
}
