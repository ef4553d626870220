/* Weights in and out: safetensors checkpoints, .npz and ONNX export.
 *
 * Proof with other tools (tests/io/check_export.py, tests/io/run_onnx.js): for each model
 * kind at a small size, Python reads the safetensors file with its own header parser and
 * numpy.load reads the .npz, both bit-exact against dc_params; onnx.checker accepts the
 * ONNX file; onnxruntime-node runs it and PyTorch rebuilds the network from the exported
 * arrays, both matching deconv's eval-mode forward within 1e-4 (relative to the largest
 * output value).
 *
 * Also: save/load round trips (forward bit-identical, optimizer state and step count),
 * every rejection of a malformed or mismatched checkpoint with its own message and the
 * model left untouched, atomic writes, and the `deconv export` command. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deconv/complete.h"
#include "deconv/data.h"
#include "deconv/io.h"
#include "deconv/model.h"
#include "testutil.h"

#define B 2 /* batch of the reference forward passes */

static dc_backend *cpu(void) {
    dc_backend *be = NULL;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    return be;
}

/* "dir/name" in a ring of buffers: valid for the next 63 calls. */
static char *path_in(const char *dir, const char *name) {
    static char buf[64][1024];
    static int slot;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, name);
    char *p = buf[slot++ & 63];
    memcpy(p, tmp, sizeof tmp);
    return p;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)len + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return d;
}

static void rm_rf(const char *dir) { tu_system("rm -rf '%s'", dir); }

/* ------------------------------------------------------------- model setup */
typedef struct io_case {
    const char *label, *kind;
    int channels, kernel, tied, glo_count, classes, batchnorm;
    int no_cond;   /* diffusion: without the mask-conditioned input (cond_mask 0, older runs) */
    int attention; /* diffusion: the self-attention block after the middle ResBlock */
    int hole;      /* complete: the mask of the hidden pixels as a second input (the
                    * default; 0: runs from before it) */
    int skips;     /* complete: U-Net skips from the encoder to the decoder */
} io_case;

/* diffusion: `classes` are the conditioning classes (0: unconditional) */
static const io_case cases[] = {
    {"complete", "complete", 1, 3, 0, 0, 0, 0, 0, 0, 1, 0},
    {"complete --tied", "complete", 3, 3, 1, 0, 0, 0, 0, 0, 1, 0},
    {"vae", "vae", 1, 5, 0, 0, 0, 0, 0, 0, 0, 0},
    {"glo", "glo", 3, 3, 0, 5, 0, 0, 0, 0, 0, 0},
    {"classifier + batchnorm", "classifier", 3, 3, 0, 0, 3, 1, 0, 0, 0, 0},
    {"diffusion", "diffusion", 1, 3, 0, 0, 0, 0, 0, 0, 0, 0},
    {"diffusion, 3 classes", "diffusion", 3, 3, 0, 0, 3, 0, 0, 0, 0, 0},
    {"diffusion, no cond input", "diffusion", 1, 3, 0, 0, 0, 0, 1, 0, 0, 0},
    {"diffusion --attention, 3 classes", "diffusion", 3, 3, 0, 0, 3, 0, 0, 1, 0, 0},
    {"complete --no-hole-input", "complete", 1, 3, 0, 0, 0, 0, 0, 0, 0, 0},
    {"complete --tied --no-hole-input", "complete", 3, 3, 1, 0, 0, 0, 0, 0, 0, 0},
    {"complete --skips", "complete", 3, 3, 0, 0, 0, 0, 0, 0, 1, 1},
};

static void make_spec(const io_case *c, dc_model_spec *s) {
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(s, c->kind, c->channels, 16, &err), DC_OK);
    s->base = 4;
    s->blocks = 2;
    s->latent = 8;
    s->kernel = c->kernel;
    s->tied = c->tied;
    if (c->glo_count) s->glo_count = c->glo_count;
    if (c->classes) s->classes = c->classes;
    s->batchnorm = c->batchnorm;
    s->hole_input = c->hole;
    s->skips = c->skips;
    if (s->kind == DC_MODEL_DIFFUSION) {
        /* base 6: groups of 1 to 3 channels (6, 12 and the concatenations' 18, 24) */
        s->base = 6;
        s->cond_classes = c->classes;
        if (c->no_cond) s->cond_mask = 0.0f;
        s->attention = c->attention;
    }
    assert_int_equal(dc_model_spec_check(s, &err), DC_OK);
}

static dc_model *make_model(dc_backend *be, const dc_model_spec *s, int batch, uint64_t seed) {
    dc_model *m = NULL;
    dc_error err = {0};
    if (dc_model_create(be, s, batch, &m, &err) != DC_OK) fail_msg("model: %s", err.msg);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    /* Biases and batch-norm parameters start at 0/1: make them random so that a layout or
     * naming mistake cannot hide behind a constant. */
    for (int i = 0; i < dc_params_count(m->params); i++) {
        dc_param *q = dc_params_get(m->params, i);
        if (q->ndim != 1) continue;
        float *v = malloc(q->numel * sizeof(float));
        int var = strstr(q->name, "running_var") != NULL;
        tu_fill_uniform(v, q->numel, &rng, var ? 0.5f : -0.3f, var ? 1.5f : 0.3f);
        assert_int_equal(dc_params_write(m->params, i, v), DC_OK);
        free(v);
    }
    /* The attention block's output is one path among many to the velocity: made 8 times
     * larger, a mistake in it (the scores' scale, a transposed product) shows above 1e-4. */
    const int proj = dc_params_find(m->params, "mid_attn_proj.weight");
    if (proj >= 0) {
        dc_param *q = dc_params_get(m->params, proj);
        float *v = malloc(q->numel * sizeof(float));
        assert_int_equal(dc_params_read(m->params, proj, v), DC_OK);
        for (size_t j = 0; j < q->numel; j++)
            v[j] *= 8.0f;
        assert_int_equal(dc_params_write(m->params, proj, v), DC_OK);
        free(v);
    }
    return m;
}

static void meta_for(const dc_model *m, dc_meta *meta) {
    char *js = dc_model_spec_to_json(&m->spec);
    assert_non_null(js);
    assert_int_equal(dc_meta_set(meta, "model", js), DC_OK);
    assert_int_equal(dc_meta_set(meta, "epoch", "3"), DC_OK);
    free(js);
}

static float *read_all_params(dc_params *p, size_t *total) {
    size_t n = 0;
    for (int i = 0; i < dc_params_count(p); i++) n += dc_params_get(p, i)->numel;
    float *all = malloc((n ? n : 1) * sizeof(float)), *w = all;
    for (int i = 0; i < dc_params_count(p); i++) {
        assert_int_equal(dc_params_read(p, i, w), DC_OK);
        w += dc_params_get(p, i)->numel;
    }
    *total = n;
    return all;
}

/* ------------------------------------------------------------------- meta */
static void test_meta(void **state) {
    (void)state;
    dc_meta m = {0};
    assert_int_equal(dc_meta_set(&m, "model", "{\"kind\":\"vae\"}"), DC_OK);
    assert_int_equal(dc_meta_set(&m, "epoch", "1"), DC_OK);
    assert_int_equal(dc_meta_set(&m, "epoch", "2"), DC_OK); /* replaces */
    assert_int_equal(m.n, 2);
    assert_string_equal(dc_meta_get(&m, "epoch"), "2");
    assert_null(dc_meta_get(&m, "missing"));
    char longkey[64];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[63] = 0;
    assert_int_equal(dc_meta_set(&m, longkey, "x"), DC_ERR_ARG);
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        dc_status s = dc_meta_set(&m, k, "v");
        assert_int_equal(s, i < 30 ? DC_OK : DC_ERR_ARG);
    }
    dc_meta_clear(&m);
    assert_int_equal(m.n, 0);
    dc_meta_clear(&m);
    dc_meta_clear(NULL);
    assert_null(dc_meta_get(NULL, "x"));
}

