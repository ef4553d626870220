/* deconv bench: one benchmark in this process (what a --single child runs), and the
 * start-up probe (--startup-probe). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"

/* ------------------------------------------------------------ one benchmark */
/* A preset's spec and batch, and the backend named by `device`; 0 or the exit status. */
static int bench_open(const bench_opts *o, const char *device, const char *model,
                      dc_model_spec *spec, int *batch, dc_backend **be) {
    dc_error err = {0};
    *be = NULL;
    if (bench_preset(model, o->batch, spec, batch, &err)) return dc_cli_fail("bench", "%s", err.msg);
    if (dc_backend_create_from_spec(device, 0, be, &err) != DC_OK)
        return dc_cli_fail("bench", "--device %s: %s", device, err.msg);
    return 0;
}

int bench_run_single(const bench_opts *o, const char *device, const char *model) {
    const double load_start = bench_loadavg1();
    dc_error err = {0};
    dc_model_spec spec;
    int batch;
    dc_backend *be;
    if (bench_open(o, device, model, &spec, &batch, &be)) return 1;
    if (o->threads > 0) dc_backend_set_threads(be, o->threads);
    const int is_cpu = !strcmp(dc_backend_name(be), "cpu");
    int rc = 1;
    char msg[1200] = "";
    dc_model *m = NULL;
    dc_optim *opt = NULL;
    dc_batch b = {0};
    gemm_list gl = {0};
    double *tt = calloc((size_t)o->repeats, sizeof(double)), *ti = calloc((size_t)o->repeats, sizeof(double));
    cJSON *r = NULL;
    if (!tt || !ti) {
        dc_cli_fail("bench", "out of memory");
        goto done;
    }
    if (dc_model_create_training(be, &spec, batch, &m, &err) != DC_OK) {
        dc_cli_fail("bench", "%s: %s", model, err.msg);
        goto done;
    }
    dc_rng rng;
    dc_rng_seed(&rng, 1);
    dc_optim_config oc;
    dc_optim_config_default(&oc, DC_OPTIM_ADAM);
    if (dc_params_init(m->params, &rng) != DC_OK || dc_optim_create(m->params, &oc, &opt) != DC_OK) {
        dc_cli_fail("bench", "%s: %s", model, dc_params_error(m->params)->msg);
        goto done;
    }
    if (dc_batch_alloc(m, &b, &err) != DC_OK) {
        dc_cli_fail("bench", "%s", err.msg);
        goto done;
    }
    bench_fill_random_batch(m, &b, 1234);
    dc_graph *g = m->g;
    float loss = NAN;
    uint64_t step = 0;
    /* ---- training ---- */
    dc_graph_set_train(g, 1);
    for (int i = 0; i < o->warmup; i++)
        if (bench_train_step(m, opt, &b, dc_seed_mix(7, ++step), msg, sizeof msg)) goto step_fail;
    if (bench_read_one(m, m->loss, &loss) != DC_OK) goto read_fail;
    for (int r_ = 0; r_ < o->repeats; r_++) {
        const double t0 = bench_now_s();
        for (int i = 0; i < o->steps; i++)
            if (bench_train_step(m, opt, &b, dc_seed_mix(7, ++step), msg, sizeof msg)) goto step_fail;
        if (bench_read_one(m, m->loss, &loss) != DC_OK) goto read_fail;
        tt[r_] = (double)o->steps * batch / (bench_now_s() - t0);
    }
    if (!isfinite(loss)) {
        dc_cli_fail("bench", "%s on %s: the loss became %g", model, device, (double)loss);
        goto done;
    }
    /* ---- inference ---- */
    dc_graph_set_train(g, 0);
    float probe;
    for (int i = 0; i < (o->infer ? o->warmup : 0); i++)
        if (bench_infer_step(m, &b, dc_seed_mix(9, ++step), msg, sizeof msg)) goto step_fail;
    if (bench_read_one(m, m->out, &probe) != DC_OK) goto read_fail;
    for (int r_ = 0; r_ < (o->infer ? o->repeats : 0); r_++) {
        const double t0 = bench_now_s();
        for (int i = 0; i < o->steps; i++)
            if (bench_infer_step(m, &b, dc_seed_mix(9, ++step), msg, sizeof msg)) goto step_fail;
        /* a one-element blocking read: waits for the queue on asynchronous backends */
        if (bench_read_one(m, m->out, &probe) != DC_OK) goto read_fail;
        ti[r_] = (double)o->steps * batch / (bench_now_s() - t0);
    }
    /* memory before the GEMM measurement allocates its own buffers */
    const double rss = bench_peak_rss_mb();
    const double dev_peak = be->bytes_peak / 1e6;
    /* ---- FLOPs and the GEMM rate on the step's own products ---- */
    const double fwd = dc_graph_forward_flops(g), step_flops = 3.0 * fwd;
    const double gemm_flops = bench_collect_gemms(g, &gl);
    double sgemm = NAN;
    if (o->gemm && bench_measure_gemms(be, &gl, o->gemm_seconds, &sgemm, msg, sizeof msg) != DC_OK) {
        dc_cli_fail("bench", "%s on %s: %s", model, device, msg);
        goto done;
    }
    cJSON *prof = NULL;
    if (o->profile) {
        dc_graph_set_train(g, 1);
        char label[600];
        snprintf(label, sizeof label, "%s on %s", model, device);
        if (!(prof = bench_profile_steps(m, opt, &b, o->profile, o->trace, label, msg, sizeof msg))) goto step_fail;
        msg[0] = 0;
        cJSON *budget = bench_step_budget(m, opt, &b, batch, batch / bench_median(tt, o->repeats) * 1e3, label,
                                    msg, sizeof msg);
        if (!budget && msg[0]) goto step_fail;
        if (budget) cJSON_AddItemToObject(prof, "budget", budget);
    }
    const double train_ips = bench_median(tt, o->repeats), infer_ips = o->infer ? bench_median(ti, o->repeats) : NAN;
    const double step_s = batch / train_ips, step_gflops = step_flops / step_s / 1e9;
    size_t nparams = 0;
    for (int i = 0; i < dc_params_count(m->params); i++) {
        const dc_param *q = dc_params_get(m->params, i);
        if (q->trainable) nparams += q->numel;
    }

    r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "device", device);
    cJSON_AddStringToObject(r, "backend", dc_backend_name(be));
    cJSON_AddStringToObject(r, "device_name", dc_backend_device(be));
    cJSON_AddNumberToObject(r, "threads", is_cpu ? (o->threads > 0 ? o->threads : omp_get_max_threads()) : 0);
    cJSON_AddStringToObject(r, "model", model);
    cJSON_AddNumberToObject(r, "batch", batch);
    cJSON_AddNumberToObject(r, "size", spec.size);
    cJSON_AddNumberToObject(r, "params", (double)nparams);
    cJSON_AddNumberToObject(r, "warmup", o->warmup);
    cJSON_AddNumberToObject(r, "repeats", o->repeats);
    cJSON_AddNumberToObject(r, "steps", o->steps);
    cJSON_AddNumberToObject(r, "train_ips", train_ips);
    cJSON_AddItemToObject(r, "train_ips_runs", bench_json_doubles(tt, o->repeats));
    cJSON_AddNumberToObject(r, "infer_ips", infer_ips);
    cJSON_AddItemToObject(r, "infer_ips_runs", bench_json_doubles(ti, o->repeats));
    cJSON_AddNumberToObject(r, "step_ms", step_s * 1e3);
    cJSON_AddNumberToObject(r, "forward_flops", fwd);
    cJSON_AddNumberToObject(r, "step_flops", step_flops);
    cJSON_AddStringToObject(r, "step_flops_rule", "3 x dc_graph_forward_flops");
    cJSON_AddNumberToObject(r, "step_gemm_flops", gemm_flops);
    cJSON_AddNumberToObject(r, "step_gflops", step_gflops);
    cJSON_AddNumberToObject(r, "sgemm_gflops", sgemm);
    cJSON_AddNumberToObject(r, "ratio_to_sgemm", step_gflops / sgemm);
    cJSON_AddNumberToObject(r, "peak_rss_mb", rss);
    cJSON_AddNumberToObject(r, "device_peak_mb", dev_peak);
    cJSON_AddNumberToObject(r, "loss", loss);
    cJSON *load = cJSON_AddArrayToObject(r, "loadavg_1min");
    cJSON_AddItemToArray(load, cJSON_CreateNumber(load_start));
    cJSON_AddItemToArray(load, cJSON_CreateNumber(bench_loadavg1()));
    if (prof) cJSON_AddItemToObject(r, "profile", prof);
    cJSON *shapes = cJSON_AddArrayToObject(r, "gemm_products");
    for (int i = 0; i < gl.n; i++) {
        const gemm_shape *q = &gl.v[i];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "node", q->node);
        cJSON_AddStringToObject(s, "role", q->role);
        cJSON_AddNumberToObject(s, "trans_a", q->ta);
        cJSON_AddNumberToObject(s, "trans_b", q->tb);
        cJSON_AddNumberToObject(s, "M", q->m);
        cJSON_AddNumberToObject(s, "N", q->n);
        cJSON_AddNumberToObject(s, "K", q->k);
        cJSON_AddNumberToObject(s, "beta", q->beta);
        cJSON_AddNumberToObject(s, "calls_per_step", q->count);
        cJSON_AddNumberToObject(s, "ms", q->seconds * 1e3);
        cJSON_AddNumberToObject(s, "gflops", q->gflops);
        cJSON_AddItemToArray(shapes, s);
    }
    char *text = cJSON_PrintUnformatted(r);
    if (text) {
        printf("%s%s\n", BENCH_RESULT_TAG, text);
        fflush(stdout);
        free(text);
        rc = 0;
    }
    goto done;
