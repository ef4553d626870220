/* Model presets built on the graph API: the spec (defaults, checks, JSON), and the model
 * (graph + parameters) each kind builds through its row of the kind table (kinds.c). */
#include <limits.h>
#include <math.h>

#include <cjson/cJSON.h>

#include "deconv/complete.h"
#include "deconv/data.h"
#include "deconv/model.h"
#include "internal.h"
#include "models/kinds.h"

static const char *const mask_names[] = {"none", "bottom", "top",    "left", "right",
                                         "box",  "random", "full",   "mix"};
static const char *const loss_names[] = {"mse", "bce"};
static const char *const code_names[] = {"noise", "vae"};
static const char *const bottleneck_names[] = {"dense", "conv"};

/* Looks `name` up in names[0..count); the error lists them. */
static dc_status parse_name(const char *what, const char *name, const char *const *names,
                            unsigned count, int *out, dc_error *err) {
    for (unsigned i = 0; name && i < count; i++)
        if (!strcmp(name, names[i])) {
            *out = (int)i;
            return DC_OK;
        }
    char list[160] = "";
    size_t used = 0;
    for (unsigned i = 0; i < count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                 i == 0 ? "" : i + 1 == count ? " or " : ", ", names[i]);
    return dc_set_error(err, DC_ERR_ARG, "unknown %s '%s' (use %s)", what, name ? name : "(null)",
                        list);
}

const char *dc_mask_name(dc_mask_kind m) {
    return (unsigned)m < DC_ARRAY_LEN(mask_names) ? mask_names[m] : "unknown";
}

dc_status dc_mask_parse(const char *name, dc_mask_kind *out, dc_error *err) {
    int v = 0;
    DC_TRY(parse_name("mask", name, mask_names, DC_ARRAY_LEN(mask_names), &v, err));
    *out = (dc_mask_kind)v;
    return DC_OK;
}

const char *dc_loss_kind_name(dc_loss_kind k) {
    return (unsigned)k < DC_ARRAY_LEN(loss_names) ? loss_names[k] : "unknown";
}
dc_status dc_loss_kind_parse(const char *name, dc_loss_kind *out, dc_error *err) {
    int v = 0;
    DC_TRY(parse_name("loss", name, loss_names, DC_ARRAY_LEN(loss_names), &v, err));
    *out = (dc_loss_kind)v;
    return DC_OK;
}
const char *dc_code_kind_name(dc_code_kind k) {
    return (unsigned)k < DC_ARRAY_LEN(code_names) ? code_names[k] : "unknown";
}
dc_status dc_code_kind_parse(const char *name, dc_code_kind *out, dc_error *err) {
    int v = 0;
    DC_TRY(parse_name("code", name, code_names, DC_ARRAY_LEN(code_names), &v, err));
    *out = (dc_code_kind)v;
    return DC_OK;
}
const char *dc_bottleneck_kind_name(dc_bottleneck_kind k) {
    return (unsigned)k < DC_ARRAY_LEN(bottleneck_names) ? bottleneck_names[k] : "unknown";
}
dc_status dc_bottleneck_kind_parse(const char *name, dc_bottleneck_kind *out, dc_error *err) {
    int v = 0;
    DC_TRY(parse_name("bottleneck", name, bottleneck_names, DC_ARRAY_LEN(bottleneck_names), &v,
                      err));
    *out = (dc_bottleneck_kind)v;
    return DC_OK;
}

double dc_near_binary_share(const float *images, size_t n) {
    size_t near = 0;
    for (size_t i = 0; i < n; i++) near += fabsf(fabsf(images[i]) - 1.0f) <= 0.1f;
    return n ? (double)near / (double)n : 0.0;
}

dc_status dc_model_spec_fit_data(dc_model_spec *s, const dc_dataset *train, int flags,
                                 char *note, size_t cap, dc_error *err) {
    return dc_model_spec_fit_data_share(s, train, flags, -1.0, note, cap, err);
}

