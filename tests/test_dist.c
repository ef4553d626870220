/* Data-parallel pieces that need no MPI: a rank's slice of a global batch holds exactly
 * what one process puts in those slots (the oracle: dc_model_fill_batch of the whole
 * batch), and a NULL dist answers as one process. The multi-rank runs are tests/mpi/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/data.h"
#include "deconv/dist.h"
#include "deconv/model.h"
#include "testutil.h"

/* Each of `ranks` slices of a global batch of B, filled separately, against one fill of
 * the whole batch: every array equal slot for slot, bit for bit. */
static void check_slices(const char *kind, int B, int count, int ranks, int augment) {
    dc_error err = {0};
    char data[1024];
    snprintf(data, sizeof data, "%s/assets/guns", tu_source_dir());
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_path(data, 16, 1, &ds, &err), DC_OK);
    dc_backend *be = NULL;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, kind, 1, 16, &err), DC_OK);
    spec.base = 4;
    spec.blocks = 2;
    spec.latent = 8;
    if (!strcmp(kind, "complete")) spec.mask = DC_MASK_MIX; /* a drawn mask per slot */
    if (!strcmp(kind, "glo")) spec.glo_count = ds->n;
    dc_model *whole = NULL, *part = NULL;
    assert_int_equal(dc_model_create(be, &spec, B, &whole, &err), DC_OK);
    assert_int_equal(dc_model_create(be, &spec, B / ranks, &part, &err), DC_OK);
    dc_augment_config aug;
    dc_augment_config_identity(&aug);
    aug.hflip_prob = 0.5f;
    aug.max_translate = 1.0f;
    aug.max_rotate_deg = 8.0f;
    int32_t idx[64];
    for (int i = 0; i < count; i++) idx[i] = (i * 7 + 3) % ds->n;
    dc_batch all, slice;
    assert_int_equal(dc_batch_alloc(whole, &all, &err), DC_OK);
    assert_int_equal(dc_batch_alloc(part, &slice, &err), DC_OK);
    const uint64_t seed = 12345;
    assert_int_equal(dc_model_fill_batch(whole, ds, idx, count, augment ? &aug : NULL, seed, &all,
                                         &err),
                     DC_OK);
    const int b = B / ranks, hw = spec.size * spec.size;
    const size_t numel = all.image_numel;
    for (int r = 0; r < ranks; r++) {
        assert_int_equal(dc_model_fill_batch_slice(part, ds, idx, count, B, augment ? &aug : NULL,
                                                   seed, r * b, &slice, &err),
                         DC_OK);
        const size_t at = (size_t)r * b;
        assert_memory_equal(slice.x, all.x + at * numel, b * numel * sizeof(float));
        assert_memory_equal(slice.target, all.target + at * numel, b * numel * sizeof(float));
        assert_memory_equal(slice.weight, all.weight + at * numel, b * numel * sizeof(float));
        assert_memory_equal(slice.mask, all.mask + at * hw, (size_t)b * hw * sizeof(float));
        assert_memory_equal(slice.index, all.index + at, b * sizeof(int32_t));
        assert_memory_equal(slice.labels, all.labels + at, b * sizeof(int32_t));
        assert_memory_equal(slice.t, all.t + at, b * sizeof(float));
    }
    /* slots past the global batch are refused, naming them */
    assert_int_equal(dc_model_fill_batch_slice(part, ds, idx, count, B, NULL, seed, B - b + 1,
                                               &slice, &err),
                     DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "global batch of"));
    dc_batch_free(&all);
    dc_batch_free(&slice);
    dc_model_free(whole);
    dc_model_free(part);
    dc_backend_free(be);
    dc_dataset_free(ds);
}

static void test_slices_match_the_whole_batch(void **state) {
    (void)state;
    check_slices("complete", 8, 8, 2, 1);
    check_slices("complete", 8, 5, 4, 1); /* a last, partial batch: items repeat */
    check_slices("glo", 8, 8, 2, 0);
    check_slices("diffusion", 8, 6, 2, 1); /* time and noise drawn per slot */
}

static void test_one_process_answers(void **state) {
    (void)state;
    dc_error err = {0};
    int local = 0, first = -1;
    assert_int_equal(dc_dist_rank(NULL), 0);
    assert_int_equal(dc_dist_size(NULL), 1);
    assert_int_equal(dc_dist_batch_slice(NULL, 7, &local, &first, &err), DC_OK);
    assert_int_equal(local, 7);
    assert_int_equal(first, 0);
    assert_int_equal(dc_dist_any(NULL, 0), 0);
    assert_int_equal(dc_dist_any(NULL, 5), 1);
    float v[2] = {1.5f, -2.0f};
    assert_int_equal(dc_dist_mean(NULL, v, 2, &err), DC_OK);
    assert_true(v[0] == 1.5f && v[1] == -2.0f);
    assert_true(dc_dist_draw_seed(NULL, 99) == 99);
    assert_int_equal(dc_dist_reduce_step(NULL, NULL, NULL, &err), DC_OK);
    dc_dist_abort(NULL, 1, "nothing happens"); /* returns: one process exits by itself */
    dc_dist_stats st;
    dc_dist_get_stats(NULL, &st);
    assert_int_equal(st.steps, 0);
    if (!dc_dist_available()) {
        dc_dist *d = (dc_dist *)&err; /* must be overwritten with NULL */
        assert_int_equal(dc_dist_create(NULL, &d, &err), DC_ERR_UNSUPPORTED);
        assert_null(d);
        assert_non_null(strstr(err.msg, "MPI"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_match_the_whole_batch),
        cmocka_unit_test(test_one_process_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
