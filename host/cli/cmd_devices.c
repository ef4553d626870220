/* deconv devices: the backends this machine offers and the --device string for each. */
#include <string.h>

#include "cli/cli.h"

static void devices_usage(FILE *f) {
    fprintf(f,
            "usage: deconv devices\n\n"
            "Lists the native CPU backend and every OpenCL platform and device (type, global\n"
            "memory, compute units, max work-group size, driver), each with the --device string\n"
            "that selects it, and says what --device auto would pick.\n");
}

int dc_cmd_devices(int argc, char **argv) {
    static const char *const flags[] = {"help", NULL};
    dc_args a;
    if (dc_args_parse(&a, "devices", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help")) {
        devices_usage(stdout);
        return 0;
    }
    if (dc_args_check_unused(&a)) return 2; /* a stray argument too (exit 2: misuse) */

    dc_error err = {0};
    dc_backend *cpu = NULL;
    if (dc_backend_create_cpu(0, &cpu, &err) != DC_OK) return dc_cli_fail("devices", "%s", err.msg);
    printf("CPU backend: %s\n    use: --device cpu\n", dc_backend_device(cpu));
    dc_backend_free(cpu);

    dc_status s = dc_opencl_list_devices(stdout, &err);
    if (s == DC_ERR_UNSUPPORTED)
        printf("OpenCL: %s\n", err.msg);
    else if (s != DC_OK)
        return dc_cli_fail("devices", "%s", err.msg);

    int p, d;
    char why[512];
    if (dc_backend_auto_pick(&p, &d, why, sizeof why))
        printf("--device auto: opencl:%d:%d, the %s\n", p, d, why);
    else
        printf("--device auto: cpu, because %s\n", why);
    return 0;
}