dc_status dc_model_spec_fit_data_share(dc_model_spec *s, const dc_dataset *train, int flags,
                                       double near_binary_share, char *note, size_t cap,
                                       dc_error *err) {
    if (note && cap) note[0] = 0;
    if (dc_model_kind_has(s->kind, DC_KIND_CLASSIFIES) && train->n_classes > 0) {
        if (!(flags & (DC_FIT_CLASSES_GIVEN | DC_FIT_RESUMING))) s->classes = train->n_classes;
        if (train->n_classes > s->classes)
            return dc_set_error(err, DC_ERR_SHAPE, "the data has %d classes, the model has %d",
                                train->n_classes, s->classes);
    }
    if (dc_model_kind_has(s->kind, DC_KIND_FLOW)) {
        /* class conditioning: on when the data has classes, unless the spec says 0 */
        if (!(flags & DC_FIT_RESUMING) && s->cond_classes < 0)
            s->cond_classes = train->labels && train->n_classes > 0 ? train->n_classes : 0;
        if (s->cond_classes > 0 && (!train->labels || train->n_classes > s->cond_classes))
            return dc_set_error(err, DC_ERR_SHAPE,
                                "the model is conditioned on %d classes, the data has %d",
                                s->cond_classes, train->labels ? train->n_classes : 0);
        if (note && cap && s->cond_classes > 0)
            snprintf(note, cap,
                     "conditioned on the data's %d classes (label dropout %g to the null class "
                     "for classifier-free guidance; --unconditional turns it off)",
                     s->cond_classes, (double)s->label_dropout);
        else if (note && cap)
            snprintf(note, cap, "unconditional (%s)",
                     train->labels && train->n_classes > 0 ? "--unconditional"
                                                           : "the data has no classes");
        return DC_OK;
    }
    if ((flags & DC_FIT_RESUMING) || !dc_model_kind_has(s->kind, DC_KIND_ENCODER) ||
        !dc_model_kind_has(s->kind, DC_KIND_DECODER))
        return DC_OK;
    /* MSE's optimum on black-and-white images is grey where unsure; cross-entropy's pushes
     * each pixel to one side: the default where the data is near-binary */
    double share = near_binary_share;
    if (share < 0 && train->lazy) { /* a part at a time: the same count */
        double near = 0;
        DC_TRY(dc_dataset_near_binary_count(train, 0, 1, &near, err));
        const size_t n = (size_t)train->n * dc_dataset_image_numel(train);
        share = n ? near / (double)n : 0.0;
    } else if (share < 0) {
        share =
            dc_near_binary_share(train->images, (size_t)train->n * dc_dataset_image_numel(train));
    }
    if (!(flags & DC_FIT_LOSS_GIVEN))
        s->loss = share >= DC_NEAR_BINARY_SHARE ? DC_LOSS_BCE : DC_LOSS_MSE;
    if (note)
        snprintf(note, cap,
                 "loss %s (%s; %.1f %% of the training pixels lie within 0.1 of -1 or 1, "
                 "near-binary from %.0f %%)",
                 dc_loss_kind_name(s->loss),
                 flags & DC_FIT_LOSS_GIVEN ? "--loss" : "the default for this data", 100.0 * share,
                 100.0 * DC_NEAR_BINARY_SHARE);
    return DC_OK;
}

dc_status dc_model_spec_defaults(dc_model_spec *s, dc_model_kind kind, int channels, int size,
                                 dc_error *err) {
    memset(s, 0, sizeof *s);
    const dc_kind_row *row = dc_kind_row_get(kind);
    if (!row) return dc_set_error(err, DC_ERR_ARG, "unknown model kind %d", (int)kind);
    s->kind = kind;
    s->channels = channels > 0 ? channels : 1;
    s->size = size > 0 ? size : 64;
    s->kernel = 3;
    s->latent = 128;
    s->base = 32;
    s->blocks = 3;
    s->noise = 1.0f;
    s->mask = DC_MASK_BOTTOM;
    s->visible_weight = 0.1f;
    s->beta = 1.0f;
    s->glo_count = 0;
    s->classes = 10;
    s->unroll = 1;
    if (row->defaults) row->defaults(s);
    return DC_OK;
}

dc_status dc_model_spec_default(dc_model_spec *s, const char *kind, int channels, int size,
                                dc_error *err) {
    dc_model_kind k;
    memset(s, 0, sizeof *s);
    DC_TRY(dc_model_kind_parse(kind ? kind : "complete", &k, err));
    return dc_model_spec_defaults(s, k, channels, size, err);
}

