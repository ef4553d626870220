/* deconv export: trained weights for other tools — a clean safetensors file (no optimizer
 * state), a numpy .npz, or an ONNX inference graph. */
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "deconv/io.h"
#include "deconv/model.h"

static const dc_option export_options[] = {
    {"format", 0, DC_OPT_TEXT, "safetensors|npz|onnx",
     "safetensors: weights and metadata without optimizer state\n"
     "npz: one float32 array per parameter (numpy.load)\n"
     "onnx: inference graph (opset 13); complete: inputs image, noise;\n"
     "vae/glo: decoder from z; classifier: probabilities, logits;\n"
     "diffusion: the denoiser, inputs x, t, aug (zeros to sample) and\n"
     "on a class-conditioned model class (int64), output velocity (required)",
     NULL, NULL},
    {"out", 'o', DC_OPT_TEXT, "OUT",
     "the file; default: RUN/model.npz, RUN/model.onnx,\nRUN/model.weights.safetensors (beside a "
     "checkpoint file: its name\nwith the new extension)",
     NULL, "output"},
    DC_OPT_END,
};

static const dc_command export_command = {
    .name = "export",
    .synopsis = "RUN --format safetensors|npz|onnx [-o OUT]",
    .about = "Trained weights for other tools. RUN is a run folder (its model.safetensors) or a\n"
             ".safetensors checkpoint.\n",
    .options = export_options,
    .max_positional = 1,
    .positional_what = "one RUN",
    .computes = 1,
};

static void default_output(const char *run, const char *ext, char *buf, size_t cap) {
    struct stat st;
    if (stat(run, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t n = strlen(run);
        snprintf(buf, cap, "%s%smodel%s", run, n && run[n - 1] == '/' ? "" : "/", ext);
        return;
    }
    size_t n = strlen(run);
    const char *suffix = ".safetensors";
    size_t sl = strlen(suffix);
    if (n > sl && !strcmp(run + n - sl, suffix)) n -= sl;
    snprintf(buf, cap, "%.*s%s", (int)n, run, ext);
}

int dc_cmd_export(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &export_command, argc, argv)) return a.status;
    const char *format = dc_args_str(&a, "format", NULL);
    const char *out = dc_args_str(&a, "out", NULL);
    if (dc_args_check_unused(&a)) return 2;
    if (a.n_positional != 1) return dc_cli_usage("export", "give one RUN (deconv export --help)");
    if (!format) return dc_cli_usage("export", "--format is required: safetensors, npz or onnx");
    const char *ext = !strcmp(format, "npz") ? ".npz"
                    : !strcmp(format, "onnx") ? ".onnx"
                    : !strcmp(format, "safetensors") ? ".weights.safetensors" : NULL;
    if (!ext) return dc_cli_usage("export", "--format %s: use safetensors, npz or onnx", format);
    const char *run = a.positional[0];
    char path[4096];
    if (!out) {
        default_output(run, ext, path, sizeof path);
        out = path;
    }

    dc_error err = {0};
    dc_backend *be = NULL;
    if (dc_backend_create_cpu(1, &be, &err) != DC_OK) return dc_cli_fail("export", "%s", err.msg);
    dc_model *model = NULL;
    dc_meta meta = {0};
    if (dc_cli_open_run("export", run, be, 1, &model, &meta)) {
        dc_meta_clear(&meta);
        dc_backend_free(be);
        return 1;
    }
    dc_status s;
    if (!strcmp(format, "npz")) {
        s = dc_export_npz(out, model->params, &err);
    } else if (!strcmp(format, "onnx")) {
        s = dc_export_onnx(out, model, &err);
    } else {
        /* the weights and what describes them; the optimizer state stays behind */
        dc_meta keep = {0};
        s = DC_OK;
        for (int i = 0; i < meta.n && s == DC_OK; i++)
            if (strncmp(meta.key[i], "optim.", 6)) s = dc_meta_set(&keep, meta.key[i], meta.value[i]);
        if (s == DC_OK)
            s = dc_checkpoint_save(out, model->params, NULL, &keep, &err);
        else
            dc_set_error(&err, s, "copying the metadata: out of memory");
        dc_meta_clear(&keep);
    }
    int rc = 0;
    if (s != DC_OK)
        rc = dc_cli_fail("export", "%s", err.msg);
    else if (!a.quiet)
        printf("exported the %s model to %s (%s)\n", dc_model_kind_name(model->spec.kind), out, format);
    dc_model_free(model);
    dc_meta_clear(&meta);
    dc_backend_free(be);
    return rc;
}
