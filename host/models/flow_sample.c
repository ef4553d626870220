/* Sampling a flow-matching model (the diffusion kind): the ODE and SDE samplers, the
 * model's velocity as a dc_velocity_fn, and the samplers' uses: new images, SDEdit from a
 * canvas and RePaint-style inpainting. Training is in diffusion.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "models/kinds.h"

/* the per-sample stream of the stochastic draws, apart from the starting noise's */
#define FLOW_STOCHASTIC_STREAM 0x73646521ULL

/* ------------------------------------------------------------------------ samplers */
static const char *const sampler_names[] = {"euler", "heun", "sde"};

const char *dc_sampler_name(dc_sampler s) {
    return (unsigned)s < DC_ARRAY_LEN(sampler_names) ? sampler_names[s] : "unknown";
}

dc_status dc_sampler_parse(const char *name, dc_sampler *out, dc_error *err) {
    for (unsigned i = 0; name && i < DC_ARRAY_LEN(sampler_names); i++)
        if (!strcmp(name, sampler_names[i])) {
            *out = (dc_sampler)i;
            return DC_OK;
        }
    return dc_set_error(err, DC_ERR_ARG,
                        "unknown sampler '%s' (use euler or heun for the ODE, or sde for the "
                        "stochastic sampler)",
                        name ? name : "(null)");
}

int dc_sampler_evaluations(dc_sampler s, int steps) {
    return s == DC_SAMPLER_HEUN ? 2 * steps - 1 : steps;
}

void dc_flow_config_default(dc_flow_config *c) {
    *c = (dc_flow_config){.steps = DC_FLOW_STEPS,
                          .sampler = DC_SAMPLER_EULER,
                          .seed = 1,
                          .churn = DC_FLOW_CHURN,
                          .class_label = -1,
                          .guidance = 0.0f};
}

static dc_status check_config(const dc_flow_config *cfg, float t_start, dc_error *err) {
    if (!cfg) return dc_set_error(err, DC_ERR_ARG, "flow sampling: no config");
    if (cfg->steps < 1 || cfg->steps > 100000 ||
        (unsigned)cfg->sampler >= DC_ARRAY_LEN(sampler_names) || !(cfg->churn >= 0.0f) ||
        !(cfg->churn <= 100.0f) || !(t_start > 0.0f && t_start <= 1.0f) || cfg->class_label < -1 ||
        !isfinite(cfg->guidance))
        return dc_set_error(err, DC_ERR_ARG,
                            "flow sampling: bad settings (steps %d, sampler %d, churn %g, start "
                            "time %g, class %d, guidance %g)",
                            cfg->steps, (int)cfg->sampler, (double)cfg->churn, (double)t_start,
                            cfg->class_label, (double)cfg->guidance);
    if (cfg->guidance != 0.0f && cfg->class_label < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "flow sampling: guidance %g needs a class (classifier-free guidance "
                            "pulls towards one class)",
                            (double)cfg->guidance);
    return DC_OK;
}

/* Inpainting's known pixels: the clean images and their masks (1 = hidden) per state. */
typedef struct flow_guide {
    const float *known; /* [n, numel] */
    const float *masks; /* [n, plane] */
    size_t plane;
    int resample;
} flow_guide;

typedef struct flow_work {
    float *v1, *v2, *pred;
} flow_work;

/* One step from t to t_next < t; `last`: the step that ends at t = 0 (always Euler's). */
static dc_status flow_step(dc_velocity_fn velocity, void *user, int n, size_t numel,
                           const dc_flow_config *cfg, float t, float t_next, int last, dc_rng *rngs,
                           flow_work *w, float *x, dc_error *err) {
    const size_t total = (size_t)n * numel;
    const float dt = t - t_next;
    float *v1 = w->v1, *v2 = w->v2, *pred = w->pred;
    dc_status st;
    if ((st = velocity(user, x, t, n, v1, err)) != DC_OK) return st;
    if (cfg->sampler == DC_SAMPLER_EULER || last ||
        (cfg->sampler == DC_SAMPLER_SDE && cfg->churn == 0.0f)) {
        for (size_t i = 0; i < total; i++)
            x[i] -= dt * v1[i];
        return DC_OK;
    }
    if (cfg->sampler == DC_SAMPLER_SDE) {
        /* the score -eps_hat / t times g^2 / 2 = churn t pulls towards the predicted noise's
         * removal; the injected noise sqrt(2 churn t dt) z puts as much back */
        const float pull = dt * cfg->churn, spread = sqrtf(2.0f * cfg->churn * t * dt);
        for (int s = 0; s < n; s++)
            for (size_t p = 0; p < numel; p++) {
                const size_t i = (size_t)s * numel + p;
                const float eps_hat = x[i] + (1.0f - t) * v1[i];
                x[i] += -dt * v1[i] - pull * eps_hat + spread * dc_rng_normal(&rngs[s]);
            }
        return DC_OK;
    }
    for (size_t i = 0; i < total; i++)
        pred[i] = x[i] - dt * v1[i];
    if ((st = velocity(user, pred, t_next, n, v2, err)) != DC_OK) return st;
    for (size_t i = 0; i < total; i++)
        x[i] -= 0.5f * dt * (v1[i] + v2[i]);
    return DC_OK;
}

