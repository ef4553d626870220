/* deconv devices: the backends this machine offers and the --device string for each. */
#include <string.h>

#include "cli/cli.h"

static const dc_command devices_command = {
    .name = "devices",
    .synopsis = "",
    .about = "Lists the native CPU backend and every OpenCL platform and device (type, global\n"
             "memory, compute units, max work-group size, driver), each with the --device string\n"
             "that selects it, and says what --device auto would pick.\n",
    .max_positional = 0,
    .positional_what = "no arguments",
};

int dc_cmd_devices(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &devices_command, argc, argv)) return a.status;

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
