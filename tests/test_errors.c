/* Bad input gets a clear status and a message naming the op, node, shape or option; never
 * a crash (this file also runs under AddressSanitizer in ci/test). */
#include <string.h>

#include "deconv/model.h"
#include "internal.h"
#include "testutil.h"

#define ASSERT_MSG(err_msg, needle)                                                        \
    do {                                                                                   \
        if (!strstr((err_msg), (needle)))                                                  \
            fail_msg("message '%s' does not mention '%s'", (err_msg), (needle));           \
    } while (0)

typedef struct fixture {
    dc_backend *be;
    dc_params *p;
    dc_graph *g;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    dc_error err = {0};
    if (dc_backend_create_cpu(1, &f->be, &err) || dc_params_create(f->be, &f->p) ||
        dc_graph_create(f->p, 2, &f->g))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    dc_graph_free(f->g);
    dc_params_free(f->p);
    dc_backend_free(f->be);
    free(f);
    return 0;
}

static void test_nulls(void **state) {
    (void)state;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, NULL, &err), DC_ERR_ARG);
    assert_int_equal(dc_params_create(NULL, NULL), DC_ERR_ARG);
    assert_int_equal(dc_graph_create(NULL, 4, NULL), DC_ERR_ARG);
    assert_int_equal(dc_conv2d(NULL, 0, 4, 3, 1, 1), -1);
    assert_int_equal(dc_relu(NULL, 0), -1);
    assert_int_equal(dc_graph_forward(NULL, -1), DC_ERR_ARG);
    assert_int_equal(dc_graph_finalize(NULL), DC_ERR_ARG);
    dc_graph_free(NULL);
    dc_params_free(NULL);
    dc_backend_free(NULL);
    dc_optim_free(NULL);
    dc_model_free(NULL);
    assert_int_equal(dc_model_create(NULL, NULL, 1, NULL, &err), DC_ERR_ARG);
    dc_model_spec s;
    assert_int_equal(dc_model_spec_default(&s, "gan", 1, 64, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "gan");
    assert_int_equal(dc_backend_create_from_spec("tpu", 0, (dc_backend **)&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "tpu");
    assert_int_equal(dc_backend_create_from_spec("opencl:x", 0, (dc_backend **)&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "opencl:PLATFORM:DEVICE");
}

static void test_shape_mismatches(void **state) {
    fixture *f = *state;
    dc_graph *g = f->g;
    int a = dc_input(g, "a", 3, 8, 8), b = dc_input(g, "b", 4, 8, 8);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(dc_add(g, a, b), -1);
    ASSERT_MSG(dc_graph_error(g)->msg, "[2, 3, 8, 8]");
    ASSERT_MSG(dc_graph_error(g)->msg, "[2, 4, 8, 8]");
    /* errors are sticky: later calls fail and the first message stays */
    assert_int_equal(dc_relu(g, a), -1);
    assert_int_equal(dc_graph_finalize(g), DC_ERR_SHAPE);
    ASSERT_MSG(dc_graph_error(g)->msg, "add");
}

static void test_zero_and_oversized(void **state) {
    fixture *f = *state;
    assert_int_equal(dc_input(f->g, "x", 0, 8, 8), -1);
    ASSERT_MSG(dc_graph_error(f->g)->msg, "zero");
    dc_graph *g2;
    assert_int_equal(dc_graph_create(f->p, 1, &g2), DC_OK);
    int x = dc_input(g2, "x", 1, 4, 4);
    dc_name(g2, "big");
    assert_int_equal(dc_conv2d(g2, x, 2, 7, 1, 0), -1);
    ASSERT_MSG(dc_graph_error(g2)->msg, "big");
    ASSERT_MSG(dc_graph_error(g2)->msg, "larger");
    dc_graph_free(g2);
    assert_int_equal(dc_graph_create(f->p, 1, &g2), DC_OK);
    x = dc_input(g2, "x", 1, 4, 4);
    assert_int_equal(dc_reshape(g2, x, 3, 2, 2), -1);
    ASSERT_MSG(dc_graph_error(g2)->msg, "16 elements");
    dc_graph_free(g2);
    assert_int_equal(dc_graph_create(f->p, 1, &g2), DC_OK);
    x = dc_input(g2, "x", 1, 4, 4);
    assert_int_equal(dc_maxpool2d(g2, x, 2, 0, 0), -1);
    assert_int_equal(dc_graph_error(g2)->status, DC_ERR_ARG);
    dc_graph_free(g2);
    dc_error err = {0};
    assert_int_equal(dc_graph_create(f->p, 0, &g2), DC_ERR_SHAPE);
    (void)err;
}

static void test_bad_node_ids_and_order(void **state) {
    fixture *f = *state;
    dc_graph *g = f->g;
    assert_int_equal(dc_graph_forward(g, -1), DC_ERR_STATE);
    ASSERT_MSG(dc_graph_error(g)->msg, "finalize");
    assert_int_equal(dc_conv2d(g, 7, 4, 3, 1, 1), -1);
    ASSERT_MSG(dc_graph_error(g)->msg, "does not exist");
}

static void test_runtime_misuse(void **state) {
    fixture *f = *state;
    dc_graph *g = f->g;
    int x = dc_input(g, "x", 1, 4, 4), lab = dc_input_int(g, "labels");
    int h = dc_dense(g, x, 3);
    int loss = dc_softmax_xent_loss(g, h, lab);
    assert_true(loss >= 0);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    float data[32] = {0};
    assert_int_equal(dc_graph_set_input(g, lab, data), DC_ERR_ARG);
    ASSERT_MSG(dc_graph_error(g)->msg, "labels");
    assert_int_equal(dc_graph_set_input(g, x, NULL), DC_ERR_ARG);
    int32_t bad[2] = {1, 3};
    assert_int_equal(dc_graph_set_input_int(g, lab, bad), DC_ERR_ARG);
    ASSERT_MSG(dc_graph_error(g)->msg, "outside [0, 3)");
    assert_int_equal(dc_graph_backward(g, h, DC_RELU_NORMAL), DC_ERR_ARG);
    ASSERT_MSG(dc_graph_error(g)->msg, "not a loss");
    float seed[32] = {0};
    assert_int_equal(dc_graph_backward_from(g, x, seed, DC_RELU_NORMAL), DC_ERR_ARG);
    ASSERT_MSG(dc_graph_error(g)->msg, "require_grad");
    assert_int_equal(dc_graph_read_grad(g, x, seed), DC_ERR_ARG);
    assert_int_equal(dc_graph_require_grad(g, x), DC_ERR_STATE);
}

/* Parameters shared between graphs must keep their shapes. */
static void test_shared_params_mismatch(void **state) {
    fixture *f = *state;
    dc_graph *g = f->g;
    int x = dc_input(g, "x", 32, 4, 4);
    dc_name(g, "enc2");
    assert_true(dc_conv2d(g, x, 8, 3, 1, 1) >= 0);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    dc_graph *g2;
    assert_int_equal(dc_graph_create(f->p, 1, &g2), DC_OK);
    int y = dc_input(g2, "x", 16, 4, 4);
    dc_name(g2, "enc2");
    assert_int_equal(dc_conv2d(g2, y, 8, 3, 1, 1), -1);
    ASSERT_MSG(dc_graph_error(g2)->msg, "conv2d 'enc2': input has 16 channels, weights expect 32");
    dc_graph_free(g2);
    /* a layer the allocated parameters do not have */
    assert_int_equal(dc_graph_create(f->p, 1, &g2), DC_OK);
    y = dc_input(g2, "x", 32, 4, 4);
    dc_name(g2, "enc9");
    assert_int_equal(dc_conv2d(g2, y, 8, 3, 1, 1), -1);
    ASSERT_MSG(dc_graph_error(g2)->msg, "enc9.weight");
    dc_graph_free(g2);
}

static void test_model_spec_errors(void **state) {
    (void)state;
    dc_model_spec s;
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(&s, "complete", 1, 60, &err), DC_OK);
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_SHAPE);
    ASSERT_MSG(err.msg, "--size 60");
    dc_model_spec_default(&s, "complete", 2, 64, &err);
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--channels");
    dc_model_spec_default(&s, "vae", 1, 64, &err);
    s.kernel = 4;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--kernel");
    dc_mask_kind m;
    assert_int_equal(dc_mask_parse("diagonal", &m, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "diagonal");
    assert_int_equal(dc_model_spec_from_json("{\"size\":64}", &s, &err), DC_ERR_FORMAT);
    assert_int_equal(dc_model_spec_from_json("{\"kind\":\"vae\",\"size\":\"x\"}", &s, &err), DC_ERR_FORMAT);
    /* round trip */
    dc_model_spec a, b;
    dc_model_spec_default(&a, "complete", 3, 32, &err);
    a.tied = 1, a.skips = 0; /* a tied decoder takes no skips */
    a.mask = DC_MASK_RANDOM;
    a.noise = 0.25f;
    char *js = dc_model_spec_to_json(&a);
    assert_int_equal(dc_model_spec_from_json(js, &b, &err), DC_OK);
    free(js);
    assert_memory_equal(&a, &b, sizeof a);
}

/* Sizes are checked with overflow-safe arithmetic and the message says what is too big;
 * the largest spec that fits the limits passes (oracle: the sizes worked out by hand). */
static void test_model_size_limits(void **state) {
    (void)state;
    dc_model_spec s;
    dc_error err = {0};
    /* 65536^2 x 1024 values in the first feature map: int arithmetic overflowed here */
    dc_model_spec_default(&s, "complete", 1, 65536, &err);
    s.blocks = 1;
    s.base = 1024;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "model too big");
    ASSERT_MSG(err.msg, "feature map");
    ASSERT_MSG(err.msg, "4398046511104"); /* 65536 * 65536 * 1024 */
    ASSERT_MSG(err.msg, "--size 65536");
    /* the decoder's dense layer: latent 65536 x (1024 << 5 channels x 4 x 4) */
    dc_model_spec_default(&s, "complete", 1, 256, &err);
    s.blocks = 6;
    s.base = 1024;
    s.kernel = 1;
    s.latent = 65536;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "the decoder's dense layer");
    ASSERT_MSG(err.msg, "34359738368"); /* 65536 * 32768 * 16 */
    /* classes and learned latents as huge as a metadata value can make them */
    dc_model_spec_default(&s, "classifier", 1, 28, &err);
    s.classes = 1800000000;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "the classifier's dense layer");
    ASSERT_MSG(err.msg, "--classes 1800000000");
    dc_model_spec_default(&s, "glo", 1, 64, &err);
    s.glo_count = 2000000000;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "learned latents");
    /* size 0 and negative sizes are refused, not replaced */
    dc_model_spec_default(&s, "classifier", 1, 28, &err);
    s.size = 0;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--size 0");
    s.size = -16;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    /* around the limit: a table of 2^31 - 1 values passes the tensor check but not the
     * parameter total (the rest of the model comes on top); 2^31 values fail the tensor */
    dc_model_spec_default(&s, "glo", 1, 64, &err);
    s.latent = 1;
    s.glo_count = 1000000;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_OK);
    s.glo_count = 2147483647;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "the parameters");
    s.latent = 2;
    s.glo_count = 1073741824; /* 2^31 values */
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "the table of learned latents");
}