/* --------------------------------------------- other tools read our files */
static void write_reference(const char *dir, dc_params *p) {
    FILE *txt = fopen(path_in(dir, "params.txt"), "w");
    FILE *bin = fopen(path_in(dir, "params.f32"), "wb");
    assert_non_null(txt);
    assert_non_null(bin);
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        float *v = malloc(q->numel * sizeof(float));
        assert_int_equal(dc_params_read(p, i, v), DC_OK);
        assert_int_equal(fwrite(v, sizeof(float), q->numel, bin), q->numel);
        free(v);
        fprintf(txt, "%s %d", q->name, q->ndim);
        for (int d = 0; d < q->ndim; d++) fprintf(txt, " %d", q->shape[d]);
        fprintf(txt, "\n");
    }
    fclose(txt);
    fclose(bin);
}

typedef struct io_tensor {
    const char *name;
    const void *data;
    int ndim;
    int shape[4];
    int int64; /* the data are int64 (class labels), not float32 */
} io_tensor;

static size_t io_numel(const io_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static void json_list(FILE *f, const char *dir, const char *prefix, const io_tensor *t, int n) {
    for (int i = 0; i < n; i++) {
        char file[128];
        snprintf(file, sizeof file, "%s_%s.%s", prefix, t[i].name, t[i].int64 ? "i64" : "f32");
        write_file(path_in(dir, file), t[i].data, io_numel(&t[i]) * (t[i].int64 ? 8 : sizeof(float)));
        fprintf(f, "%s{\"name\": \"%s\", \"file\": \"%s\", \"dtype\": \"%s\", \"shape\": [",
                i ? ", " : "", t[i].name, file, t[i].int64 ? "int64" : "float32");
        for (int d = 0; d < t[i].ndim; d++) fprintf(f, d ? ", %d" : "%d", t[i].shape[d]);
        fprintf(f, "]}");
    }
}

static void write_manifest(const char *dir, const dc_model *m, const io_tensor *in, int nin,
                           const io_tensor *out, int nout) {
    char *js = dc_model_spec_to_json(&m->spec);
    FILE *f = fopen(path_in(dir, "io.json"), "w");
    assert_non_null(f);
    fprintf(f, "{\"spec\": %s,\n \"inputs\": [", js);
    json_list(f, dir, "in", in, nin);
    fprintf(f, "],\n \"outputs\": [");
    json_list(f, dir, "out", out, nout);
    fprintf(f, "]}\n");
    fclose(f);
    free(js);
}

/* deconv's own eval-mode forward on fixed inputs, written as the reference. */
static void reference_forward(const char *dir, dc_model *m) {
    const dc_model_spec *s = &m->spec;
    const int C = s->channels, S = s->size, L = s->latent;
    dc_rng rng;
    dc_rng_seed(&rng, 99);
    dc_graph *g = m->g;
    dc_graph_set_train(g, 0);
    dc_graph_set_seed(g, 12345);
    if (s->kind == DC_MODEL_COMPLETE) {
        float *img = malloc(sizeof(float) * B * C * S * S), *code = malloc(sizeof(float) * B * L);
        float *lat = malloc(sizeof(float) * B * L), *out = malloc(sizeof(float) * B * C * S * S);
        tu_fill_uniform(img, (size_t)B * C * S * S, &rng, -1, 1);
        assert_int_equal(dc_graph_set_input(g, m->x, img), DC_OK);
        /* the hole input: a different mask per image */
        float *hole = malloc(sizeof(float) * B * S * S);
        for (int n = 0; n < B; n++)
            dc_mask_make(n % 3 == 0 ? DC_MASK_FULL : DC_MASK_RANDOM, S, S, &rng, hole + (size_t)n * S * S);
        if (m->hole >= 0) assert_int_equal(dc_model_set_hole(m, hole, 1, NULL), DC_OK);
        assert_int_equal(dc_graph_forward(g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(g, m->code, code), DC_OK);
        assert_int_equal(dc_graph_read(g, m->latent, lat), DC_OK);
        assert_int_equal(dc_graph_read(g, m->out, out), DC_OK);
        /* the noise deconv drew (std 1 here): exported as the "noise" input */
        double mag = 0;
        for (int i = 0; i < B * L; i++) {
            lat[i] -= code[i];
            mag += fabs(lat[i]);
        }
        assert_true(mag > 0.1 * B * L); /* real noise, not zeros */
        io_tensor in[3] = {{"image", img, 4, {B, C, S, S}, 0}};
        int nin = 1;
        if (m->hole >= 0) in[nin++] = (io_tensor){"hole", hole, 4, {B, 1, S, S}, 0};
        in[nin++] = (io_tensor){"noise", lat, 2, {B, L}, 0};
        io_tensor o[1] = {{"output", out, 4, {B, C, S, S}, 0}};
        write_manifest(dir, m, in, nin, o, 1);
        free(img), free(hole), free(code), free(lat), free(out);
    } else if (s->kind == DC_MODEL_CLASSIFIER) {
        const int K = s->classes;
        float *img = malloc(sizeof(float) * B * C * S * S), *logits = malloc(sizeof(float) * B * K);
        float *prob = malloc(sizeof(float) * B * K);
        tu_fill_uniform(img, (size_t)B * C * S * S, &rng, -1, 1);
        assert_int_equal(dc_graph_set_input(g, m->x, img), DC_OK);
        assert_int_equal(dc_graph_forward(g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(g, m->out, logits), DC_OK);
        for (int n = 0; n < B; n++) {
            double mx = logits[n * K], sum = 0;
            for (int k = 1; k < K; k++) mx = fmax(mx, logits[n * K + k]);
            for (int k = 0; k < K; k++) sum += exp(logits[n * K + k] - mx);
            for (int k = 0; k < K; k++) prob[n * K + k] = (float)(exp(logits[n * K + k] - mx) / sum);
        }
        io_tensor in[1] = {{"image", img, 4, {B, C, S, S}, 0}};
        io_tensor o[2] = {{"probabilities", prob, 2, {B, K}, 0}, {"logits", logits, 2, {B, K}, 0}};
        write_manifest(dir, m, in, 1, o, 2);
        free(img), free(logits), free(prob);
    } else if (s->kind == DC_MODEL_DIFFUSION) {
        /* the denoiser on noised images at different times, each image its own class (the
         * null class, row cond_classes, included) */
        float *x = malloc(sizeof(float) * B * C * S * S), *t = malloc(sizeof(float) * B);
        float *v = malloc(sizeof(float) * B * C * S * S);
        float aug[B * DC_AUGMENT_PARAMS]; /* the augmentation input: any values, not only zeros */
        int32_t cls[B];
        int64_t cls64[B];
        tu_fill_uniform(x, (size_t)B * C * S * S, &rng, -2, 2);
        tu_fill_uniform(aug, (size_t)B * DC_AUGMENT_PARAMS, &rng, -1, 1);
        for (int n = 0; n < B; n++) {
            t[n] = (float)(n + 1) / (B + 1);
            cls[n] = s->cond_classes > 0 ? (n == B - 1 ? s->cond_classes : n % s->cond_classes) : 0;
            cls64[n] = cls[n];
        }
        assert_int_equal(dc_graph_set_input(g, m->x, x), DC_OK);
        assert_int_equal(dc_graph_set_input(g, m->time, t), DC_OK);
        assert_int_equal(dc_graph_set_input(g, m->aug, aug), DC_OK);
        if (s->cond_classes > 0) assert_int_equal(dc_graph_set_input_int(g, m->labels, cls), DC_OK);
        /* the mask-conditioned denoiser's known pixels: a different mask per image */
        float *cond = malloc(sizeof(float) * B * (C + 1) * S * S);
        if (m->cond >= 0) {
            float *img = malloc(sizeof(float) * C * S * S), *mask = malloc(sizeof(float) * S * S);
            for (int n = 0; n < B; n++) {
                tu_fill_uniform(img, (size_t)C * S * S, &rng, -1, 1);
                dc_mask_make(n % 3 == 0 ? DC_MASK_FULL : DC_MASK_RANDOM, S, S, &rng, mask);
                dc_flow_cond_fill(img, mask, C, S, cond + (size_t)n * (C + 1) * S * S);
            }
            free(img), free(mask);
            assert_int_equal(dc_graph_set_input(g, m->cond, cond), DC_OK);
        }
        assert_int_equal(dc_graph_forward(g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(g, m->out, v), DC_OK);
        /* the ONNX inputs in the graph's order: x, t, aug, class (with classes), cond */
        io_tensor in[5] = {{"x", x, 4, {B, C, S, S}, 0},
                           {"t", t, 2, {B, 1}, 0},
                           {"aug", aug, 2, {B, DC_AUGMENT_PARAMS}, 0}};
        int n_in = 3;
        if (s->cond_classes > 0) in[n_in++] = (io_tensor){"class", cls64, 1, {B}, 1};
        if (m->cond >= 0) in[n_in++] = (io_tensor){"cond", cond, 4, {B, C + 1, S, S}, 0};
        io_tensor o[1] = {{"velocity", v, 4, {B, C, S, S}, 0}};
        write_manifest(dir, m, in, n_in, o, 1);
        free(x), free(t), free(v), free(cond);
    } else { /* vae, glo: the decoder from z */
        dc_model *dec = NULL;
        dc_error err = {0};
        if (dc_model_create_shared(m, B, 1, &dec, &err) != DC_OK) fail_msg("decoder: %s", err.msg);
        float *z = malloc(sizeof(float) * B * L), *out = malloc(sizeof(float) * B * C * S * S);
        for (int i = 0; i < B * L; i++) z[i] = dc_rng_normal(&rng);
        dc_graph_set_train(dec->g, 0);
        assert_int_equal(dc_graph_set_input(dec->g, dec->z_in, z), DC_OK);
        assert_int_equal(dc_graph_forward(dec->g, dec->out), DC_OK);
        assert_int_equal(dc_graph_read(dec->g, dec->out, out), DC_OK);
        io_tensor in[1] = {{"z", z, 2, {B, L}, 0}};
        io_tensor o[1] = {{"output", out, 4, {B, C, S, S}, 0}};
        write_manifest(dir, m, in, 1, o, 1);
        free(z), free(out);
        dc_model_free(dec);
    }
}

/* Where onnxruntime-node is: $DECONV_NODE_MODULES, else the ci/setup install. */
static const char *node_modules(char *buf, size_t cap) {
    const char *e = getenv("DECONV_NODE_MODULES");
    if (e && *e) return e;
    snprintf(buf, cap, "%s/build/npm/node_modules", tu_source_dir());
    return buf;
}

static int run_tool(const char *what, int rc) {
    if (rc == 77) return 77;
    if (rc != 0) fail_msg("%s failed (exit %d): see its output above", what, rc);
    return 0;
}

static void export_case(const io_case *c) {
    print_message("[ model    ] %s\n", c->label);
    dc_backend *be = cpu();
    dc_model_spec spec;
    make_spec(c, &spec);
    dc_model *m = make_model(be, &spec, B, 1000 + (uint64_t)(c - cases));
    char *dir = tu_tmpdir("io");
    assert_non_null(dir);
    dc_error err = {0};
    dc_meta meta = {0};
    meta_for(m, &meta);
    if (dc_checkpoint_save(path_in(dir, "model.safetensors"), m->params, NULL, &meta, &err) != DC_OK ||
        dc_export_npz(path_in(dir, "model.npz"), m->params, &err) != DC_OK ||
        dc_export_onnx(path_in(dir, "model.onnx"), m, &err) != DC_OK)
        fail_msg("%s: %s", c->label, err.msg);
    dc_meta_clear(&meta);
    write_reference(dir, m->params);
    reference_forward(dir, m);

    const char *py = tu_python();
    if (!py) TU_SKIP_OR_FAIL("/usr/bin/python3 not found");
    int rc = run_tool("check_export.py",
                      tu_system("%s %s/tests/io/check_export.py %s", py, tu_source_dir(), dir));
    if (rc == 77) TU_SKIP_OR_FAIL("python3 lacks numpy, onnx or torch (see above)");

    char nm[1024];
    if (tu_system("command -v node >/dev/null") != 0) TU_SKIP_OR_FAIL("node not found (apt-get install nodejs)");
    rc = run_tool("run_onnx.js", tu_system("NODE_PATH='%s' node %s/tests/io/run_onnx.js %s",
                                           node_modules(nm, sizeof nm), tu_source_dir(), dir));
    if (rc == 77) TU_SKIP_OR_FAIL("onnxruntime-node not installed: run ci/setup");
    rm_rf(dir);
    free(dir);
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_export_complete(void **state) { (void)state, export_case(&cases[0]); }
static void test_export_complete_tied(void **state) { (void)state, export_case(&cases[1]); }
static void test_export_vae(void **state) { (void)state, export_case(&cases[2]); }
static void test_export_glo(void **state) { (void)state, export_case(&cases[3]); }
static void test_export_classifier(void **state) { (void)state, export_case(&cases[4]); }
static void test_export_diffusion(void **state) { (void)state, export_case(&cases[5]); }
static void test_export_diffusion_classes(void **state) { (void)state, export_case(&cases[6]); }
static void test_export_diffusion_no_cond(void **state) { (void)state, export_case(&cases[7]); }
static void test_export_diffusion_attn(void **state) { (void)state, export_case(&cases[8]); }
static void test_export_complete_no_hole(void **state) { (void)state, export_case(&cases[9]); }
static void test_export_complete_tied_no_hole(void **state) { (void)state, export_case(&cases[10]); }
static void test_export_complete_skips(void **state) { (void)state, export_case(&cases[11]); }

/* -------------------------------------------------------------- round trips */
static void forward_out(dc_model *m, const float *x, float *out, size_t n) {
    dc_graph_set_train(m->g, 0);
    dc_graph_set_seed(m->g, 7);
    assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
    assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
    assert_int_equal(dc_graph_read(m->g, m->out, out), DC_OK);
    (void)n;
}

static void test_roundtrip_forward(void **state) {
    (void)state;
    dc_backend *be = cpu();
    for (int ci = 0; ci < 5; ci += 4) { /* complete and classifier (batch-norm state) */
        dc_model_spec spec;
        make_spec(&cases[ci], &spec);
        dc_model *a = make_model(be, &spec, B, 1), *b = make_model(be, &spec, B, 2);
        char *dir = tu_tmpdir("io-rt");
        const char *file = path_in(dir, "model.safetensors");
        dc_error err = {0};
        dc_meta meta = {0}, got = {0};
        meta_for(a, &meta);
        assert_int_equal(dc_checkpoint_save(file, a->params, NULL, &meta, &err), DC_OK);
        /* the caller states what it expects: same kind loads */
        char *js = dc_model_spec_to_json(&spec);
        assert_int_equal(dc_meta_set(&got, "model", js), DC_OK);
        free(js);
        if (dc_checkpoint_load(file, b->params, NULL, &got, &err) != DC_OK) fail_msg("%s", err.msg);
        assert_string_equal(dc_meta_get(&got, "epoch"), "3");
        assert_string_equal(dc_meta_get(&got, "format"), "deconv");
        assert_string_equal(dc_meta_get(&got, "version"), DECONV_VERSION);
        size_t na, nb;
        float *pa = read_all_params(a->params, &na), *pb = read_all_params(b->params, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(pa, pb, na * sizeof(float));
        const size_t nin = (size_t)B * spec.channels * spec.size * spec.size;
        float *x = malloc(nin * sizeof(float)), *ya = malloc(nin * sizeof(float) * 4),
              *yb = malloc(nin * sizeof(float) * 4);
        dc_rng rng;
        dc_rng_seed(&rng, 5);
        tu_fill_uniform(x, nin, &rng, -1, 1);
        int shape[4];
        int nd = dc_graph_node_shape(a->g, a->out, shape);
        size_t nout = dc_shape_numel(nd, shape);
        forward_out(a, x, ya, nout);
        forward_out(b, x, yb, nout);
        assert_memory_equal(ya, yb, nout * sizeof(float));
        /* read_meta alone gives the same metadata */
        dc_meta only = {0};
        assert_int_equal(dc_checkpoint_read_meta(file, &only, &err), DC_OK);
        assert_string_equal(dc_meta_get(&only, "model"), dc_meta_get(&meta, "model"));
        dc_meta_clear(&only);
        free(x), free(ya), free(yb), free(pa), free(pb);
        dc_meta_clear(&meta);
        dc_meta_clear(&got);
        rm_rf(dir);
        free(dir);
        dc_model_free(a);
        dc_model_free(b);
    }
    dc_backend_free(be);
}

static void train_step(dc_model *m, dc_optim *o, uint64_t seed) {
    const dc_model_spec *s = &m->spec;
    const size_t nin = (size_t)B * s->channels * s->size * s->size;
    float *x = malloc(nin * sizeof(float));
    int32_t labels[B];
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    tu_fill_uniform(x, nin, &rng, -1, 1);
    for (int i = 0; i < B; i++) labels[i] = (int32_t)dc_rng_below(&rng, (uint32_t)s->classes);
    dc_graph_set_train(m->g, 1);
    dc_graph_set_seed(m->g, seed);
    assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
    assert_int_equal(dc_graph_set_input_int(m->g, m->labels, labels), DC_OK);
    assert_int_equal(dc_params_zero_grad(m->params), DC_OK);
    assert_int_equal(dc_graph_forward(m->g, -1), DC_OK);
    assert_int_equal(dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL), DC_OK);
    assert_int_equal(dc_optim_step(o), DC_OK);
    free(x);
}

static void test_roundtrip_optimizer(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model_spec spec;
    make_spec(&cases[4], &spec);
    dc_model *a = make_model(be, &spec, B, 1), *b = make_model(be, &spec, B, 2);
    dc_optim_config cfg;
    dc_optim_config_default(&cfg, DC_OPTIM_ADAM);
    dc_optim *oa = NULL, *ob = NULL;
    assert_int_equal(dc_optim_create(a->params, &cfg, &oa), DC_OK);
    assert_int_equal(dc_optim_create(b->params, &cfg, &ob), DC_OK);
    train_step(a, oa, 11);
    train_step(a, oa, 12);
    char *dir = tu_tmpdir("io-opt");
    const char *file = path_in(dir, "ckpt.safetensors");
    dc_error err = {0};
    dc_meta meta = {0};
    meta_for(a, &meta);
    assert_int_equal(dc_checkpoint_save(file, a->params, oa, &meta, &err), DC_OK);
    if (dc_checkpoint_load(file, b->params, ob, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_int_equal(dc_optim_steps(ob), 2);
    const size_t total = dc_params_total(a->params);
    float *ma = malloc(total * 4), *va = malloc(total * 4), *mb = malloc(total * 4), *vb = malloc(total * 4);
    assert_int_equal(dc_optim_read_state(oa, ma, va), DC_OK);
    assert_int_equal(dc_optim_read_state(ob, mb, vb), DC_OK);
    for (int i = 0; i < dc_params_count(a->params); i++) { /* compare the slices, not the padding */
        dc_param *q = dc_params_get(a->params, i);
        assert_memory_equal(ma + q->off, mb + q->off, q->numel * 4);
        assert_memory_equal(va + q->off, vb + q->off, q->numel * 4);
    }
    /* one more step on both: identical parameters */
    train_step(a, oa, 13);
    train_step(b, ob, 13);
    size_t na, nb;
    float *pa = read_all_params(a->params, &na), *pb = read_all_params(b->params, &nb);
    assert_memory_equal(pa, pb, na * sizeof(float));

    /* without an optimizer the optimizer tensors are ignored */
    dc_model *c = make_model(be, &spec, 1, 3);
    assert_int_equal(dc_checkpoint_load(file, c->params, NULL, NULL, &err), DC_OK);
    /* a weights-only file into an optimizer: fresh state, step count untouched */
    const char *weights = path_in(dir, "weights.safetensors");
    assert_int_equal(dc_checkpoint_save(weights, a->params, NULL, &meta, &err), DC_OK);
    dc_optim *oc = NULL;
    assert_int_equal(dc_optim_create(c->params, &cfg, &oc), DC_OK);
    dc_optim_set_steps(oc, 5);
    assert_int_equal(dc_checkpoint_load(weights, c->params, oc, NULL, &err), DC_OK);
    assert_int_equal(dc_optim_steps(oc), 5);
    /* an SGD optimizer refuses Adam's moments */
    dc_optim_config sgd;
    dc_optim_config_default(&sgd, DC_OPTIM_SGD);
    dc_optim *os = NULL;
    dc_model *d = make_model(be, &spec, 1, 4);
    assert_int_equal(dc_optim_create(d->params, &sgd, &os), DC_OK);
    assert_int_not_equal(dc_checkpoint_load(file, d->params, os, NULL, &err), DC_OK);
    assert_non_null(strstr(err.msg, "optimizer state is adam's"));

    free(ma), free(va), free(mb), free(vb), free(pa), free(pb);
    dc_meta_clear(&meta);
    rm_rf(dir);
    free(dir);
    dc_optim_free(oa), dc_optim_free(ob), dc_optim_free(oc), dc_optim_free(os);
    dc_model_free(a), dc_model_free(b), dc_model_free(c), dc_model_free(d);
    dc_backend_free(be);
}

/* EMA weights in a checkpoint ("ema.<name>"): a load without an optimizer (sampling,
 * export) takes the averaged weights; a resume takes the raw weights and the average, and
 * continues exactly like the run that saved it. */
static void test_roundtrip_ema(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model_spec spec;
    make_spec(&cases[4], &spec);
    dc_model *a = make_model(be, &spec, B, 1), *b = make_model(be, &spec, B, 2),
             *c = make_model(be, &spec, B, 3);
    dc_optim_config cfg;
    dc_optim_config_default(&cfg, DC_OPTIM_ADAM);
    cfg.ema_decay = 0.99f;
    dc_optim *oa = NULL, *ob = NULL;
    assert_int_equal(dc_optim_create(a->params, &cfg, &oa), DC_OK);
    assert_int_equal(dc_optim_create(b->params, &cfg, &ob), DC_OK);
    train_step(a, oa, 21);
    train_step(a, oa, 22);
    train_step(a, oa, 23);
    char *dir = tu_tmpdir("io-ema");
    const char *file = path_in(dir, "ckpt.safetensors");
    dc_error err = {0};
    dc_meta meta = {0};
    meta_for(a, &meta);
    assert_int_equal(dc_checkpoint_save(file, a->params, oa, &meta, &err), DC_OK);
    size_t n, n2;
    float *raw = read_all_params(a->params, &n);
    assert_int_equal(dc_params_swap_ema(a->params), DC_OK);
    float *avg = read_all_params(a->params, &n2);
    assert_int_equal(dc_params_swap_ema(a->params), DC_OK);
    assert_true(n == n2 && memcmp(raw, avg, n * sizeof(float)) != 0);
    /* no optimizer: the averaged weights */
    if (dc_checkpoint_load(file, c->params, NULL, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    float *pc = read_all_params(c->params, &n2);
    assert_memory_equal(pc, avg, n * sizeof(float));
    /* resume: raw weights, the same average, the same next step */
    if (dc_checkpoint_load(file, b->params, ob, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    float *pb = read_all_params(b->params, &n2);
    assert_memory_equal(pb, raw, n * sizeof(float));
    train_step(a, oa, 24);
    train_step(b, ob, 24);
    assert_int_equal(dc_params_swap_ema(a->params), DC_OK);
    assert_int_equal(dc_params_swap_ema(b->params), DC_OK);
    free(raw), free(pb);
    raw = read_all_params(a->params, &n);
    pb = read_all_params(b->params, &n2);
    assert_memory_equal(pb, raw, n * sizeof(float));
    /* an average that misses a parameter is refused, naming the count */
    dc_model *d = make_model(be, &spec, B, 4);
    const char *partial = path_in(dir, "partial.safetensors");
    {
        /* a file whose ema.* tensors belong to another model's parameters: rename one */
        FILE *f = fopen(file, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *bytes = malloc((size_t)size);
        assert_int_equal(fread(bytes, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        char *hit = NULL;
        for (long i = 0; i + 4 < size && !hit; i++)
            if (!memcmp(bytes + i, "\"ema.", 5)) hit = bytes + i;
        assert_non_null(hit);
        memcpy(hit + 1, "emb", 3); /* "ema.<name>" -> "emb.<name>": not a model tensor */
        f = fopen(partial, "wb");
        assert_int_equal(fwrite(bytes, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        free(bytes);
    }
    assert_int_not_equal(dc_checkpoint_load(partial, d->params, NULL, NULL, &err), DC_OK);
    assert_non_null(strstr(err.msg, "emb."));
    free(raw), free(avg), free(pc), free(pb);
    dc_meta_clear(&meta);
    rm_rf(dir);
    free(dir);
    dc_optim_free(oa), dc_optim_free(ob);
    dc_model_free(a), dc_model_free(b), dc_model_free(c), dc_model_free(d);
    dc_backend_free(be);
}

/* ------------------------------------------------------------- bad inputs */
typedef struct bad_ctx {
    dc_backend *be;
    dc_model *m; /* the model loads are attempted into */
    char *dir;
    unsigned char *file; /* a valid checkpoint of m */
    size_t size;
    uint64_t hlen;
    float *before;
    size_t nparams;
} bad_ctx;

static void small_complete(dc_model_spec *s, int base, int blocks) {
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(s, "complete", 1, 8, &err), DC_OK);
    s->base = base;
    s->blocks = blocks;
    s->latent = 2;
}

/* Attempt a load; it must fail with a message holding `keyword`, the model untouched. */
static void expect_reject(bad_ctx *c, const char *what, const char *file, const dc_meta *want,
                          const char *keyword) {
    dc_error err = {0};
    dc_meta meta = {0};
    if (want)
        for (int i = 0; i < want->n; i++) dc_meta_set(&meta, want->key[i], want->value[i]);
    dc_status s = dc_checkpoint_load(file, c->m->params, NULL, &meta, &err);
    print_message("[ reject   ] %-28s -> %s\n", what, err.msg);
    if (s == DC_OK) fail_msg("%s: loaded without complaint", what);
    if (!strstr(err.msg, keyword)) fail_msg("%s: message '%s' lacks '%s'", what, err.msg, keyword);
    assert_string_equal(dc_status_name(err.status), dc_status_name(s));
    size_t n;
    float *now = read_all_params(c->m->params, &n);
    assert_memory_equal(now, c->before, n * sizeof(float));
    free(now);
    dc_meta_clear(&meta);
}

/* Rewrite the valid checkpoint with a changed header (and optional extra data bytes). */
static const char *with_header(bad_ctx *c, const char *name, cJSON *root, size_t extra) {
    char *text = cJSON_PrintUnformatted(root);
    size_t tl = strlen(text), hl = (tl + 7) & ~(size_t)7;
    size_t data = c->size - 8 - (size_t)c->hlen;
    unsigned char *buf = calloc(1, 8 + hl + data + extra);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, text, tl);
    memset(buf + 8 + tl, ' ', hl - tl);
    memcpy(buf + 8 + hl, c->file + 8 + c->hlen, data);
    const char *p = path_in(c->dir, name);
    write_file(p, buf, 8 + hl + data + extra);
    free(buf);
    free(text);
    return p;
}

static cJSON *header_of(bad_ctx *c) {
    cJSON *j = cJSON_ParseWithLength((const char *)c->file + 8, (size_t)c->hlen);
    assert_non_null(j);
    return j;
}

static cJSON *last_tensor(cJSON *root) {
    cJSON *last = NULL;
    double best = -1;
    for (cJSON *t = root->child; t; t = t->next) {
        cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
        if (o && cJSON_GetArrayItem(o, 0)->valuedouble > best) {
            best = cJSON_GetArrayItem(o, 0)->valuedouble;
            last = t;
        }
    }
    return last;
}

static void set_offsets(cJSON *t, double b, double e) {
    cJSON_ReplaceItemInObject(t, "data_offsets", cJSON_CreateDoubleArray((double[]){b, e}, 2));
}

static const char *save_other(bad_ctx *c, const char *name, const dc_model_spec *s, int tied) {
    dc_model_spec o = *s;
    o.tied = tied;
    if (tied) o.skips = 0;
    dc_model *m = make_model(c->be, &o, 1, 77);
    dc_meta meta = {0};
    meta_for(m, &meta);
    dc_error err = {0};
    const char *p = path_in(c->dir, name);
    assert_int_equal(dc_checkpoint_save(p, m->params, NULL, &meta, &err), DC_OK);
    dc_meta_clear(&meta);
    dc_model_free(m);
    return p;
}

static void test_bad_checkpoints(void **state) {
    (void)state;
    bad_ctx c = {0};
    c.be = cpu();
    dc_model_spec spec;
    small_complete(&spec, 2, 2);
    c.m = make_model(c.be, &spec, 1, 1);
    c.dir = tu_tmpdir("io-bad");
    dc_meta meta = {0};
    meta_for(c.m, &meta);
    dc_error err = {0};
    char good[1024];
    snprintf(good, sizeof good, "%s/good.safetensors", c.dir);
    assert_int_equal(dc_checkpoint_save(good, c.m->params, NULL, &meta, &err), DC_OK);
    c.file = read_file(good, &c.size);
    c.hlen = 0;
    for (int i = 7; i >= 0; i--) c.hlen = (c.hlen << 8) | c.file[i];
    /* the model to load into holds other values: a failed load must leave them */
    dc_model_free(c.m);
    c.m = make_model(c.be, &spec, 1, 2);
    c.before = read_all_params(c.m->params, &c.nparams);
    assert_int_equal(dc_checkpoint_load(good, c.m->params, NULL, NULL, &err), DC_OK);
    dc_model_free(c.m);
    c.m = make_model(c.be, &spec, 1, 2);

    /* sizes */
    const char *p = path_in(c.dir, "short.safetensors");
    write_file(p, c.file, 5);
    expect_reject(&c, "5-byte file", p, NULL, "shorter than the 8-byte header length");
    unsigned char *buf = malloc(c.size);
    memcpy(buf, c.file, c.size);
    uint64_t big = c.size; /* past the end, under the absurd limit */
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(big >> (8 * i));
    p = path_in(c.dir, "past.safetensors");
    write_file(p, buf, c.size);
    expect_reject(&c, "header length past the end", p, NULL, "runs past the end of the file");
    big = (uint64_t)1 << 62;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(big >> (8 * i));
    p = path_in(c.dir, "absurd.safetensors");
    write_file(p, buf, c.size);
    expect_reject(&c, "absurd header length", p, NULL, "absurdly large");
    p = path_in(c.dir, "truncated.safetensors");
    write_file(p, c.file, c.size - 4);
    expect_reject(&c, "truncated data", p, NULL, "run past the end of the data");
    /* JSON */
    memcpy(buf, c.file, c.size);
    memcpy(buf + 8, "{\"enc1.weight\": [1, 2", 21);
    p = path_in(c.dir, "json.safetensors");
    write_file(p, buf, c.size);
    expect_reject(&c, "invalid JSON", p, NULL, "not valid JSON");
    free(buf);
    /* entries */
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    for (int f = 0; f < 3; f++) {
        cJSON *h = header_of(&c);
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(h, "enc1.weight"), fields[f]);
        char want[64];
        snprintf(want, sizeof want, "missing \"%s\"", fields[f]);
        expect_reject(&c, want, with_header(&c, "field.safetensors", h, 0), NULL, want);
        cJSON_Delete(h);
    }
    cJSON *h = header_of(&c);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "enc1.bias"), "dtype", cJSON_CreateString("F16"));
    expect_reject(&c, "dtype F16", with_header(&c, "f16.safetensors", h, 0), NULL,
                  "has dtype F16; deconv reads only F32");
    cJSON_Delete(h);
    h = header_of(&c);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "enc1.bias"), "shape", cJSON_CreateIntArray((int[]){3}, 1));
    expect_reject(&c, "shape vs byte size", with_header(&c, "size.safetensors", h, 0), NULL,
                  "shape [3] needs 12 bytes of F32, but data_offsets");
    cJSON_Delete(h);
    h = header_of(&c);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "enc1.bias"), "shape", cJSON_CreateString("2"));
    expect_reject(&c, "shape not an array", with_header(&c, "shape.safetensors", h, 0), NULL,
                  "\"shape\" is not an array");
    cJSON_Delete(h);
    /* offsets */
    h = header_of(&c);
    cJSON *w = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "enc1.weight"), "data_offsets");
    double wend = cJSON_GetArrayItem(w, 1)->valuedouble;
    set_offsets(cJSON_GetObjectItem(h, "enc1.bias"), wend - 8, wend);
    expect_reject(&c, "overlapping offsets", with_header(&c, "overlap.safetensors", h, 0), NULL, "overlap");
    cJSON_Delete(h);
    h = header_of(&c);
    cJSON *last = last_tensor(h);
    cJSON *lo = cJSON_GetObjectItem(last, "data_offsets");
    double lb = cJSON_GetArrayItem(lo, 0)->valuedouble, le = cJSON_GetArrayItem(lo, 1)->valuedouble;
    set_offsets(last, lb + 8, le + 8);
    expect_reject(&c, "gap in offsets", with_header(&c, "gap.safetensors", h, 8), NULL, "gap of 8 bytes");
    expect_reject(&c, "offsets past the data", with_header(&c, "pastdata.safetensors", h, 0), NULL,
                  "run past the end of the data");
    cJSON_Delete(h);
    h = header_of(&c);
    expect_reject(&c, "trailing bytes", with_header(&c, "trailing.safetensors", h, 8), NULL,
                  "described by no header entry");
    cJSON_AddItemToObject(h, "enc1.bias", cJSON_Duplicate(cJSON_GetObjectItem(h, "enc1.bias"), 1));
    expect_reject(&c, "duplicate tensor", with_header(&c, "dup.safetensors", h, 0), NULL, "appears twice");
    cJSON_Delete(h);
    h = header_of(&c);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "__metadata__"), "epoch", cJSON_CreateNumber(3));
    expect_reject(&c, "metadata not a string", with_header(&c, "meta.safetensors", h, 0), NULL,
                  "metadata \"epoch\" is not a string");
    cJSON_Delete(h);

    /* model mismatches */
    dc_model_spec other;
    small_complete(&other, 2, 1);
    expect_reject(&c, "missing tensor", save_other(&c, "blocks1.safetensors", &other, 0), NULL,
                  "missing tensor 'enc2.weight'");
    small_complete(&other, 4, 2);
    expect_reject(&c, "wrong shape", save_other(&c, "base4.safetensors", &other, 0), NULL,
                  "'enc1.weight' has shape [4, 2, 3, 3] in the file, the model expects [2, 2, 3, 3]");
    /* a tied model lacks the decoder kernels an untied checkpoint has (both without the
     * hole input, whose tied form splits enc1: a shape error would come first) */
    dc_model_spec tied = spec;
    tied.hole_input = 0;
    const char *untied = save_other(&c, "untied.safetensors", &tied, 0);
    tied.tied = 1, tied.skips = 0;
    dc_model *keep = c.m;
    c.m = make_model(c.be, &tied, 1, 2);
    float *keep_before = c.before;
    c.before = read_all_params(c.m->params, &c.nparams);
    expect_reject(&c, "tensor the model lacks", untied, NULL, "tensor 'dec1.weight' in the file is not a parameter");
    free(c.before);
    dc_model_free(c.m);
    c.m = keep;
    c.before = keep_before;
    /* a checkpoint of another kind, caller stating what it expects */
    dc_model_spec vae;
    dc_error e2 = {0};
    assert_int_equal(dc_model_spec_default(&vae, "vae", 1, 8, &e2), DC_OK);
    vae.base = 2, vae.blocks = 2, vae.latent = 2;
    dc_meta want = {0};
    assert_int_equal(dc_meta_set(&want, "model", "classifier"), DC_OK);
    expect_reject(&c, "other model kind", save_other(&c, "vae.safetensors", &vae, 0), &want,
                  "checkpoint is a 'vae', not a 'classifier'");
    dc_meta_clear(&want);
    /* no file, a folder */
    expect_reject(&c, "no such file", path_in(c.dir, "nope.safetensors"), NULL, "No such file");
    expect_reject(&c, "a folder", c.dir, NULL, "not a regular file");

    dc_meta_clear(&meta);
    free(c.before);
    free(c.file);
    rm_rf(c.dir);
    free(c.dir);
    dc_model_free(c.m);
    dc_backend_free(c.be);
}

/* ------------------------------------------------------------------ atomic */
static int temp_files_in(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void test_atomic_writes(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model_spec spec;
    small_complete(&spec, 2, 2);
    dc_model *m = make_model(be, &spec, 1, 1);
    char *dir = tu_tmpdir("io-atomic");
    const char *file = path_in(dir, "model.safetensors");
    dc_error err = {0};
    assert_int_equal(dc_checkpoint_save(file, m->params, NULL, NULL, &err), DC_OK);
    assert_int_equal(dc_export_npz(path_in(dir, "model.npz"), m->params, &err), DC_OK);
    assert_int_equal(dc_export_onnx(path_in(dir, "model.onnx"), m, &err), DC_OK);
    assert_int_equal(temp_files_in(dir), 0);
    size_t n0;
    unsigned char *before = read_file(file, &n0);

    /* the temp file cannot be created (its name is longer than a file name may be, while
     * the target's is not): clean failure, the old file intact */
    char longname[250];
    memset(longname, 'c', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    const char *longfile = path_in(dir, longname);
    assert_int_equal(dc_checkpoint_save(longfile, m->params, NULL, NULL, &err), DC_ERR_IO);
    print_message("[ atomic   ] %.80s...\n", err.msg);
    assert_non_null(strstr(err.msg, "cannot write"));
    write_file(longfile, before, n0);
    dc_model *m2 = make_model(be, &spec, 1, 2);
    assert_int_equal(dc_checkpoint_save(longfile, m2->params, NULL, NULL, &err), DC_ERR_IO);
    size_t n1;
    unsigned char *after = read_file(longfile, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);
    unlink(longfile);
    assert_int_equal(temp_files_in(dir), 0);

    /* temp names are unique: what another writer (or a dead one) left under this process's
     * old fixed name, a folder or a file, neither blocks the save nor is written through */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)getpid());
    assert_int_equal(mkdir(tmp, 0755), 0);
    assert_int_equal(dc_checkpoint_save(file, m2->params, NULL, NULL, &err), DC_OK);
    assert_int_equal(temp_files_in(dir), 1);
    rmdir(tmp);
    write_file(tmp, "other writer", 12);
    assert_int_equal(dc_checkpoint_save(file, m->params, NULL, NULL, &err), DC_OK);
    after = read_file(tmp, &n1);
    assert_int_equal(n1, 12);
    assert_memory_equal(after, "other writer", 12);
    free(after);
    unlink(tmp);
    after = read_file(file, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0); /* m's weights again, as before */
    free(after);

    /* the rename cannot happen (the target is a folder): the temp file is removed */
    const char *sub = path_in(dir, "occupied");
    assert_int_equal(mkdir(sub, 0755), 0);
    write_file(path_in(sub, "x"), "x", 1);
    assert_int_equal(dc_checkpoint_save(sub, m2->params, NULL, NULL, &err), DC_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot replace"));
    assert_int_equal(temp_files_in(dir), 0);

    /* a folder without write permission (meaningless for root, who may write anyway) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(dir, 0555), 0);
        assert_int_equal(dc_checkpoint_save(file, m2->params, NULL, NULL, &err), DC_ERR_IO);
        assert_non_null(strstr(err.msg, "Permission denied"));
        assert_int_equal(chmod(dir, 0755), 0);
        after = read_file(file, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(before, after, n0);
        free(after);
    } else {
        print_message("[ atomic   ] running as root: permission case not applicable\n");
    }
    /* a missing folder */
    assert_int_equal(dc_export_npz(path_in(dir, "no/such/dir.npz"), m->params, &err), DC_ERR_IO);
    assert_non_null(strstr(err.msg, "No such file"));
    assert_int_equal(temp_files_in(dir), 0);

    free(before);
    rm_rf(dir);
    free(dir);
    dc_model_free(m);
    dc_model_free(m2);
    dc_backend_free(be);
}

/* ---------------------------------------------------------- non-finite weights */
/* A checkpoint with a NaN or an infinity anywhere is refused at load, naming the tensor;
 * weights with one are never saved (the file on disk stays the last good one). */
static void test_non_finite_weights(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model_spec spec;
    small_complete(&spec, 2, 2);
    dc_model *m = make_model(be, &spec, 1, 1);
    char *dir = tu_tmpdir("io-nonfinite");
    const char *file = path_in(dir, "model.safetensors");
    dc_error err = {0};
    dc_optim_config cfg;
    dc_optim_config_default(&cfg, DC_OPTIM_ADAM);
    dc_optim *o = NULL;
    assert_int_equal(dc_optim_create(m->params, &cfg, &o), DC_OK);
    assert_int_equal(dc_checkpoint_save(file, m->params, o, NULL, &err), DC_OK);
    size_t n0;
    unsigned char *good = read_file(file, &n0);
    /* one value of the third parameter becomes each non-finite value in turn */
    const int victim = 2;
    dc_param *q = dc_params_get(m->params, victim);
    float *w = malloc(q->numel * sizeof *w), *orig = malloc(q->numel * sizeof *w);
    assert_int_equal(dc_params_read(m->params, victim, orig), DC_OK);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t b = 0; b < (sizeof bad / sizeof bad[0]); b++) {
        memcpy(w, orig, q->numel * sizeof *w);
        w[q->numel - 1] = bad[b];
        assert_int_equal(dc_params_write(m->params, victim, w), DC_OK);
        assert_int_equal(dc_checkpoint_save(file, m->params, o, NULL, &err), DC_ERR_NUMERIC);
        print_message("[ nonfinite ] %s\n", err.msg);
        assert_non_null(strstr(err.msg, q->name));
        assert_non_null(strstr(err.msg, "not saved"));
        size_t n1;
        unsigned char *now = read_file(file, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(good, now, n0);
        free(now);
        assert_int_equal(temp_files_in(dir), 0);
    }
    assert_int_equal(dc_params_write(m->params, victim, orig), DC_OK);

    /* the same in a file: the tensor's bytes patched in place */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | good[i];
    for (size_t b = 0; b < (sizeof bad / sizeof bad[0]); b++) {
        unsigned char *patched = malloc(n0);
        memcpy(patched, good, n0);
        /* parameters are stored packed, in order, from the start of the data */
        size_t before = 0;
        for (int i = 0; i < victim; i++)
            before += dc_params_get(m->params, i)->numel;
        const size_t off = 8 + hl + (before + q->numel - 1) * 4;
        memcpy(patched + off, &bad[b], 4); /* little-endian host: the file's byte order */
        write_file(path_in(dir, "bad.safetensors"), patched, n0);
        free(patched);
        dc_model *fresh = make_model(be, &spec, 1, 7);
        assert_int_equal(dc_checkpoint_load(path_in(dir, "bad.safetensors"), fresh->params, NULL,
                                            NULL, &err),
                         DC_ERR_NUMERIC);
        print_message("[ nonfinite ] %s\n", err.msg);
        assert_non_null(strstr(err.msg, q->name));
        assert_non_null(strstr(err.msg, b == 0 ? "nan" : "inf"));
        dc_model_free(fresh);
    }
    /* and in the optimizer state: refused with the optimizer, ignored without one */
    unsigned char *patched = malloc(n0);
    memcpy(patched, good, n0);
    const float inf = INFINITY;
    memcpy(patched + n0 - 4, &inf, 4);
    write_file(path_in(dir, "bad.safetensors"), patched, n0);
    free(patched);
    assert_int_equal(dc_checkpoint_load(path_in(dir, "bad.safetensors"), m->params, o, NULL, &err),
                     DC_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "optim.v."));
    assert_int_equal(
        dc_checkpoint_load(path_in(dir, "bad.safetensors"), m->params, NULL, NULL, &err), DC_OK);
    free(w);
    free(orig);
    free(good);
    dc_optim_free(o);
    rm_rf(dir);
    free(dir);
    dc_model_free(m);
    dc_backend_free(be);
}

/* ------------------------------------------------------------------ run folders */
static void test_run_folder_lock(void **state) {
    (void)state;
    char *dir = tu_tmpdir("io-runlock");
    const char *run = path_in(dir, "a/b/run"); /* parents created */
    dc_error err = {0};
    dc_run_lock *l1 = NULL, *l2 = NULL;
    assert_int_equal(dc_run_lock_acquire(run, &l1, &err), DC_OK);
    /* a second holder (another open file, as another process would have) is refused */
    assert_int_equal(dc_run_lock_acquire(run, &l2, &err), DC_ERR_STATE);
    assert_null(l2);
    char pid[64];
    snprintf(pid, sizeof pid, "in use by process %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));
    assert_int_equal(dc_run_folder_check_empty(run, &err), DC_OK); /* the lock file only */
    dc_run_lock_release(l1);
    assert_int_equal(dc_run_lock_acquire(run, &l2, &err), DC_OK);
    dc_run_lock_release(l2);
    dc_run_lock_release(NULL);
    /* a file where the folder should be */
    write_file(path_in(dir, "file"), "x", 1);
    assert_int_equal(dc_run_lock_acquire(path_in(dir, "file"), &l1, &err), DC_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot create run folder"));

    /* clear removes the run's own files and nothing else */
    const char *mine[] = {"model.safetensors", "loss.csv", "loss.png", "report.html",
                          "samples/epoch_0001.png", "samples/epoch_0100.png"};
    mkdir(path_in(run, "samples"), 0755);
    for (size_t i = 0; i < (sizeof mine / sizeof mine[0]); i++)
        write_file(path_in(run, mine[i]), "x", 1);
    write_file(path_in(run, "notes.txt"), "x", 1);
    write_file(path_in(run, "samples/epoch_x.png"), "x", 1);
    assert_int_equal(dc_run_folder_check_empty(run, &err), DC_ERR_STATE);
    assert_non_null(strstr(err.msg, "--resume"));
    assert_int_equal(dc_run_folder_clear(run, &err), DC_OK);
    for (size_t i = 0; i < (sizeof mine / sizeof mine[0]); i++)
        assert_int_equal(access(path_in(run, mine[i]), F_OK), -1);
    assert_int_equal(access(path_in(run, "notes.txt"), F_OK), 0);
    assert_int_equal(access(path_in(run, "samples/epoch_x.png"), F_OK), 0);
    rm_rf(dir);
    free(dir);
}

/* -------------------------------------------------------------------- CLI */
static void test_cli_export(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    if (access(bin, X_OK) != 0) TU_SKIP_OR_FAIL("CLI binary %s not built", bin);
    dc_backend *be = cpu();
    dc_model_spec spec;
    make_spec(&cases[1], &spec); /* complete --tied */
    dc_model *m = make_model(be, &spec, 3, 1);
    char *dir = tu_tmpdir("io-cli");
    dc_error err = {0};
    dc_meta meta = {0};
    meta_for(m, &meta);
    dc_optim_config cfg;
    dc_optim_config_default(&cfg, DC_OPTIM_ADAM);
    dc_optim *o = NULL;
    assert_int_equal(dc_optim_create(m->params, &cfg, &o), DC_OK);
    assert_int_equal(dc_checkpoint_save(path_in(dir, "model.safetensors"), m->params, o, &meta, &err), DC_OK);
    assert_int_equal(dc_export_onnx(path_in(dir, "lib.onnx"), m, &err), DC_OK);
    assert_int_equal(dc_export_npz(path_in(dir, "lib.npz"), m->params, &err), DC_OK);

    /* a run folder: default names beside the checkpoint */
    assert_int_equal(tu_system("%s export %s --format onnx >/dev/null", bin, dir), 0);
    assert_int_equal(tu_system("%s export %s --format npz >/dev/null", bin, dir), 0);
    assert_int_equal(tu_system("%s export %s --format safetensors >/dev/null", bin, dir), 0);
    /* the same weights give the same bytes, whatever the batch size the model was built at */
    size_t na, nb;
    unsigned char *a = read_file(path_in(dir, "lib.onnx"), &na), *b = read_file(path_in(dir, "model.onnx"), &nb);
    assert_non_null(b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a), free(b);
    a = read_file(path_in(dir, "lib.npz"), &na), b = read_file(path_in(dir, "model.npz"), &nb);
    assert_non_null(b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a), free(b);
    /* the weights-only file loads, holds no optimizer state, keeps the metadata */
    dc_meta got = {0};
    assert_int_equal(dc_checkpoint_read_meta(path_in(dir, "model.weights.safetensors"), &got, &err), DC_OK);
    assert_null(dc_meta_get(&got, "optim.step"));
    assert_string_equal(dc_meta_get(&got, "epoch"), "3");
    dc_meta_clear(&got);
    dc_optim_set_steps(o, 9);
    assert_int_equal(dc_checkpoint_load(path_in(dir, "model.weights.safetensors"), m->params, o, NULL, &err), DC_OK);
    assert_int_equal(dc_optim_steps(o), 9);
    /* a checkpoint path and -o */
    assert_int_equal(tu_system("%s export %s/model.safetensors --format npz -o %s/x.npz >/dev/null", bin, dir,
                               dir), 0);
    struct stat st;
    assert_int_equal(stat(path_in(dir, "x.npz"), &st), 0);
    /* errors: exit status and a message */
    assert_int_not_equal(tu_system("%s export %s --format png 2>/dev/null", bin, dir), 0);
    assert_int_not_equal(tu_system("%s export %s 2>/dev/null", bin, dir), 0);
    assert_int_not_equal(tu_system("%s export %s/none --format onnx 2>/dev/null", bin, dir), 0);

    dc_meta_clear(&meta);
    rm_rf(dir);
    free(dir);
    dc_optim_free(o);
    dc_model_free(m);
    dc_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_export_complete),
        cmocka_unit_test(test_export_complete_tied),
        cmocka_unit_test(test_export_vae),
        cmocka_unit_test(test_export_glo),
        cmocka_unit_test(test_export_classifier),
        cmocka_unit_test(test_export_diffusion),
        cmocka_unit_test(test_export_diffusion_classes),
        cmocka_unit_test(test_export_diffusion_no_cond),
        cmocka_unit_test(test_export_diffusion_attn),
        cmocka_unit_test(test_export_complete_no_hole),
        cmocka_unit_test(test_export_complete_tied_no_hole),
        cmocka_unit_test(test_export_complete_skips),
        cmocka_unit_test(test_roundtrip_forward),
        cmocka_unit_test(test_roundtrip_optimizer),
        cmocka_unit_test(test_roundtrip_ema),
        cmocka_unit_test(test_bad_checkpoints),
        cmocka_unit_test(test_atomic_writes),
        cmocka_unit_test(test_non_finite_weights),
        cmocka_unit_test(test_run_folder_lock),
        cmocka_unit_test(test_cli_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