dc_status dc_model_spec_check(const dc_model_spec *s, dc_error *err) {
    const dc_kind_row *row = dc_kind_row_get(s->kind);
    if (!row) return dc_set_error(err, DC_ERR_ARG, "unknown model kind %d", (int)s->kind);
    /* the decoder mirrors the encoder's pooling: the size must halve `blocks` times */
    const int dec = (row->info.flags & DC_KIND_DECODER) != 0;
    if (s->channels != 1 && s->channels != 3)
        return dc_set_error(err, DC_ERR_ARG, "--channels %d: use 1 or 3", s->channels);
    if (s->blocks < 1 || s->blocks > 6)
        return dc_set_error(err, DC_ERR_ARG, "--blocks %d: use 1 to 6", s->blocks);
    if (s->base < 1 || s->base > 1024)
        return dc_set_error(err, DC_ERR_ARG, "--base %d: use 1 to 1024", s->base);
    if (s->kernel < 1 || s->kernel % 2 == 0 || s->kernel > 11)
        return dc_set_error(err, DC_ERR_ARG, "--kernel %d: use an odd size from 1 to 11", s->kernel);
    if (s->size < 1) return dc_set_error(err, DC_ERR_ARG, "--size %d must be >= 1", s->size);
    if (dec && (s->size % (1 << s->blocks) || (s->size >> s->blocks) < 1))
        return dc_set_error(err, DC_ERR_SHAPE,
                            "--size %d must be divisible by 2^blocks = %d (%d pooling blocks)", s->size,
                            1 << s->blocks, s->blocks);
    if (!dec && (s->size >> (s->blocks - 1)) < 1)
        return dc_set_error(err, DC_ERR_SHAPE, "--size %d is too small for %d blocks", s->size,
                            s->blocks);
    if (dec && (s->latent < 1 || s->latent > 65536))
        return dc_set_error(err, DC_ERR_ARG, "--latent %d: use 1 to 65536", s->latent);
    DC_TRY(dc_model_check_sizes(s, dec, (row->info.flags & DC_KIND_CLASSIFIES) != 0,
                                (row->info.flags & DC_KIND_LEARNED_LATENTS) != 0, err));
    if (!(s->noise >= 0) || !(s->visible_weight >= 0) || !(s->beta >= 0))
        return dc_set_error(err, DC_ERR_ARG, "--noise, --visible-weight and --beta must be >= 0");
    if ((unsigned)s->loss >= DC_ARRAY_LEN(loss_names) ||
        (unsigned)s->code >= DC_ARRAY_LEN(code_names) ||
        (unsigned)s->bottleneck >= DC_ARRAY_LEN(bottleneck_names) ||
        (unsigned)s->mask >= DC_ARRAY_LEN(mask_names))
        return dc_set_error(err, DC_ERR_ARG, "model spec: loss, code, bottleneck or mask out of range");
    const int complete = s->kind == DC_MODEL_COMPLETE;
    /* glo builds its own loss (host/models/glo.c) and reads only MSE */
    if (s->loss == DC_LOSS_BCE && !(complete || s->kind == DC_MODEL_VAE))
        return dc_set_error(err, DC_ERR_ARG, "--loss bce: only the complete and vae models have it");
    if (!complete && (s->code != DC_CODE_NOISE || s->bottleneck != DC_BOTTLENECK_DENSE ||
                      s->feedback != 0.0f))
        return dc_set_error(err, DC_ERR_ARG,
                            "--code, --bottleneck and --feedback are options of the complete model");
    if (s->hole_input != 0 && s->hole_input != 1)
        return dc_set_error(err, DC_ERR_ARG, "model spec: hole_input %d must be 0 or 1",
                            s->hole_input);
    if (s->hole_input && !complete)
        return dc_set_error(err, DC_ERR_ARG,
                            "the hole input (the mask of the hidden pixels beside the image) is "
                            "an option of the complete model");
    if (s->skips != 0 && s->skips != 1)
        return dc_set_error(err, DC_ERR_ARG, "model spec: skips %d must be 0 or 1", s->skips);
    if (s->skips && !complete)
        return dc_set_error(err, DC_ERR_ARG, "--skips is an option of the complete model");
    if (s->skips && s->tied)
        return dc_set_error(err, DC_ERR_ARG,
                            "--skips with --tied: the tied decoder reuses the encoder's kernels, "
                            "and a skip's extra input channels do not fit them");
    if (s->unroll < 1 || s->unroll > DC_MAX_UNROLL)
        return dc_set_error(err, DC_ERR_ARG, "--unroll %d must be in [1, %d]", s->unroll,
                            DC_MAX_UNROLL);
    if (s->unroll > 1 && !complete)
        return dc_set_error(err, DC_ERR_ARG, "--unroll is an option of the complete model");
    if (!(s->feedback >= 0.0f && s->feedback <= 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "--feedback %g must be in [0, 1]", (double)s->feedback);
    if (s->bottleneck == DC_BOTTLENECK_CONV) {
        const int side = s->size >> s->blocks;
        if (side < 1 || s->latent % (side * side))
            return dc_set_error(err, DC_ERR_SHAPE,
                                "--bottleneck conv: --latent %d must be a multiple of the lowest "
                                "resolution's %d x %d pixels (channels x %d x %d)",
                                s->latent, side, side, side, side);
    }
    if (s->cond_classes != 0 && !(row->info.flags & DC_KIND_FLOW))
        return dc_set_error(err, DC_ERR_ARG,
                            "class conditioning (%d classes) is an option of the diffusion model",
                            s->cond_classes);
    if (s->cond_classes < -1 || s->cond_classes > 65535)
        return dc_set_error(err, DC_ERR_ARG,
                            "model spec: %d conditioning classes (use 0 to 65535, or -1: from the "
                            "data)",
                            s->cond_classes);
    if (!(s->label_dropout >= 0.0f && s->label_dropout < 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "--label-dropout %g must be in [0, 1)",
                            (double)s->label_dropout);
    if (!(s->cond_mask >= 0.0f && s->cond_mask <= 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "--cond-mask %g must be in [0, 1]",
                            (double)s->cond_mask);
    if (s->cond_mask > 0.0f && !dc_model_kind_has(s->kind, DC_KIND_FLOW))
        return dc_set_error(err, DC_ERR_ARG,
                            "--cond-mask: the mask-conditioned denoiser is an option of the "
                            "diffusion model");
    if (s->attention != 0 && s->attention != 1)
        return dc_set_error(err, DC_ERR_ARG, "model spec: attention %d must be 0 or 1",
                            s->attention);
    if (s->attention && !dc_model_kind_has(s->kind, DC_KIND_FLOW))
        return dc_set_error(err, DC_ERR_ARG,
                            "--attention: the self-attention block is an option of the "
                            "diffusion model");
    if (s->time_dist != 0 && (s->time_dist != 1 || !dc_model_kind_has(s->kind, DC_KIND_FLOW)))
        return dc_set_error(err, DC_ERR_ARG,
                            "--time-dist: logit-normal training times are an option of the "
                            "diffusion model");
    if (row->check) DC_TRY(row->check(s, err));
    if (!(s->dropout >= 0 && s->dropout < 1))
        return dc_set_error(err, DC_ERR_ARG, "--dropout %g must be in [0, 1)", (double)s->dropout);
    return DC_OK;
}

/* Floats as %.9g (the shortest text that reads back to the same float); non-finite values
 * have no JSON number and are written as null (which the reader rejects). */
static int json_add_float(cJSON *o, const char *key, float v) {
    if (!isfinite(v)) return cJSON_AddNullToObject(o, key) != NULL;
    char num[32];
    snprintf(num, sizeof num, "%.9g", (double)v);
    return cJSON_AddRawToObject(o, key, num) != NULL;
}

char *dc_model_spec_to_json(const dc_model_spec *s) {
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "kind", dc_model_kind_name(s->kind));
    ok = ok && cJSON_AddNumberToObject(o, "channels", s->channels);
    ok = ok && cJSON_AddNumberToObject(o, "size", s->size);
    ok = ok && cJSON_AddNumberToObject(o, "base", s->base);
    ok = ok && cJSON_AddNumberToObject(o, "blocks", s->blocks);
    ok = ok && cJSON_AddNumberToObject(o, "kernel", s->kernel);
    ok = ok && cJSON_AddNumberToObject(o, "latent", s->latent);
    ok = ok && cJSON_AddNumberToObject(o, "tied", s->tied);
    ok = ok && json_add_float(o, "noise", s->noise);
    ok = ok && cJSON_AddStringToObject(o, "mask", dc_mask_name(s->mask));
    ok = ok && json_add_float(o, "visible_weight", s->visible_weight);
    ok = ok && cJSON_AddNumberToObject(o, "loss_full", s->loss_full);
    ok = ok && cJSON_AddStringToObject(o, "loss", dc_loss_kind_name(s->loss));
    ok = ok && cJSON_AddStringToObject(o, "code", dc_code_kind_name(s->code));
    ok = ok && cJSON_AddStringToObject(o, "bottleneck", dc_bottleneck_kind_name(s->bottleneck));
    ok = ok && json_add_float(o, "feedback", s->feedback);
    if (s->kind == DC_MODEL_COMPLETE) ok = ok && cJSON_AddNumberToObject(o, "hole_input", s->hole_input);
    if (s->kind == DC_MODEL_COMPLETE) ok = ok && cJSON_AddNumberToObject(o, "skips", s->skips);
    if (s->kind == DC_MODEL_COMPLETE) ok = ok && cJSON_AddNumberToObject(o, "unroll", s->unroll);
    ok = ok && json_add_float(o, "beta", s->beta);
    ok = ok && cJSON_AddNumberToObject(o, "glo_count", s->glo_count);
    ok = ok && cJSON_AddNumberToObject(o, "classes", s->classes);
    ok = ok && cJSON_AddNumberToObject(o, "batchnorm", s->batchnorm);
    ok = ok && json_add_float(o, "dropout", s->dropout);
    /* only the kinds that have them: other kinds' descriptions stay as they were */
    if (dc_model_kind_has(s->kind, DC_KIND_FLOW)) {
        ok = ok && cJSON_AddNumberToObject(o, "cond_classes", s->cond_classes);
        ok = ok && json_add_float(o, "label_dropout", s->label_dropout);
        ok = ok && cJSON_AddNumberToObject(o, "time_dist", s->time_dist);
        ok = ok && json_add_float(o, "cond_mask", s->cond_mask);
        ok = ok && cJSON_AddNumberToObject(o, "attention", s->attention);
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* A present key must hold a number; an absent one keeps the kind's default. */
static dc_status json_number(const cJSON *o, const char *key, double *v, int *present,
                             dc_error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);
    *present = item != NULL;
    if (!item) return DC_OK;
    if (!cJSON_IsNumber(item))
        return dc_set_error(err, DC_ERR_FORMAT, "model spec: bad \"%s\"", key);
    *v = item->valuedouble;
    return DC_OK;
}

static dc_status spec_from_object(const cJSON *o, const char *json, dc_model_spec *d,
                                  dc_error *err) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(kind) || !kind->valuestring)
        return dc_set_error(err, DC_ERR_FORMAT, "model spec: no \"kind\" in %.80s", json);
    DC_TRY(dc_model_spec_default(d, kind->valuestring, 1, 64, err));
    struct {
        const char *key;
        int *i;
        float *f;
    } const fields[] = {
        {"channels", &d->channels, NULL},   {"size", &d->size, NULL},
        {"base", &d->base, NULL},           {"blocks", &d->blocks, NULL},
        {"kernel", &d->kernel, NULL},       {"latent", &d->latent, NULL},
        {"tied", &d->tied, NULL},           {"noise", NULL, &d->noise},
        {"visible_weight", NULL, &d->visible_weight},
        {"loss_full", &d->loss_full, NULL}, {"beta", NULL, &d->beta},
        {"glo_count", &d->glo_count, NULL}, {"classes", &d->classes, NULL},
        {"batchnorm", &d->batchnorm, NULL}, {"dropout", NULL, &d->dropout},
        {"feedback", NULL, &d->feedback},   {"cond_classes", &d->cond_classes, NULL},
        {"label_dropout", NULL, &d->label_dropout},
        {"time_dist", &d->time_dist, NULL}, {"cond_mask", NULL, &d->cond_mask},
        {"attention", &d->attention, NULL}, {"hole_input", &d->hole_input, NULL},
        {"unroll", &d->unroll, NULL},       {"skips", &d->skips, NULL},
    };
    for (size_t k = 0; k < DC_ARRAY_LEN(fields); k++) {
        double v = 0;
        int present = 0;
        DC_TRY(json_number(o, fields[k].key, &v, &present, err));
        if (!present) continue;
        if (fields[k].i) {
            if (!(v >= INT_MIN && v <= INT_MAX))
                return dc_set_error(err, DC_ERR_FORMAT, "model spec: bad \"%s\"", fields[k].key);
            *fields[k].i = (int)v;
        } else {
            *fields[k].f = (float)v;
        }
    }
    const cJSON *mask = cJSON_GetObjectItemCaseSensitive(o, "mask");
    if (cJSON_IsString(mask) && mask->valuestring)
        DC_TRY(dc_mask_parse(mask->valuestring, &d->mask, err));
    /* checkpoints written before these options existed read as mse / noise / dense / no
     * feedback: the models they were */
    d->loss = DC_LOSS_MSE;
    d->code = DC_CODE_NOISE;
    d->bottleneck = DC_BOTTLENECK_DENSE;
    if (!cJSON_GetObjectItemCaseSensitive(o, "feedback")) d->feedback = 0.0f;
    /* diffusion checkpoints from before class conditioning are unconditional */
    if (!cJSON_GetObjectItemCaseSensitive(o, "cond_classes")) d->cond_classes = 0;
    /* and from before the mask-conditioned denoiser have no cond input */
    if (!cJSON_GetObjectItemCaseSensitive(o, "cond_mask")) d->cond_mask = 0.0f;
    /* and from before the attention block have none (every kind's default as well) */
    if (!cJSON_GetObjectItemCaseSensitive(o, "attention")) d->attention = 0;
    /* completion models from before the hole input read the image alone */
    if (!cJSON_GetObjectItemCaseSensitive(o, "hole_input")) d->hole_input = 0;
    /* and from before unrolled training trained one pass */
    if (!cJSON_GetObjectItemCaseSensitive(o, "unroll")) d->unroll = 1;
    /* and from before the skips had none */
    if (!cJSON_GetObjectItemCaseSensitive(o, "skips")) d->skips = 0;
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    if (cJSON_IsString(loss) && loss->valuestring)
        DC_TRY(dc_loss_kind_parse(loss->valuestring, &d->loss, err));
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "code");
    if (cJSON_IsString(code) && code->valuestring)
        DC_TRY(dc_code_kind_parse(code->valuestring, &d->code, err));
    const cJSON *bn = cJSON_GetObjectItemCaseSensitive(o, "bottleneck");
    if (cJSON_IsString(bn) && bn->valuestring)
        DC_TRY(dc_bottleneck_kind_parse(bn->valuestring, &d->bottleneck, err));
    return DC_OK;
}

