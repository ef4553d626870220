/* Sampling a flow-matching model (the diffusion kind): the ODE samplers and the model's
 * velocity as a dc_velocity_fn. Training is in diffusion.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "models/kinds.h"

/* ------------------------------------------------------------------------ sampling */
static const char *const sampler_names[] = {"euler", "heun"};

const char *dc_sampler_name(dc_sampler s) {
    return (unsigned)s < DC_ARRAY_LEN(sampler_names) ? sampler_names[s] : "unknown";
}

dc_status dc_sampler_parse(const char *name, dc_sampler *out, dc_error *err) {
    for (unsigned i = 0; name && i < DC_ARRAY_LEN(sampler_names); i++)
        if (!strcmp(name, sampler_names[i])) {
            *out = (dc_sampler)i;
            return DC_OK;
        }
    return dc_set_error(err, DC_ERR_ARG, "unknown sampler '%s' (use euler or heun)",
                        name ? name : "(null)");
}

/* The integration, with a copy of the state into trajectory (when given) after the steps
 * that snapshots k = 0 .. snapshots-1 fall on (step round(k * steps / (snapshots - 1))). */
static dc_status integrate(dc_velocity_fn velocity, void *user, int n, size_t numel, int steps,
                           dc_sampler sampler, float *x, float *trajectory, int snapshots,
                           dc_error *err) {
    if (!velocity || !x || n < 1 || numel == 0 || steps < 1 || steps > 100000 ||
        (unsigned)sampler >= DC_ARRAY_LEN(sampler_names) || (trajectory && snapshots < 2))
        return dc_set_error(err, DC_ERR_ARG,
                            "flow integration: bad arguments (n %d, steps %d, sampler %d, "
                            "snapshots %d)",
                            n, steps, (int)sampler, snapshots);
    const size_t total = (size_t)n * numel;
    float *v1 = malloc(sizeof(float) * total);
    float *v2 = sampler == DC_SAMPLER_HEUN ? malloc(sizeof(float) * total) : NULL;
    float *pred = sampler == DC_SAMPLER_HEUN ? malloc(sizeof(float) * total) : NULL;
    if (!v1 || (sampler == DC_SAMPLER_HEUN && (!v2 || !pred))) {
        free(v1), free(v2), free(pred);
        return dc_set_error(err, DC_ERR_OOM, "flow integration of %d states: out of memory", n);
    }
    dc_status st = DC_OK;
    int next_snapshot = 0;
    for (int step = 0; st == DC_OK && step <= steps; step++) {
        /* snapshot k lands on step round(k * steps / (snapshots - 1)) */
        while (trajectory && next_snapshot < snapshots &&
               (int)lround((double)next_snapshot * steps / (snapshots - 1)) == step) {
            memcpy(trajectory + (size_t)next_snapshot * total, x, sizeof(float) * total);
            next_snapshot++;
        }
        if (step == steps) break;
        /* times as fractions of whole steps so the last one ends exactly at 0 */
        const float t = (float)(steps - step) / (float)steps;
        const float t_next = (float)(steps - step - 1) / (float)steps, dt = t - t_next;
        if ((st = velocity(user, x, t, n, v1, err)) != DC_OK) break;
        if (sampler == DC_SAMPLER_EULER || step + 1 == steps) {
            for (size_t i = 0; i < total; i++)
                x[i] -= dt * v1[i];
            continue;
        }
        for (size_t i = 0; i < total; i++)
            pred[i] = x[i] - dt * v1[i];
        if ((st = velocity(user, pred, t_next, n, v2, err)) != DC_OK) break;
        for (size_t i = 0; i < total; i++)
            x[i] -= 0.5f * dt * (v1[i] + v2[i]);
    }
    free(v1), free(v2), free(pred);
    return st;
}

dc_status dc_flow_integrate(dc_velocity_fn velocity, void *user, int n, size_t numel, int steps,
                            dc_sampler sampler, float *x, dc_error *err) {
    return integrate(velocity, user, n, numel, steps, sampler, x, NULL, 0, err);
}