step_fail:
    dc_cli_fail("bench", "%s on %s: %s", model, device, msg);
    goto done;
read_fail:
    dc_cli_fail("bench", "%s on %s: read: %s", model, device, be->err.msg);
done:
    cJSON_Delete(r);
    free(gl.v);
    free(tt);
    free(ti);
    dc_batch_free(&b);
    dc_optim_free(opt);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}

/* The start-up probe: everything `deconv train` does before its first step, then the first
 * step itself, on one device. Prints the CLOCK_MONOTONIC times (comparable across
 * processes on Linux) at which it was ready and at which the first step had finished. */
int bench_run_startup_probe(const bench_opts *o, const char *device, const char *model) {
    const double t_enter = bench_now_s();
    dc_error err = {0};
    dc_model_spec spec;
    int batch;
    dc_backend *be;
    if (bench_open(o, device, model, &spec, &batch, &be)) return 1;
    const double t_backend = bench_now_s();
    dc_model *m = NULL;
    dc_optim *opt = NULL;
    dc_batch b = {0};
    char msg[1200] = "";
    int rc = 1;
    dc_rng rng;
    dc_rng_seed(&rng, 1);
    dc_optim_config oc;
    dc_optim_config_default(&oc, DC_OPTIM_ADAM);
    if (dc_model_create_training(be, &spec, batch, &m, &err) != DC_OK || dc_params_init(m->params, &rng) != DC_OK ||
        dc_optim_create(m->params, &oc, &opt) != DC_OK || dc_batch_alloc(m, &b, &err) != DC_OK) {
        dc_cli_fail("bench", "start-up probe: %s", err.msg[0] ? err.msg : be->err.msg);
        goto done;
    }
    bench_fill_random_batch(m, &b, 1234);
    dc_graph_set_train(m->g, 1);
    float loss;
    const double t_ready = bench_now_s();
    if (bench_train_step(m, opt, &b, 1, msg, sizeof msg) || bench_read_one(m, m->loss, &loss) != DC_OK) {
        dc_cli_fail("bench", "start-up probe: %s", msg);
        goto done;
    }
    const double t_step1 = bench_now_s();
    if (bench_train_step(m, opt, &b, 2, msg, sizeof msg) || bench_read_one(m, m->loss, &loss) != DC_OK) {
        dc_cli_fail("bench", "start-up probe: %s", msg);
        goto done;
    }
    const double t_step2 = bench_now_s();
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "t_enter", t_enter);
    cJSON_AddNumberToObject(r, "t_backend", t_backend);
    cJSON_AddNumberToObject(r, "t_ready", t_ready);
    cJSON_AddNumberToObject(r, "t_step1", t_step1);
    cJSON_AddNumberToObject(r, "t_step2", t_step2);
#ifdef DECONV_HAVE_OPENCL
    dc_program_info prog;
    dc_backend_program_info(be, &prog);
    cJSON_AddNumberToObject(r, "program_s", prog.seconds);
    cJSON_AddBoolToObject(r, "program_from_cache", prog.from_cache);
    cJSON_AddStringToObject(r, "cache_file", prog.cache_file);
#endif
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    if (text) {
        printf("%s%s\n", BENCH_RESULT_TAG, text);
        fflush(stdout);
        free(text);
        rc = 0;
    }
done:
    dc_batch_free(&b);
    dc_optim_free(opt);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