dc_status dc_model_spec_from_json(const char *json, dc_model_spec *s, dc_error *err) {
    if (!json) return dc_set_error(err, DC_ERR_FORMAT, "model spec: missing");
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return dc_set_error(err, DC_ERR_FORMAT, "model spec: not a JSON object: %.80s", json);
    }
    dc_model_spec d;
    dc_status st = spec_from_object(o, json, &d, err);
    cJSON_Delete(o);
    DC_TRY(st);
    DC_TRY(dc_model_spec_check(&d, err));
    *s = d;
    return DC_OK;
}

static void model_reset_ids(dc_model *m) {
    m->x = m->target = m->weight = m->labels = m->index = m->latent = m->code = m->logvar = -1;
    m->noise = m->z_in = m->out = m->loss = m->recon = m->kl = m->last_conv = m->time = m->aug =
        m->cond = m->hole = -1;
}

static dc_status build(dc_model *m, dc_error *err) {
    const dc_kind_row *row = dc_kind_row_get(m->spec.kind);
    dc_graph *g = m->g;
    if (m->decoder_only) {
        int acts[DC_MAX_BLOCKS], *skips = NULL;
        if (m->spec.skips) {
            /* the skips come from the encoder of the blank canvas (x 0, every pixel hidden:
             * what generation starts from), set once in model_new */
            const int C = m->spec.channels, S = m->spec.size;
            m->x = dc_input(g, "x", C, S, S);
            if (m->spec.hole_input) m->hole = dc_input(g, "hole", 1, S, S);
            dc_model_build_encoder_hole(g, &m->spec, m->x, m->hole, acts);
            skips = acts;
        }
        m->z_in = dc_input(g, "z", m->spec.latent, 1, 1);
        m->latent = m->z_in;
        m->out = dc_model_build_decoder_skips(g, &m->spec, m->z_in, skips);
    } else {
        row->build(m);
    }
    if (dc_graph_finalize(g) != DC_OK)
        return dc_set_error(err, dc_graph_error(g)->status, "model %s: %s", row->info.name,
                            dc_graph_error(g)->msg);
    return DC_OK;
}