void dc_flow_noise(const dc_model *m, int n, uint64_t seed, float *noise) {
    const size_t numel = (size_t)m->spec.channels * m->spec.size * m->spec.size;
    const uint64_t stream = dc_seed_mix(seed, DC_SAMPLING_STREAM);
    for (int i = 0; i < n; i++) {
        dc_rng rng;
        dc_rng_seed(&rng, dc_seed_mix(stream, (uint64_t)i));
        for (size_t p = 0; p < numel; p++)
            noise[(size_t)i * numel + p] = dc_rng_normal(&rng);
    }
}

/* The model's velocity on up to m->batch states; the unused slots of the batch hold zeros. */
typedef struct model_velocity {
    dc_model *m;
    float *x, *t, *v; /* [batch] staging */
    size_t numel;
    int class_label; /* class-conditioned models: the class, or -1 for the null class */
    float guidance;  /* classifier-free guidance weight w (with a class) */
    float *v_null;   /* [batch] the null class's velocity, when guiding */
    int32_t *labels; /* [batch] staging of the class input */
} model_velocity;

/* One forward pass: the velocity of the staged states with every image of class `label`
 * (ignored by an unconditional model) into out [batch]. */
static dc_status forward_velocity(model_velocity *mv, int label, float t, float *out,
                                  dc_error *err) {
    dc_model *m = mv->m;
    dc_status st = DC_OK;
    for (int i = 0; m->labels >= 0 && i < m->batch; i++)
        mv->labels[i] = label;
    if ((st = dc_graph_set_input(m->g, m->x, mv->x)) != DC_OK ||
        (st = dc_graph_set_input(m->g, m->time, mv->t)) != DC_OK ||
        (m->labels >= 0 && (st = dc_graph_set_input_int(m->g, m->labels, mv->labels)) != DC_OK) ||
        (st = dc_graph_forward(m->g, m->out)) != DC_OK ||
        (st = dc_graph_read(m->g, m->out, out)) != DC_OK)
        return dc_set_error(err, st, "diffusion velocity at t = %g: %s", (double)t,
                            dc_graph_error(m->g)->msg);
    return DC_OK;
}

/* Classifier-free guidance: v = v_null + w (v_class - v_null). w = 1 is the conditional
 * velocity and w = 0 the unconditional one, each from its own pass alone (exactly); no
 * class (-1) is the unconditional velocity. */
static dc_status velocity_of_model(void *user, const float *x, float t, int n, float *v,
                                   dc_error *err) {
    model_velocity *mv = user;
    dc_model *m = mv->m;
    const size_t count = (size_t)n * mv->numel;
    memcpy(mv->x, x, sizeof(float) * count);
    for (int i = 0; i < m->batch; i++)
        mv->t[i] = t;
    const int null_class = m->spec.cond_classes, w_is_0 = mv->guidance == 0.0f;
    const int use_class = m->labels >= 0 && mv->class_label >= 0 && !w_is_0;
    const int use_null = m->labels >= 0 && (mv->class_label < 0 || mv->guidance != 1.0f);
    if (use_null) DC_TRY(forward_velocity(mv, null_class, t, use_class ? mv->v_null : mv->v, err));
    if (use_class || m->labels < 0) DC_TRY(forward_velocity(mv, mv->class_label, t, mv->v, err));
    if (use_class && use_null)
        for (size_t i = 0; i < count; i++)
            mv->v[i] = mv->v_null[i] + mv->guidance * (mv->v[i] - mv->v_null[i]);
    memcpy(v, mv->v, sizeof(float) * count);
    return DC_OK;
}

dc_status dc_flow_sample(dc_model *m, int n, int steps, dc_sampler sampler, uint64_t seed,
                         const float *noise, float *out, float *trajectory, int snapshots,
                         dc_error *err) {
    return dc_flow_sample_guided(m, n, steps, sampler, seed, noise, out, trajectory, snapshots, -1,
                                 1.0f, err);
}