/* The known pixels of every state noised to t (fresh draws). */
static void impose_known(const flow_guide *g, int n, size_t numel, float t, dc_rng *rngs,
                         float *x) {
    const size_t channels = numel / g->plane;
    for (int s = 0; s < n; s++)
        for (size_t c = 0; c < channels; c++)
            for (size_t q = 0; q < g->plane; q++) {
                const size_t i = (size_t)s * numel + c * g->plane + q;
                const float z = dc_rng_normal(&rngs[s]); /* drawn for every pixel: the
                                                          * stream does not depend on the mask */
                if (g->masks[(size_t)s * g->plane + q] <= 0.5f)
                    x[i] = (1.0f - t) * g->known[i] + t * z;
            }
}

/* Forward noising from t_next back up to t > t_next: a x + b z has the marginal at t. */
static void renoise(int n, size_t numel, float t_next, float t, dc_rng *rngs, float *x) {
    const float a = (1.0f - t) / (1.0f - t_next);
    const float b2 = t * t - a * a * t_next * t_next, b = b2 > 0.0f ? sqrtf(b2) : 0.0f;
    for (int s = 0; s < n; s++)
        for (size_t p = 0; p < numel; p++) {
            const size_t i = (size_t)s * numel + p;
            x[i] = a * x[i] + b * dc_rng_normal(&rngs[s]);
        }
}

/* The integration from t_start to 0, with a copy of the state into trajectory (when given)
 * after the steps that snapshots k = 0 .. snapshots-1 fall on (step round(k * steps /
 * (snapshots - 1))). rngs: one per state (the stochastic samplers and the guide). */
static dc_status integrate(dc_velocity_fn velocity, void *user, int n, size_t numel,
                           const dc_flow_config *cfg, float t_start, dc_rng *rngs,
                           const flow_guide *guide, float *x, float *trajectory, int snapshots,
                           dc_error *err) {
    dc_status st = check_config(cfg, t_start, err);
    if (st != DC_OK) return st;
    if (!velocity || !x || n < 1 || numel == 0 || (trajectory && snapshots < 2) ||
        (guide && (guide->resample < 1 || guide->resample > 1000 || !guide->known ||
                   !guide->masks || guide->plane == 0 || numel % guide->plane)))
        return dc_set_error(err, DC_ERR_ARG,
                            "flow integration: bad arguments (n %d, steps %d, sampler %d, "
                            "snapshots %d)",
                            n, cfg->steps, (int)cfg->sampler, snapshots);
    const int steps = cfg->steps;
    const size_t total = (size_t)n * numel;
    const int heun = cfg->sampler == DC_SAMPLER_HEUN;
    flow_work w = {malloc(sizeof(float) * total), heun ? malloc(sizeof(float) * total) : NULL,
                   heun ? malloc(sizeof(float) * total) : NULL};
    if (!w.v1 || (heun && (!w.v2 || !w.pred))) {
        free(w.v1), free(w.v2), free(w.pred);
        return dc_set_error(err, DC_ERR_OOM, "flow integration of %d states: out of memory", n);
    }
    int next_snapshot = 0;
    for (int step = 0; st == DC_OK && step <= steps; step++) {
        /* snapshot k lands on step round(k * steps / (snapshots - 1)) */
        while (trajectory && next_snapshot < snapshots &&
               (int)lround((double)next_snapshot * steps / (snapshots - 1)) == step) {
            memcpy(trajectory + (size_t)next_snapshot * total, x, sizeof(float) * total);
            next_snapshot++;
        }
        if (step == steps) break;
        /* times as fractions of whole steps so the last one ends exactly at 0 (t_start 1
         * multiplies exactly) */
        const float t = t_start * (float)(steps - step) / (float)steps;
        const float t_next = t_start * (float)(steps - step - 1) / (float)steps;
        const int last = step + 1 == steps;
        const int repeats = guide && !last ? guide->resample : 1;
        for (int r = 0; st == DC_OK && r < repeats; r++) {
            if (guide) impose_known(guide, n, numel, t, rngs, x);
            st = flow_step(velocity, user, n, numel, cfg, t, t_next, last, rngs, &w, x, err);
            if (st == DC_OK && r + 1 < repeats) renoise(n, numel, t_next, t, rngs, x);
        }
    }
    free(w.v1), free(w.v2), free(w.pred);
    return st;
}