/* The decoder-only graph of a model with skips: its encoder reads the blank canvas. */
static dc_status set_blank_canvas(dc_model *m, dc_error *err) {
    const size_t n = (size_t)m->batch * m->spec.channels * m->spec.size * m->spec.size;
    float *zeros = calloc(n, sizeof(float));
    if (!zeros) return dc_set_error(err, DC_ERR_OOM, "model: out of memory");
    dc_status s = dc_graph_set_input(m->g, m->x, zeros);
    free(zeros);
    if (s != DC_OK) return dc_set_error(err, s, "model: %s", dc_graph_error(m->g)->msg);
    return dc_model_set_hole(m, NULL, 0, err);
}

static dc_status model_new(dc_backend *be, const dc_model_spec *spec, int batch, dc_params *shared,
                           int decoder_only, int training, dc_model **out, dc_error *err) {
    *out = NULL;
    DC_TRY(dc_model_spec_check(spec, err));
    if (decoder_only && !dc_model_kind_has(spec->kind, DC_KIND_DECODER))
        return dc_set_error(err, DC_ERR_ARG, "a %s has no decoder", dc_model_kind_name(spec->kind));
    dc_model *m = calloc(1, sizeof *m);
    if (!m) return dc_set_error(err, DC_ERR_OOM, "model: out of memory");
    m->spec = *spec;
    m->be = be;
    m->batch = batch;
    m->decoder_only = decoder_only;
    m->training = training;
    model_reset_ids(m);
    dc_status s = DC_OK;
    if (shared) {
        m->params = shared;
    } else {
        s = dc_params_create(be, &m->params);
        m->owns_params = 1;
        if (s != DC_OK) {
            dc_set_error(err, s, "model: cannot create parameters");
            goto fail;
        }
    }
    if ((s = dc_graph_create(m->params, batch, &m->g)) != DC_OK) {
        dc_set_error(err, s, "model: %s", dc_params_error(m->params)->msg);
        goto fail;
    }
    if (training) dc_graph_set_fusion(m->g, 1);
    if ((s = build(m, err)) != DC_OK) goto fail;
    if (decoder_only && spec->skips && (s = set_blank_canvas(m, err)) != DC_OK) goto fail;
    *out = m;
    return DC_OK;
fail:
    dc_model_free(m);
    return s;
}

