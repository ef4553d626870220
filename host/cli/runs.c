/* Run folders and model options shared by the subcommands. */
#define _XOPEN_SOURCE 700
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

int dc_cli_checkpoint_path(const char *run, char *buf, size_t cap) {
    struct stat st;
    int n;
    if (stat(run, &st) == 0 && S_ISDIR(st.st_mode))
        n = snprintf(buf, cap, "%s/%s", run, DC_RUN_CHECKPOINT);
    else
        n = snprintf(buf, cap, "%s", run);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int dc_cli_absolute_data(char *data, size_t cap) {
    struct stat st;
    if (stat(data, &st) != 0) return 0; /* "fashion-mnist", or missing: the load says so */
    char *abs = realpath(data, NULL);
    if (!abs) return 0;
    const int rc = dc_cli_copy_path("train", "--data", abs, data, cap);
    free(abs);
    return rc;
}

int dc_cli_open_run(const char *cmd, const char *run, dc_backend *be, int batch, dc_model **out,
                    dc_meta *meta) {
    char path[4096];
    dc_error err = {0};
    dc_meta local = {0};
    dc_meta *m = meta ? meta : &local;
    *out = NULL;
    if (!run) return dc_cli_fail(cmd, "no run given (a run folder or a .safetensors file)");
    if (dc_cli_checkpoint_path(run, path, sizeof path))
        return dc_cli_fail(cmd, "run path '%.100s...' is longer than %zu characters", run,
                           sizeof path - 1);
    if (dc_checkpoint_read_meta(path, m, &err) != DC_OK) {
        dc_meta_clear(&local);
        return dc_cli_fail(cmd, "%s", err.msg);
    }
    dc_model_spec spec;
    const char *js = dc_meta_get(m, "model");
    if (!js || dc_model_spec_from_json(js, &spec, &err) != DC_OK) {
        dc_meta_clear(&local);
        return dc_cli_fail(cmd, "%s: no usable model description in the checkpoint metadata (%s)",
                           path, js ? err.msg : "key 'model' missing");
    }
    dc_model *model = NULL;
    if (dc_model_create(be, &spec, batch, &model, &err) != DC_OK ||
        dc_checkpoint_load(path, model->params, NULL, NULL, &err) != DC_OK) {
        dc_model_free(model);
        dc_meta_clear(&local);
        return dc_cli_fail(cmd, "%s", err.msg);
    }
    dc_meta_clear(&local);
    *out = model;
    return 0;
}

const dc_option dc_cli_model_options[] = {
    {"model", 0, DC_OPT_TEXT, "complete|vae|glo|diffusion|classifier", "the model kind",
     "complete", NULL},
    {"size", 0, DC_OPT_INT, "N", "image side in pixels", "64; classifier 28, diffusion 32", NULL},
    {"channels", 0, DC_OPT_INT, "1|3", "image channels", "the data's (train), else 1", NULL},
    {"base", 0, DC_OPT_INT, "N", "channels of the first layer", "32", NULL},
    {"blocks", 0, DC_OPT_INT, "N", "encoder/decoder blocks (diffusion: U-Net levels)", "3", NULL},
    {"kernel", 0, DC_OPT_INT, "K", "convolution kernel side", "3", NULL},
    {"latent", 0, DC_OPT_INT, "N", "latent size", "128; glo 32", NULL},
    {"tied", 0, DC_OPT_FLAG, NULL, "decoder weights tied to the encoder's", NULL, NULL},
    {"noise", 0, DC_OPT_NUM, "STD", "std of the random code (complete)", "1.0", NULL},
    {"mask", 0, DC_OPT_TEXT, "mix|full|bottom|top|left|right|box|random|none",
     "what is hidden while training (complete)", "mix", NULL},
    {"visible-weight", 0, DC_OPT_NUM, "W", "loss weight of the visible pixels", "0.1", NULL},
    {"loss", 0, DC_OPT_TEXT, "mse|bce[,masked|full]", "reconstruction loss",
     "near-binary data: bce, else mse", NULL},
    {"beta", 0, DC_OPT_NUM, "B", "KL weight (vae and --code vae)", "1.0", NULL},
    {"code", 0, DC_OPT_TEXT, "noise|vae", "the random code of the completion model", NULL, NULL},
    {"bottleneck", 0, DC_OPT_TEXT, "dense|conv", "completion model bottleneck", NULL, NULL},
    {"feedback", 0, DC_OPT_NUM, "P", "share of steps fed the model's own output (complete)",
     "0.6", NULL},
    {"skips", 0, DC_OPT_FLAG, NULL,
     "complete: U-Net skip connections from the encoder to the decoder at every size but the "
     "output's (the default; not with --tied)",
     NULL, NULL},
    {"no-skips", 0, DC_OPT_FLAG, NULL, "complete: no skip connections (the first design)", NULL,
     NULL},
    {"unroll", 0, DC_OPT_INT, "K",
     "complete: train K passes as one network (each pass's output fed back as the next one's "
     "input, gradient through all of them, the loss the mean over the passes)",
     "2; --tied 1", NULL},
    {"classes", 0, DC_OPT_INT, "N", "classes (classifier; default: the data's)", NULL, NULL},
    {"no-batchnorm", 0, DC_OPT_FLAG, NULL, "no batch normalisation", NULL, NULL},
    {"dropout", 0, DC_OPT_NUM, "P", "dropout before the classifier head", NULL, NULL},
    {"glo-count", 0, DC_OPT_INT, "N", "latent codes a glo model holds", NULL, NULL},
    {"label-dropout", 0, DC_OPT_NUM, "P", "share of steps trained without the class (diffusion)",
     "0.1", NULL},
    {"unconditional", 0, DC_OPT_FLAG, NULL,
     "diffusion: ignore the data's classes (else it is conditioned on them)", NULL, NULL},
    {"time-dist", 0, DC_OPT_TEXT, "uniform|logit-normal", "diffusion: the training times",
     "uniform", NULL},
    {"cond-mask", 0, DC_OPT_NUM, "P",
     "diffusion: share of training images with a random part known (learned inpainting; 0: "
     "none)",
     "0.5", NULL},
    {"no-hole-input", 0, DC_OPT_FLAG, NULL,
     "complete: the encoder sees the image only, not also the mask of the hidden pixels (the "
     "design before the hole input)", NULL, NULL},
    {"attention", 0, DC_OPT_FLAG, NULL,
     "diffusion: a self-attention block at the lowest resolution, after the middle ResBlock", NULL,
     NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL},
};

int dc_cli_model_spec(dc_args *a, dc_model_spec *spec) {
    return dc_cli_model_spec_channels(a, spec, 1);
}

int dc_cli_model_spec_channels(dc_args *a, dc_model_spec *spec, int default_channels) {
    dc_error err = {0};
    dc_model_kind kind;
    if (dc_model_kind_parse(dc_args_str(a, "model", "complete"), &kind, &err) != DC_OK) {
        fprintf(stderr, "deconv %s: %s\n", a->cmd, err.msg);
        return 2;
    }
    int size = dc_args_int(a, "size", dc_model_kind_get(kind)->train.size);
    int channels = dc_args_int(a, "channels", default_channels);
    /* the library takes size 0 as "the default"; on the command line it is a mistake */
    if (size < 1) {
        fprintf(stderr, "deconv %s: --size %d must be >= 1\n", a->cmd, size);
        return 2;
    }
    if (dc_model_spec_defaults(spec, kind, channels, size, &err) != DC_OK) {
        fprintf(stderr, "deconv %s: %s\n", a->cmd, err.msg);
        return 2;
    }
    spec->base = dc_args_int(a, "base", spec->base);
    spec->blocks = dc_args_int(a, "blocks", spec->blocks);
    spec->kernel = dc_args_int(a, "kernel", spec->kernel);
    spec->latent = dc_args_int(a, "latent", spec->latent);
    spec->tied = dc_args_flag(a, "tied");
    if (spec->tied && spec->kind == DC_MODEL_COMPLETE) {
        /* the weight-tied variant as designed: its kernels take no skips, and its passes
         * were measured without unrolling (--unroll still sets them) */
        spec->skips = 0;
        spec->unroll = 1;
    }
    spec->noise = dc_args_float(a, "noise", spec->noise);
    const char *mask = dc_args_str(a, "mask", NULL);
    if (mask && dc_mask_parse(mask, &spec->mask, &err) != DC_OK) {
        fprintf(stderr, "deconv %s: --mask: %s\n", a->cmd, err.msg);
        return 2;
    }
    spec->visible_weight = dc_args_float(a, "visible-weight", spec->visible_weight);
    /* --loss names the function (mse, bce) or the weighting (masked, full); a comma joins
     * both, e.g. bce,full */
    const char *loss = dc_args_str(a, "loss", NULL);
    if (loss) {
        char list[64];
        snprintf(list, sizeof list, "%s", loss);
        for (char *save = NULL, *item = strtok_r(list, ",", &save); item;
             item = strtok_r(NULL, ",", &save)) {
            if (!strcmp(item, "full"))
                spec->loss_full = 1;
            else if (!strcmp(item, "masked"))
                spec->loss_full = 0;
            else if (dc_loss_kind_parse(item, &spec->loss, &err) != DC_OK) {
                fprintf(stderr, "deconv %s: --loss %s: use mse or bce, masked or full\n", a->cmd,
                        loss);
                return 2;
            }
        }
    }
    const char *code = dc_args_str(a, "code", NULL);
    if (code && dc_code_kind_parse(code, &spec->code, &err) != DC_OK) {
        fprintf(stderr, "deconv %s: --code: %s\n", a->cmd, err.msg);
        return 2;
    }
    const char *bottleneck = dc_args_str(a, "bottleneck", NULL);
    if (bottleneck && dc_bottleneck_kind_parse(bottleneck, &spec->bottleneck, &err) != DC_OK) {
        fprintf(stderr, "deconv %s: --bottleneck: %s\n", a->cmd, err.msg);
        return 2;
    }
    spec->feedback = dc_args_float(a, "feedback", spec->feedback);
    spec->unroll = dc_args_int(a, "unroll", spec->unroll);
    spec->beta = dc_args_float(a, "beta", spec->beta);
    spec->classes = dc_args_int(a, "classes", spec->classes);
    if (dc_args_flag(a, "no-batchnorm")) spec->batchnorm = 0;
    spec->dropout = dc_args_float(a, "dropout", spec->dropout);
    spec->glo_count = dc_args_int(a, "glo-count", spec->glo_count > 0 ? spec->glo_count : 1);
    /* diffusion: class conditioning follows the data unless --unconditional */
    const char *label_dropout = dc_args_str(a, "label-dropout", NULL);
    const int unconditional = dc_args_flag(a, "unconditional");
    if ((label_dropout || unconditional) && !dc_model_kind_has(spec->kind, DC_KIND_FLOW)) {
        fprintf(stderr,
                "deconv %s: --label-dropout and --unconditional are options of the "
                "diffusion model\n",
                a->cmd);
        return 2;
    }
    spec->label_dropout = dc_args_float(a, "label-dropout", spec->label_dropout);
    if (unconditional) spec->cond_classes = 0;
    if (dc_args_str(a, "cond-mask", NULL) && !dc_model_kind_has(spec->kind, DC_KIND_FLOW)) {
        fprintf(stderr, "deconv %s: --cond-mask is an option of the diffusion model\n", a->cmd);
        return 2;
    }
    spec->cond_mask = dc_args_float(a, "cond-mask", spec->cond_mask);
    if (dc_args_flag(a, "no-hole-input")) {
        if (spec->kind != DC_MODEL_COMPLETE) {
            fprintf(stderr, "deconv %s: --no-hole-input is an option of the complete model\n", a->cmd);
            return 2;
        }
        spec->hole_input = 0;
    }
    if (dc_args_flag(a, "skips") || dc_args_flag(a, "no-skips")) {
        if (spec->kind != DC_MODEL_COMPLETE) {
            fprintf(stderr, "deconv %s: --%s is an option of the complete model\n", a->cmd,
                    dc_args_flag(a, "skips") ? "skips" : "no-skips");
            return 2;
        }
        if (dc_args_flag(a, "skips") && dc_args_flag(a, "no-skips")) {
            fprintf(stderr, "deconv %s: --skips and --no-skips contradict each other\n", a->cmd);
            return 2;
        }
        spec->skips = dc_args_flag(a, "skips");
    }
    if (dc_args_flag(a, "attention")) {
        if (!dc_model_kind_has(spec->kind, DC_KIND_FLOW)) {
            fprintf(stderr, "deconv %s: --attention is an option of the diffusion model\n", a->cmd);
            return 2;
        }
        spec->attention = 1;
    }
    const char *time_dist = dc_args_str(a, "time-dist", NULL);
    if (time_dist) {
        if (!strcmp(time_dist, "uniform")) spec->time_dist = 0;
        else if (!strcmp(time_dist, "logit-normal")) spec->time_dist = 1;
        else {
            fprintf(stderr, "deconv %s: --time-dist %s: use uniform or logit-normal\n", a->cmd,
                    time_dist);
            return 2;
        }
    }
    if (dc_model_spec_check(spec, &err) != DC_OK) {
        fprintf(stderr, "deconv %s: %s\n", a->cmd, err.msg);
        return 2;
    }
    return 0;
}
