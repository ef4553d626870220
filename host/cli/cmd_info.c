/* deconv info: build a model preset and print its one-line-per-node summary. */
#include "cli/cli.h"
#include "deconv/model.h"

int dc_cmd_info(int argc, char **argv) {
    static const char *const flags[] = {"help", "tied", "no-batchnorm", NULL};
    dc_args a;
    if (dc_args_parse(&a, "info", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help")) {
        printf("usage: deconv info [--model NAME] [model options] [--batch N]\n"
               "Builds the model and prints one line per node: op, name, shape, parameters.\n");
        return 0;
    }
    dc_model_spec spec;
    if (dc_cli_model_spec(&a, &spec)) return 2;
    int batch = dc_args_int(&a, "batch", 1);
    if (dc_args_check_unused(&a)) return 2;
    dc_error err = {0};
    dc_backend *be = NULL;
    if (dc_backend_create_cpu(1, &be, &err) != DC_OK) return dc_cli_fail("info", "%s", err.msg);
    dc_model *m = NULL;
    if (dc_model_create(be, &spec, batch, &m, &err) != DC_OK) {
        dc_backend_free(be);
        return dc_cli_fail("info", "%s", err.msg);
    }
    printf("model %s\n", dc_model_kind_name(spec.kind));
    dc_graph_print_summary(dc_model_graph(m), stdout);
    printf("forward GFLOPs per image: %.4f\n", dc_graph_forward_flops(dc_model_graph(m)) / batch / 1e9);
    dc_model_free(m);
    dc_backend_free(be);
    return 0;
}