dc_status dc_model_create(dc_backend *be, const dc_model_spec *spec, int batch, dc_model **out,
                          dc_error *err) {
    if (!be || !spec || !out) return dc_set_error(err, DC_ERR_ARG, "dc_model_create: NULL argument");
    return model_new(be, spec, batch, NULL, 0, 0, out, err);
}

dc_status dc_model_create_training(dc_backend *be, const dc_model_spec *spec, int batch,
                                   dc_model **out, dc_error *err) {
    if (!be || !spec || !out)
        return dc_set_error(err, DC_ERR_ARG, "dc_model_create_training: NULL argument");
    return model_new(be, spec, batch, NULL, 0, 1, out, err);
}

dc_status dc_model_create_shared(dc_model *src, int batch, int decoder_only, dc_model **out,
                                 dc_error *err) {
    if (!src || !out) return dc_set_error(err, DC_ERR_ARG, "dc_model_create_shared: NULL argument");
    return model_new(src->be, &src->spec, batch, src->params, decoder_only, 0, out, err);
}

void dc_model_free(dc_model *m) {
    if (!m) return;
    if (m->feedback_planes) m->be->ops->free(m->be, m->feedback_planes);
    dc_graph_free(m->g);
    if (m->owns_params) dc_params_free(m->params);
    free(m);
}