/* One rng per state, sample `first + i`'s own stream of the seed. */
static void seed_streams(dc_rng *rngs, int n, uint64_t seed, int first) {
    const uint64_t stream = dc_seed_mix(seed, FLOW_STOCHASTIC_STREAM);
    for (int i = 0; i < n; i++)
        dc_rng_seed(&rngs[i], dc_seed_mix(stream, (uint64_t)(first + i)));
}

dc_status dc_flow_integrate_config(dc_velocity_fn velocity, void *user, int n, size_t numel,
                                   const dc_flow_config *cfg, float t_start, float *x,
                                   dc_error *err) {
    if (n < 1 || n > (1 << 24))
        return dc_set_error(err, DC_ERR_ARG, "flow integration: %d states", n);
    dc_rng *rngs = malloc(sizeof(dc_rng) * (size_t)n);
    if (!rngs) return dc_set_error(err, DC_ERR_OOM, "flow integration: out of memory");
    if (cfg) seed_streams(rngs, n, cfg->seed, 0);
    dc_status st = integrate(velocity, user, n, numel, cfg, t_start, rngs, NULL, x, NULL, 0, err);
    free(rngs);
    return st;
}

dc_status dc_flow_integrate_inpaint(dc_velocity_fn velocity, void *user, int n, size_t numel,
                                    size_t plane, const dc_flow_config *cfg, const float *known,
                                    const float *masks, int resample, float *x, dc_error *err) {
    if (n < 1 || n > (1 << 24) || !known || !masks || plane == 0 || numel % plane)
        return dc_set_error(err, DC_ERR_ARG,
                            "inpainting: bad arguments (%d states of %zu values, masks of %zu)", n,
                            numel, plane);
    if (resample < 1 || resample > 1000)
        return dc_set_error(err, DC_ERR_ARG, "inpainting: resample %d (use 1 to 1000)", resample);
    dc_rng *rngs = malloc(sizeof(dc_rng) * (size_t)n);
    if (!rngs) return dc_set_error(err, DC_ERR_OOM, "inpainting: out of memory");
    if (cfg) seed_streams(rngs, n, cfg->seed, 0);
    const flow_guide guide = {known, masks, plane, resample};
    dc_status st = integrate(velocity, user, n, numel, cfg, 1.0f, rngs, &guide, x, NULL, 0, err);
    free(rngs);
    for (int s = 0; st == DC_OK && s < n; s++)
        for (size_t i = 0; i < numel; i++)
            if (masks[(size_t)s * plane + i % plane] <= 0.5f)
                x[(size_t)s * numel + i] = known[(size_t)s * numel + i];
    return st;
}

dc_status dc_flow_integrate(dc_velocity_fn velocity, void *user, int n, size_t numel, int steps,
                            dc_sampler sampler, float *x, dc_error *err) {
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = steps, cfg.sampler = sampler;
    return dc_flow_integrate_config(velocity, user, n, numel, &cfg, 1.0f, x, err);
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

/* ------------------------------------------------------------------ the model's velocity */
/* The model's velocity on up to m->batch states; the unused slots of the batch hold zeros.
 * class_label and guidance come from the config: a class-conditioned model feeds the label
 * (and for guidance w > 0 mixes (1 + w) v(x, t, class) - w v(x, t, none)). */
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

/* What every model-level sampler needs: a flow model, and a class only where the model
 * takes one. */
static dc_status check_model(const dc_model *m, const dc_flow_config *cfg, const char *what,
                             dc_error *err) {
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_FLOW) || m->x < 0 || m->time < 0 || m->out < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: a %s model is not a flow model; it cannot sample by integrating "
                            "a velocity",
                            what, dc_model_kind_name(m->spec.kind));
    if (cfg && cfg->class_label >= 0 && m->labels < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: class %d: this diffusion model was trained without classes "
                            "(unconditional); only a model trained on data with classes (and "
                            "without --unconditional) takes a class",
                            what, cfg->class_label);
    if (cfg && m->labels >= 0 && cfg->class_label >= m->spec.cond_classes)
        return dc_set_error(err, DC_ERR_ARG, "%s: class %d: the model knows classes 0 to %d", what,
                            cfg->class_label, m->spec.cond_classes - 1);
    if (cfg && !isfinite(cfg->guidance))
        return dc_set_error(err, DC_ERR_ARG, "%s: guidance %g is not a finite number", what,
                            (double)cfg->guidance);
    return DC_OK;
}