dc_status dc_flow_sample_guided(dc_model *m, int n, int steps, dc_sampler sampler, uint64_t seed,
                                const float *noise, float *out, float *trajectory, int snapshots,
                                int class_label, float guidance, dc_error *err) {
    if (!m || !out || n < 1) return dc_set_error(err, DC_ERR_ARG, "dc_flow_sample: bad arguments");
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_FLOW) || m->x < 0 || m->time < 0 || m->out < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "a %s model is not a flow model; it cannot sample "
                            "by integrating a velocity",
                            dc_model_kind_name(m->spec.kind));
    if (trajectory && snapshots < 2)
        return dc_set_error(err, DC_ERR_ARG, "dc_flow_sample: %d trajectory snapshots (use >= 2)",
                            snapshots);
    if (class_label >= 0 && m->labels < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "class %d: this diffusion model was trained without classes "
                            "(unconditional); only a model trained on data with classes (and "
                            "without --unconditional) takes a class",
                            class_label);
    if (class_label >= m->spec.cond_classes && m->labels >= 0)
        return dc_set_error(err, DC_ERR_ARG, "class %d: the model knows classes 0 to %d",
                            class_label, m->spec.cond_classes - 1);
    if (!isfinite(guidance))
        return dc_set_error(err, DC_ERR_ARG, "guidance %g is not a finite number",
                            (double)guidance);
    const size_t numel = (size_t)m->spec.channels * m->spec.size * m->spec.size;
    const int B = m->batch;
    model_velocity mv = {m,
                         calloc((size_t)B * numel, sizeof(float)),
                         malloc(sizeof(float) * B),
                         malloc(sizeof(float) * (size_t)B * numel),
                         numel,
                         class_label < 0 ? -1 : class_label,
                         guidance,
                         malloc(sizeof(float) * (size_t)B * numel),
                         calloc((size_t)B, sizeof(int32_t))};
    float *chunk_traj = trajectory ? malloc(sizeof(float) * (size_t)snapshots * B * numel) : NULL;
    dc_status st = DC_OK;
    if (!mv.x || !mv.t || !mv.v || !mv.v_null || !mv.labels || (trajectory && !chunk_traj)) {
        st = dc_set_error(err, DC_ERR_OOM, "sampling %d images: out of memory", n);
        goto out;
    }
    if (noise)
        memcpy(out, noise, sizeof(float) * (size_t)n * numel);
    else
        dc_flow_noise(m, n, seed, out);
    dc_graph_set_train(m->g, 0);
    if (m->aug >= 0) { /* samples as the data is, unaugmented */
        float *zeros = calloc((size_t)B * DC_AUGMENT_PARAMS, sizeof(float));
        st = zeros ? dc_graph_set_input(m->g, m->aug, zeros) : DC_ERR_OOM;
        free(zeros);
        if (st) st = dc_set_error(err, st, "sampling: clearing the augmentation input: %s",
                                  dc_graph_error(m->g)->msg);
    }
    for (int first = 0; first < n && st == DC_OK; first += B) {
        const int count = n - first < B ? n - first : B;
        float *x = out + (size_t)first * numel;
        st = integrate(velocity_of_model, &mv, count, numel, steps, sampler, x, chunk_traj,
                       snapshots, err);
        /* the data's range: the ODE's end can overshoot it slightly */
        for (size_t i = 0; i < (size_t)count * numel; i++)
            x[i] = x[i] < -1.0f ? -1.0f : x[i] > 1.0f ? 1.0f : x[i];
        for (int k = 0; trajectory && st == DC_OK && k < snapshots; k++)
            memcpy(trajectory + ((size_t)k * n + first) * numel,
                   chunk_traj + (size_t)k * count * numel, sizeof(float) * count * numel);
    }
    dc_graph_set_train(m->g, 1);
out:
    free(mv.x), free(mv.t), free(mv.v), free(mv.v_null), free(mv.labels), free(chunk_traj);
    return st;
}