dc_status dc_model_sample_latents(const dc_model *m, int n, float t, uint64_t seed, float *z,
                                  dc_error *err) {
    if (!m || !z || n < 0) return dc_set_error(err, DC_ERR_ARG, "dc_model_sample_latents: bad arguments");
    const dc_kind_row *row = dc_kind_row_get(m->spec.kind);
    if (!row || !(row->info.flags & DC_KIND_DECODER))
        return dc_set_error(err, DC_ERR_ARG, "a %s model has no latents to sample",
                            dc_model_kind_name(m->spec.kind));
    /* a stream of its own: training initialises from dc_rng_seed(seed) too, and glo's
     * latents are its first draws, so the same stream here would decode near-copies of
     * the training images in their order */
    dc_rng rng;
    dc_rng_seed(&rng, dc_seed_mix(seed, DC_SAMPLING_STREAM));
    for (int i = 0; i < n * m->spec.latent; i++) z[i] = t * dc_rng_normal(&rng);
    return row->shape_latents ? row->shape_latents(m, n, z, err) : DC_OK;
}

/* ---- masks ---- */
/* DC_MASK_MIX's draw, in percent: full and random boxes most often (new images start
 * from a blank canvas; random holes teach local completion), the fixed halves and the box
 * for the completions the command line offers. */