/* The integration of n states of the model from `start` at t_start (copied into out, which
 * may be `start`) to 0, in chunks of the model's batch, clamped to [-1, 1]; with known
 * pixels (known, masks: inpainting) those are kept exactly. */
static dc_status model_run(dc_model *m, int n, const dc_flow_config *cfg, float t_start,
                           const float *start, const float *known, const float *masks, int resample,
                           float *out, float *trajectory, int snapshots, dc_error *err) {
    const size_t plane = (size_t)m->spec.size * m->spec.size;
    const size_t numel = (size_t)m->spec.channels * plane;
    const int B = m->batch;
    model_velocity mv = {m,
                         calloc((size_t)B * numel, sizeof(float)),
                         malloc(sizeof(float) * B),
                         malloc(sizeof(float) * (size_t)B * numel),
                         numel,
                         cfg->class_label < 0 ? -1 : cfg->class_label,
                         cfg->guidance,
                         malloc(sizeof(float) * (size_t)B * numel),
                         calloc((size_t)B, sizeof(int32_t))};
    float *chunk_traj = trajectory ? malloc(sizeof(float) * (size_t)snapshots * B * numel) : NULL;
    dc_rng *rngs = malloc(sizeof(dc_rng) * (size_t)B);
    float *cond = m->cond >= 0 ? malloc(sizeof(float) * (size_t)B * (numel + plane)) : NULL;
    dc_status st = DC_OK;
    if (!mv.x || !mv.t || !mv.v || !mv.v_null || !mv.labels || !rngs ||
        (trajectory && !chunk_traj) || (m->cond >= 0 && !cond)) {
        st = dc_set_error(err, DC_ERR_OOM, "sampling %d images: out of memory", n);
        goto out;
    }
    if (out != start) memcpy(out, start, sizeof(float) * (size_t)n * numel);
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
        seed_streams(rngs, count, cfg->seed, first);
        const flow_guide guide = {known ? known + (size_t)first * numel : NULL,
                                  masks ? masks + (size_t)first * plane : NULL, plane, resample};
        if (m->cond >= 0) {
            /* the mask-conditioned denoiser sees the known pixels (inpainting) or nothing
             * known (new images); the batch's unused slots likewise nothing */
            for (int s = 0; s < B; s++)
                dc_flow_cond_fill(known && s < count ? guide.known + (size_t)s * numel : NULL,
                                  known && s < count ? guide.masks + (size_t)s * plane : NULL,
                                  m->spec.channels, m->spec.size,
                                  cond + (size_t)s * (numel + plane));
            if ((st = dc_graph_set_input(m->g, m->cond, cond)) != DC_OK) {
                st = dc_set_error(err, st, "sampling: the known pixels' input: %s",
                                  dc_graph_error(m->g)->msg);
                break;
            }
        }
        st = integrate(velocity_of_model, &mv, count, numel, cfg, t_start, rngs,
                       known ? &guide : NULL, x, chunk_traj, snapshots, err);
        /* the data's range: the ODE's end can overshoot it slightly */
        for (size_t i = 0; i < (size_t)count * numel; i++)
            x[i] = x[i] < -1.0f ? -1.0f : x[i] > 1.0f ? 1.0f : x[i];
        for (int s = 0; known && s < count; s++)
            for (size_t i = 0; i < numel; i++)
                if (guide.masks[(size_t)s * plane + i % plane] <= 0.5f)
                    x[(size_t)s * numel + i] = guide.known[(size_t)s * numel + i];
        for (int k = 0; trajectory && st == DC_OK && k < snapshots; k++)
            memcpy(trajectory + ((size_t)k * n + first) * numel,
                   chunk_traj + (size_t)k * count * numel, sizeof(float) * count * numel);
    }
    dc_graph_set_train(m->g, 1);