/* The kind table: names and parsing agree, every kind's spec survives its JSON, and the
 * JSON keeps the text older checkpoints hold (written out by hand here). */
static void test_model_kinds(void **state) {
    (void)state;
    dc_error err = {0};
    dc_model_spec a, b;
    for (int k = DC_MODEL_NONE + 1; k < DC_MODEL_KIND_COUNT; k++) {
        const dc_model_kind_info *info = dc_model_kind_get((dc_model_kind)k);
        assert_non_null(info);
        assert_int_equal(info->kind, k);
        assert_string_equal(dc_model_kind_name((dc_model_kind)k), info->name);
        dc_model_kind parsed = DC_MODEL_NONE;
        assert_int_equal(dc_model_kind_parse(info->name, &parsed, &err), DC_OK);
        assert_int_equal(parsed, k);
        assert_int_equal(dc_model_spec_defaults(&a, (dc_model_kind)k, 1, 32, &err), DC_OK);
        a.glo_count = 7;
        char *js = dc_model_spec_to_json(&a);
        assert_non_null(js);
        assert_int_equal(dc_model_spec_from_json(js, &b, &err), DC_OK);
        free(js);
        assert_memory_equal(&a, &b, sizeof a);
    }
    assert_null(dc_model_kind_get(DC_MODEL_NONE));
    assert_null(dc_model_kind_get(DC_MODEL_KIND_COUNT));
    assert_string_equal(dc_model_kind_name(DC_MODEL_NONE), "none");
    assert_int_equal(dc_model_spec_defaults(&a, DC_MODEL_NONE, 1, 32, &err), DC_ERR_ARG);
    dc_model_kind parsed;
    assert_int_equal(dc_model_kind_parse("gan", &parsed, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "use complete, vae, glo, classifier or diffusion");
    /* the flags the commands branch on */
    assert_true(dc_model_kind_has(DC_MODEL_COMPLETE, DC_KIND_ENCODER | DC_KIND_DECODER));
    assert_true(dc_model_kind_has(DC_MODEL_GLO, DC_KIND_LEARNED_LATENTS));
    assert_false(dc_model_kind_has(DC_MODEL_GLO, DC_KIND_ENCODER));
    assert_false(dc_model_kind_has(DC_MODEL_CLASSIFIER, DC_KIND_DECODER));
    assert_true(dc_model_kind_has(DC_MODEL_DIFFUSION, DC_KIND_FLOW));
    assert_false(dc_model_kind_has(DC_MODEL_DIFFUSION, DC_KIND_DECODER));
    assert_false(dc_model_kind_has(DC_MODEL_NONE, 0));

    assert_int_equal(dc_model_spec_default(&a, "complete", 1, 64, &err), DC_OK);
    char *js = dc_model_spec_to_json(&a);
    assert_string_equal(js, "{\"kind\":\"complete\",\"channels\":1,\"size\":64,\"base\":32,"
                            "\"blocks\":3,\"kernel\":3,\"latent\":128,\"tied\":0,\"noise\":1,"
                            "\"mask\":\"mix\",\"visible_weight\":0.100000001,\"loss_full\":0,"
                            "\"loss\":\"mse\",\"code\":\"noise\",\"bottleneck\":\"dense\","
                            "\"feedback\":0.600000024,\"hole_input\":1,\"skips\":1,\"unroll\":2,\"beta\":1,\"glo_count\":0,\"classes\":10,"
                            "\"batchnorm\":0,\"dropout\":0}");
    free(js);
    /* a completion model's spec from before the loss, code, bottleneck and feedback keys
     * (and the mix mask) reads as the model it was: mse, noise code, dense, no feedback */
    const char *before = "{\"kind\":\"complete\",\"channels\":1,\"size\":64,\"base\":32,"
                         "\"blocks\":3,\"kernel\":3,\"latent\":128,\"tied\":0,\"noise\":1,"
                         "\"mask\":\"bottom\",\"visible_weight\":0.100000001,\"loss_full\":0,"
                         "\"beta\":1,\"glo_count\":0,\"classes\":10,\"batchnorm\":0,"
                         "\"dropout\":0}";
    assert_int_equal(dc_model_spec_from_json(before, &b, &err), DC_OK);
    assert_int_equal(b.mask, DC_MASK_BOTTOM);
    assert_int_equal(b.loss, DC_LOSS_MSE);
    assert_int_equal(b.code, DC_CODE_NOISE);
    assert_int_equal(b.bottleneck, DC_BOTTLENECK_DENSE);
    assert_true(b.feedback == 0.0f);
    assert_int_equal(b.hole_input, 0); /* and before the hole input: the image alone */
    assert_int_equal(b.unroll, 1);     /* and before unrolled training: one pass */
    assert_int_equal(b.skips, 0);      /* and before the skips: none */
    /* the new options: names, refusals that name the option */
    b.loss = DC_LOSS_BCE, b.code = DC_CODE_VAE, b.bottleneck = DC_BOTTLENECK_CONV, b.feedback = 0.5f;
    b.hole_input = 1, b.unroll = 3, b.skips = 1;
    js = dc_model_spec_to_json(&b);
    assert_int_equal(dc_model_spec_from_json(js, &a, &err), DC_OK);
    free(js);
    assert_memory_equal(&a, &b, sizeof a);
    b.latent = 100; /* not a multiple of 8 x 8 */
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_SHAPE);
    ASSERT_MSG(err.msg, "--bottleneck conv");
    b.latent = 128, b.feedback = 1.5f;
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--feedback");
    b.feedback = 0.5f, b.hole_input = 2;
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "hole_input 2");
    b.hole_input = 1, b.unroll = 0;
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--unroll 0");
    b.unroll = DC_MAX_UNROLL + 1;
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--unroll 5");
    b.unroll = 1, b.tied = 1; /* skips and tied kernels do not fit together */
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--skips with --tied");
    b.tied = 0, b.skips = 2;
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "skips 2");
    b.skips = 1;
    assert_int_equal(dc_model_spec_default(&b, "vae", 1, 64, &err), DC_OK);
    b.hole_input = 1; /* the mask input is the completion model's */
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "hole input");
    b.hole_input = 0, b.unroll = 2; /* and so are the unrolled passes */
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--unroll is an option of the complete model");
    b.unroll = 1, b.skips = 1; /* and the skips */
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--skips is an option of the complete model");
    assert_int_equal(dc_model_spec_default(&b, "glo", 1, 64, &err), DC_OK);
    b.loss = DC_LOSS_BCE;
    assert_int_equal(dc_model_spec_check(&b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "--loss bce");
    dc_loss_kind lk;
    assert_int_equal(dc_loss_kind_parse("l1", &lk, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "use mse or bce");
    /* an older spec without the later keys: the kind's defaults fill them */
    const char *older = "{\"kind\":\"glo\",\"size\":32,\"glo_count\":3}";
    assert_int_equal(dc_model_spec_from_json(older, &b, &err), DC_OK);
    assert_int_equal(b.kind, DC_MODEL_GLO);
    assert_int_equal(b.latent, 32);
    assert_int_equal(b.glo_count, 3);
    assert_int_equal(b.size, 32);
    /* not an object, a kind that is not a string, an escaped quote in the kind */
    assert_int_equal(dc_model_spec_from_json("[1, 2]", &b, &err), DC_ERR_FORMAT);
    assert_int_equal(dc_model_spec_from_json("{\"kind\":3}", &b, &err), DC_ERR_FORMAT);
    assert_int_equal(dc_model_spec_from_json("{\"kind\":\"vae\\\"\"}", &b, &err), DC_ERR_ARG);
    ASSERT_MSG(err.msg, "vae\"");
}

/* The primitive list's tables: the CPU backend fills every required entry; the profiling
 * wrapper counts each call with its variant and GEMM FLOPs, refuses a second profile, and a
 * backend freed while profiled releases the profile (leak-checked under ASan). */
static void test_backend_ops_and_profile(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be = NULL;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    assert_null(dc_backend_ops_missing(be->ops));
    assert_string_equal(dc_backend_prim_name(DC_PRIM_ID_gemm), "gemm");
    assert_null(dc_backend_prim_name(DC_PRIM_COUNT));
    dc_buffer *buf = NULL;
    assert_int_equal(DC_BE(be, alloc, 64 * sizeof(float), &buf), DC_OK);
    dc_ptr a = {buf, 0}, b = {buf, 16}, c = {buf, 32};
    assert_int_equal(dc_backend_profile_start(be, NULL), DC_OK);
    assert_int_equal(dc_backend_profile_start(be, NULL), DC_ERR_STATE);
    assert_int_equal(DC_BE(be, fill, a, 64, 1.0f), DC_OK);
    assert_int_equal(DC_BE(be, gemm, 0, 1, 2, 3, 4, 1.0f, a, 4, b, 4, 0.0f, c, 3), DC_OK);
    assert_int_equal(DC_BE(be, gemm, 0, 1, 2, 3, 4, 1.0f, a, 4, b, 4, 0.0f, c, 3), DC_OK);
    assert_int_equal(DC_BE(be, gemm, 1, 0, 4, 3, 2, 1.0f, a, 4, b, 3, 0.0f, c, 3), DC_OK);
    dc_prim_profile *rows = NULL;
    int n = 0;
    assert_int_equal(dc_backend_profile_stop(be, &rows, &n), DC_OK);
    assert_int_equal(n, 3);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(rows[i].name, "fill")) {
            assert_int_equal(rows[i].calls, 1);
            assert_true(rows[i].flops == 0.0);
            seen |= 1;
        } else if (!strcmp(rows[i].name, "gemm") && !strcmp(rows[i].variant, "NT")) {
            assert_int_equal(rows[i].calls, 2);
            assert_true(rows[i].flops == 2 * 2.0 * 2 * 3 * 4);
            seen |= 2;
        } else if (!strcmp(rows[i].name, "gemm") && !strcmp(rows[i].variant, "TN")) {
            assert_int_equal(rows[i].calls, 1);
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    free(rows);
    /* the real table is back; the computed values are the real primitive's */
    float host[6];
    assert_int_equal(DC_BE(be, read, c, host, sizeof host), DC_OK);
    for (int i = 0; i < 6; i++) assert_true(host[i] == 2.0f);
    assert_int_equal(dc_backend_profile_stop(be, NULL, NULL), DC_ERR_STATE);
    assert_int_equal(dc_backend_profile_start(be, NULL), DC_OK);
    DC_BE(be, free, buf);
    dc_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_backend_ops_and_profile),
        cmocka_unit_test_setup_teardown(test_shape_mismatches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_and_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_node_ids_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_params_mismatch, setup, teardown),
        cmocka_unit_test(test_model_spec_errors),
        cmocka_unit_test(test_model_size_limits),
        cmocka_unit_test(test_model_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