static const struct {
    dc_mask_kind kind;
    int percent;
} mask_mix[] = {{DC_MASK_FULL, 25},  {DC_MASK_RANDOM, 25}, {DC_MASK_BOTTOM, 10}, {DC_MASK_TOP, 10},
                {DC_MASK_LEFT, 10},  {DC_MASK_RIGHT, 10},  {DC_MASK_BOX, 10}};

void dc_mask_make(dc_mask_kind kind, int h, int w, dc_rng *rng, float *mask) {
    int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
    /* no random stream: the drawn kinds take a fixed region (mix: bottom; random: box) */
    if (!rng && kind == DC_MASK_MIX) kind = DC_MASK_BOTTOM;
    if (!rng && kind == DC_MASK_RANDOM) kind = DC_MASK_BOX;
    if (kind == DC_MASK_MIX) {
        int draw = (int)dc_rng_below(rng, 100), k = 0;
        while (draw >= mask_mix[k].percent) draw -= mask_mix[k++].percent;
        kind = mask_mix[k].kind;
    }
    switch (kind) {
    case DC_MASK_MIX: break; /* replaced above */
    case DC_MASK_FULL: y0 = 0, y1 = h, x0 = 0, x1 = w; break;
    case DC_MASK_NONE: break;
    case DC_MASK_BOTTOM: y0 = h / 2, y1 = h, x0 = 0, x1 = w; break;
    case DC_MASK_TOP: y0 = 0, y1 = h / 2, x0 = 0, x1 = w; break;
    case DC_MASK_LEFT: y0 = 0, y1 = h, x0 = 0, x1 = w / 2; break;
    case DC_MASK_RIGHT: y0 = 0, y1 = h, x0 = w / 2, x1 = w; break;
    case DC_MASK_BOX: y0 = h / 4, y1 = h - h / 4, x0 = w / 4, x1 = w - w / 4; break;
    case DC_MASK_RANDOM: {
        int bh = h / 4 + (int)dc_rng_below(rng, (uint32_t)(h / 4 + 1));
        int bw = w / 4 + (int)dc_rng_below(rng, (uint32_t)(w / 4 + 1));
        y0 = (int)dc_rng_below(rng, (uint32_t)(h - bh + 1));
        x0 = (int)dc_rng_below(rng, (uint32_t)(w - bw + 1));
        y1 = y0 + bh, x1 = x0 + bw;
        break;
    }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) mask[y * w + x] = (y >= y0 && y < y1 && x >= x0 && x < x1) ? 1.0f : 0.0f;
}

void dc_mask_apply(const float *img, const float *mask, int c, int h, int w, float fill, float vw,
                   int loss_full, float *masked, float *weight) {
    const int hw = h * w;
    for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < hw; p++) {
            const float hidden = mask[p];
            if (masked) masked[ch * hw + p] = hidden > 0.5f ? fill : img[ch * hw + p];
            if (weight) weight[ch * hw + p] = loss_full ? 1.0f : (hidden > 0.5f ? 1.0f : vw);
        }
}