out:
    free(mv.x), free(mv.t), free(mv.v), free(mv.v_null), free(mv.labels), free(chunk_traj),
        free(rngs), free(cond);
    return st;
}

dc_status dc_flow_generate(dc_model *m, int n, const dc_flow_config *cfg, const float *noise,
                           float *out, float *trajectory, int snapshots, dc_error *err) {
    if (!m || !out || n < 1)
        return dc_set_error(err, DC_ERR_ARG, "dc_flow_generate: bad arguments");
    dc_status st;
    if ((st = check_model(m, cfg, "sampling", err)) != DC_OK ||
        (st = check_config(cfg, 1.0f, err)) != DC_OK)
        return st;
    if (trajectory && snapshots < 2)
        return dc_set_error(err, DC_ERR_ARG, "dc_flow_sample: %d trajectory snapshots (use >= 2)",
                            snapshots);
    if (noise)
        memcpy(out, noise,
               sizeof(float) * (size_t)n * m->spec.channels * m->spec.size * m->spec.size);
    else
        dc_flow_noise(m, n, cfg->seed, out);
    return model_run(m, n, cfg, 1.0f, out, NULL, NULL, 0, out, trajectory, snapshots, err);
}

dc_status dc_flow_sample(dc_model *m, int n, int steps, dc_sampler sampler, uint64_t seed,
                         const float *noise, float *out, float *trajectory, int snapshots,
                         dc_error *err) {
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = steps, cfg.sampler = sampler, cfg.seed = seed;
    return dc_flow_generate(m, n, &cfg, noise, out, trajectory, snapshots, err);
}

dc_status dc_flow_sample_guided(dc_model *m, int n, int steps, dc_sampler sampler, uint64_t seed,
                                const float *noise, float *out, float *trajectory, int snapshots,
                                int class_label, float guidance, dc_error *err) {
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = steps, cfg.sampler = sampler, cfg.seed = seed;
    cfg.class_label = class_label;
    cfg.guidance = class_label >= 0 ? guidance : 0.0f; /* no class: nothing to guide towards */
    return dc_flow_generate(m, n, &cfg, noise, out, trajectory, snapshots, err);
}

dc_status dc_flow_edit(dc_model *m, int n, const dc_flow_config *cfg, const float *canvas,
                       float strength, float *out, dc_error *err) {
    if (!m || !canvas || !out || n < 1)
        return dc_set_error(err, DC_ERR_ARG, "dc_flow_edit: bad arguments");
    if (!(strength > 0.0f && strength <= 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "SDEdit: strength %g (use a value in (0, 1])",
                            (double)strength);
    dc_status st;
    if ((st = check_model(m, cfg, "SDEdit", err)) != DC_OK ||
        (st = check_config(cfg, strength, err)) != DC_OK)
        return st;
    const size_t total = (size_t)n * m->spec.channels * m->spec.size * m->spec.size;
    dc_flow_noise(m, n, cfg->seed, out);
    for (size_t i = 0; i < total; i++)
        out[i] = (1.0f - strength) * canvas[i] + strength * out[i];
    dc_flow_config scaled = *cfg;
    scaled.steps = (int)lroundf((float)cfg->steps * strength);
    if (scaled.steps < 1) scaled.steps = 1;
    return model_run(m, n, &scaled, strength, out, NULL, NULL, 0, out, NULL, 0, err);
}

dc_status dc_flow_inpaint(dc_model *m, int n, const dc_flow_config *cfg, const float *images,
                          const float *masks, int resample, float *out, dc_error *err) {
    if (!m || !images || !masks || !out || n < 1)
        return dc_set_error(err, DC_ERR_ARG, "dc_flow_inpaint: bad arguments");
    if (resample < 1 || resample > 1000)
        return dc_set_error(err, DC_ERR_ARG, "inpainting: resample %d (use 1 to 1000)", resample);
    dc_status st;
    if ((st = check_model(m, cfg, "inpainting", err)) != DC_OK ||
        (st = check_config(cfg, 1.0f, err)) != DC_OK)
        return st;
    dc_flow_noise(m, n, cfg->seed, out);
    return model_run(m, n, cfg, 1.0f, out, images, masks, resample, out, NULL, 0, err);
}

int dc_flow_default_resample(const dc_model *m) { return m && m->cond >= 0 ? 1 : 3; }
