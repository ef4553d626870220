/* deconv info: describe a run folder (its saved configuration, model, data, epochs done,
 * best validation loss), or build a model preset and print its one-line-per-node summary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "deconv/model.h"
#include "deconv/train.h"

/* The layer summary of a spec's model, built on the CPU. */
static int print_model(const dc_model_spec *spec, int batch) {
    dc_error err = {0};
    dc_backend *be = NULL;
    if (dc_backend_create_cpu(1, &be, &err) != DC_OK) return dc_cli_fail("info", "%s", err.msg);
    dc_model *m = NULL;
    if (dc_model_create(be, spec, batch, &m, &err) != DC_OK) {
        dc_backend_free(be);
        return dc_cli_fail("info", "%s", err.msg);
    }
    printf("model %s\n", dc_model_kind_name(spec->kind));
    dc_graph_print_summary(dc_model_graph(m), stdout);
    printf("forward GFLOPs per image: %.4f\n",
           dc_graph_forward_flops(dc_model_graph(m)) / batch / 1e9);
    dc_model_free(m);
    dc_backend_free(be);
    return 0;
}

/* The lowest validation loss in FOLDER/loss.csv (epoch,step,train_loss,val_loss,...) and
 * its epoch; *epoch = 0 when there is none. */
static double best_val_loss(const char *folder, int *epoch) {
    char path[1200];
    *epoch = 0;
    if (snprintf(path, sizeof path, "%s/loss.csv", folder) >= (int)sizeof path) return NAN;
    char *text = dc_cli_read_text(path);
    if (!text) return NAN;
    double best = NAN;
    char *line = strchr(text, '\n'); /* after the header */
    while (line && *++line) {
        double e, step, train, val;
        if (sscanf(line, "%lf,%lf,%lf,%lf", &e, &step, &train, &val) == 4 && isfinite(val) &&
            !(val >= best)) {
            best = val;
            *epoch = (int)e;
        }
        line = strchr(line, '\n');
    }
    free(text);
    return best;
}

static int info_run(const char *run) {
    dc_train_checkpoint at;
    dc_error err = {0};
    if (dc_train_read_checkpoint(run, &at, &err) != DC_OK)
        return dc_cli_fail("info", "%s (give a run folder or its .safetensors file)", err.msg);
    char ckpt[4096];
    dc_meta meta = {0};
    char **classes = NULL;
    int n_classes = 0;
    if (dc_cli_checkpoint_path(run, ckpt, sizeof ckpt) == 0 &&
        dc_checkpoint_read_meta(ckpt, &meta, &err) == DC_OK)
        dc_cli_run_classes(&meta, &classes, &n_classes);
    const char *folder = at.config.out;
    printf("run %s\n", run);
    printf("model %s, %d channel(s), %dx%d\n", dc_model_kind_name(at.spec.kind), at.spec.channels,
           at.spec.size, at.spec.size);
    const char *size = dc_meta_get(&meta, "dataset_size");
    printf("data %s (%s training images)\n", at.config.data, size ? size : "?");
    if (n_classes > 0) {
        printf("classes %d:", n_classes);
        for (int i = 0; i < n_classes; i++)
            printf("%s %s", i ? "," : "", classes[i]);
        printf("\n");
    }
    printf("epochs done %d of %d (global step %ld%s)\n", at.epoch, at.config.epochs, at.step,
           at.step_in_epoch ? ", stopped within an epoch" : "");
    int best_epoch = 0;
    const double best = best_val_loss(folder, &best_epoch);
    if (best_epoch > 0)
        printf("best validation loss %.6f at epoch %d\n", best, best_epoch);
    else
        printf("best validation loss: none recorded (no held-out images, or no epoch done)\n");
    dc_cli_names_free(classes, n_classes);
    dc_meta_clear(&meta);
    char path[1200];
    char *config = NULL;
    if (snprintf(path, sizeof path, "%s/config.json", folder) < (int)sizeof path)
        config = dc_cli_read_text(path);
    if (config)
        printf("\n%s:\n%s\n", path, config);
    else
        printf("\n(no config.json in %s: a run made before the run folder recorded one)\n", folder);
    free(config);
    return print_model(&at.spec, 1);
}

static const dc_option info_options[] = {
    {"batch", 0, DC_OPT_INT, "N", "batch size of the built model", "1", NULL},
    DC_OPT_END,
};

static const dc_command info_command = {
    .name = "info",
    .synopsis = "RUN\n[--model NAME] [model options] [--batch N]",
    .about = "With a run folder (or its .safetensors file): the run's model, data, classes,\n"
             "epochs done and best validation loss, then its config.json and layers.\n"
             "Without: builds the model and prints one line per node: op, name, shape,\n"
             "parameters.\n",
    .options = info_options,
    .shared = dc_cli_model_options,
    .max_positional = 1,
    .positional_what = "one RUN",
};

int dc_cmd_info(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &info_command, argc, argv)) return a.status;
    if (a.n_positional > 0) {
        /* the run's own model: model options would describe another one */
        if (dc_args_check_unused(&a)) return 2;
        return info_run(a.positional[0]);
    }
    dc_model_spec spec;
    if (dc_cli_model_spec(&a, &spec)) return 2;
    int batch = dc_args_int(&a, "batch", 1);
    if (dc_args_check_unused(&a)) return 2;
    return print_model(&spec, batch);
}
