/* OpenCL backend: device discovery, context and queue, the kernel program (built once
 * per context, cached on disk as a device binary), memory, and device listing. The
 * primitives themselves are in one file per family (ops_table.c lists them), the kernels in
 * the cl/ folder.
 *
 * Memory semantics: one in-order queue per backend. read() blocks; write() copies the
 * host data at once (the host buffer may be reused as soon as it returns) but does not wait
 * for the queue; everything else only enqueues. */
#define _POSIX_C_SOURCE 200809L

#include <clblast_c.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend_cl.h"
#include "cl_internal.h"
#include "cl_embedded.h"

/* ------------------------------------------------------------------ errors */
/* Every error code of OpenCL 1.2, plus the ICD loader's "no platform". */
static const struct {
    cl_int code;
    const char *name;
} cl_errors[] = {
    /* clang-format off */
    {CL_SUCCESS, "CL_SUCCESS"},
    {CL_DEVICE_NOT_FOUND, "CL_DEVICE_NOT_FOUND"},
    {CL_DEVICE_NOT_AVAILABLE, "CL_DEVICE_NOT_AVAILABLE"},
    {CL_COMPILER_NOT_AVAILABLE, "CL_COMPILER_NOT_AVAILABLE"},
    {CL_MEM_OBJECT_ALLOCATION_FAILURE, "CL_MEM_OBJECT_ALLOCATION_FAILURE"},
    {CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES"},
    {CL_OUT_OF_HOST_MEMORY, "CL_OUT_OF_HOST_MEMORY"},
    {CL_PROFILING_INFO_NOT_AVAILABLE, "CL_PROFILING_INFO_NOT_AVAILABLE"},
    {CL_MEM_COPY_OVERLAP, "CL_MEM_COPY_OVERLAP"},
    {CL_IMAGE_FORMAT_MISMATCH, "CL_IMAGE_FORMAT_MISMATCH"},
    {CL_IMAGE_FORMAT_NOT_SUPPORTED, "CL_IMAGE_FORMAT_NOT_SUPPORTED"},
    {CL_BUILD_PROGRAM_FAILURE, "CL_BUILD_PROGRAM_FAILURE"},
    {CL_MAP_FAILURE, "CL_MAP_FAILURE"},
    {CL_MISALIGNED_SUB_BUFFER_OFFSET, "CL_MISALIGNED_SUB_BUFFER_OFFSET"},
    {CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"},
    {CL_COMPILE_PROGRAM_FAILURE, "CL_COMPILE_PROGRAM_FAILURE"},
    {CL_LINKER_NOT_AVAILABLE, "CL_LINKER_NOT_AVAILABLE"},
    {CL_LINK_PROGRAM_FAILURE, "CL_LINK_PROGRAM_FAILURE"},
    {CL_DEVICE_PARTITION_FAILED, "CL_DEVICE_PARTITION_FAILED"},
    {CL_KERNEL_ARG_INFO_NOT_AVAILABLE, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"},
    {CL_INVALID_VALUE, "CL_INVALID_VALUE"},
    {CL_INVALID_DEVICE_TYPE, "CL_INVALID_DEVICE_TYPE"},
    {CL_INVALID_PLATFORM, "CL_INVALID_PLATFORM"},
    {CL_INVALID_DEVICE, "CL_INVALID_DEVICE"},
    {CL_INVALID_CONTEXT, "CL_INVALID_CONTEXT"},
    {CL_INVALID_QUEUE_PROPERTIES, "CL_INVALID_QUEUE_PROPERTIES"},
    {CL_INVALID_COMMAND_QUEUE, "CL_INVALID_COMMAND_QUEUE"},
    {CL_INVALID_HOST_PTR, "CL_INVALID_HOST_PTR"},
    {CL_INVALID_MEM_OBJECT, "CL_INVALID_MEM_OBJECT"},
    {CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"},
    {CL_INVALID_IMAGE_SIZE, "CL_INVALID_IMAGE_SIZE"},
    {CL_INVALID_SAMPLER, "CL_INVALID_SAMPLER"},
    {CL_INVALID_BINARY, "CL_INVALID_BINARY"},
    {CL_INVALID_BUILD_OPTIONS, "CL_INVALID_BUILD_OPTIONS"},
    {CL_INVALID_PROGRAM, "CL_INVALID_PROGRAM"},
    {CL_INVALID_PROGRAM_EXECUTABLE, "CL_INVALID_PROGRAM_EXECUTABLE"},
    {CL_INVALID_KERNEL_NAME, "CL_INVALID_KERNEL_NAME"},
    {CL_INVALID_KERNEL_DEFINITION, "CL_INVALID_KERNEL_DEFINITION"},
    {CL_INVALID_KERNEL, "CL_INVALID_KERNEL"},
    {CL_INVALID_ARG_INDEX, "CL_INVALID_ARG_INDEX"},
    {CL_INVALID_ARG_VALUE, "CL_INVALID_ARG_VALUE"},
    {CL_INVALID_ARG_SIZE, "CL_INVALID_ARG_SIZE"},
    {CL_INVALID_KERNEL_ARGS, "CL_INVALID_KERNEL_ARGS"},
    {CL_INVALID_WORK_DIMENSION, "CL_INVALID_WORK_DIMENSION"},
    {CL_INVALID_WORK_GROUP_SIZE, "CL_INVALID_WORK_GROUP_SIZE"},
    {CL_INVALID_WORK_ITEM_SIZE, "CL_INVALID_WORK_ITEM_SIZE"},
    {CL_INVALID_GLOBAL_OFFSET, "CL_INVALID_GLOBAL_OFFSET"},
    {CL_INVALID_EVENT_WAIT_LIST, "CL_INVALID_EVENT_WAIT_LIST"},
    {CL_INVALID_EVENT, "CL_INVALID_EVENT"},
    {CL_INVALID_OPERATION, "CL_INVALID_OPERATION"},
    {CL_INVALID_GL_OBJECT, "CL_INVALID_GL_OBJECT"},
    {CL_INVALID_BUFFER_SIZE, "CL_INVALID_BUFFER_SIZE"},
    {CL_INVALID_MIP_LEVEL, "CL_INVALID_MIP_LEVEL"},
    {CL_INVALID_GLOBAL_WORK_SIZE, "CL_INVALID_GLOBAL_WORK_SIZE"},
    {CL_INVALID_PROPERTY, "CL_INVALID_PROPERTY"},
    {CL_INVALID_IMAGE_DESCRIPTOR, "CL_INVALID_IMAGE_DESCRIPTOR"},
    {CL_INVALID_COMPILER_OPTIONS, "CL_INVALID_COMPILER_OPTIONS"},
    {CL_INVALID_LINKER_OPTIONS, "CL_INVALID_LINKER_OPTIONS"},
    {CL_INVALID_DEVICE_PARTITION_COUNT, "CL_INVALID_DEVICE_PARTITION_COUNT"},
    {-1001, "CL_PLATFORM_NOT_FOUND_KHR"},
    /* clang-format on */
};

const char *dc_cl_error_name(cl_int e) {
    for (size_t i = 0; i < DC_ARRAY_LEN(cl_errors); i++)
        if (cl_errors[i].code == e) return cl_errors[i].name;
    return "unknown OpenCL error";
}

dc_status dc_cl_fail(dc_error *err, const char *device, cl_int e, const char *call) {
    /* `call` is the stringified expression: keep its function name only */
    char fn[64];
    size_t n = 0;
    while (call[n] && call[n] != '(' && call[n] != ' ' && n + 1 < sizeof fn) {
        fn[n] = call[n];
        n++;
    }
    fn[n] = 0;
    return dc_set_error(err, DC_ERR_CL, "OpenCL %s failed on %s: %s (%d)", fn,
                        device && *device ? device : "(no device yet)", dc_cl_error_name(e),
                        (int)e);
}

/* ---------------------------------------------------------- device queries */
static void dev_str(cl_device_id d, cl_device_info what, char *out, size_t cap) {
    out[0] = 0;
    if (clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS) out[0] = 0;
    out[cap - 1] = 0;
}

static void plat_str(cl_platform_id p, cl_platform_info what, char *out, size_t cap) {
    out[0] = 0;
    if (clGetPlatformInfo(p, what, cap, out, NULL) != CL_SUCCESS) out[0] = 0;
    out[cap - 1] = 0;
}

/* "0 = NAME, 1 = NAME, ...": the choices an error message lists, the platforms in plats
 * (devs NULL) or the devices in devs. */
static void list_choices(char *list, size_t cap, const cl_platform_id *plats,
                         const cl_device_id *devs, cl_uint count) {
    list[0] = 0;
    for (cl_uint i = 0; i < count; i++) {
        char name[128];
        if (devs)
            dev_str(devs[i], CL_DEVICE_NAME, name, sizeof name);
        else
            plat_str(plats[i], CL_PLATFORM_NAME, name, sizeof name);
        const size_t used = strlen(list);
        snprintf(list + used, cap - used, "%s%u = %s", i ? ", " : "", i, name);
    }
}

static cl_device_type dev_type(cl_device_id d) {
    cl_device_type t = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL) != CL_SUCCESS) t = 0;
    return t;
}

static const char *type_name(cl_device_type t) {
    if (t & CL_DEVICE_TYPE_GPU) return "GPU";
    if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
    if (t & CL_DEVICE_TYPE_CPU) return "CPU";
    return "other";
}

/* Platforms (up to cap); returns the count, 0 when there is no OpenCL at all. */
static cl_uint get_platforms(cl_platform_id *out, cl_uint cap) {
    cl_uint n = 0;
    if (clGetPlatformIDs(cap, out, &n) != CL_SUCCESS) return 0;
    return n < cap ? n : cap;
}

static cl_uint get_devices(cl_platform_id p, cl_device_id *out, cl_uint cap) {
    cl_uint n = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, cap, out, &n) != CL_SUCCESS) return 0;
    return n < cap ? n : cap;
}

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

int dc_opencl_available(void) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = get_platforms(plats, MAX_PLATFORMS);
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[MAX_DEVICES];
        if (get_devices(plats[p], devs, MAX_DEVICES) > 0) return 1;
    }
    return 0;
}

/* The first device of type `want` (any type when want == 0), searching the platforms
 * in order; returns 1 when found. */
static int find_device(cl_device_type want, int *pi, int *di) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = get_platforms(plats, MAX_PLATFORMS);
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = get_devices(plats[p], devs, MAX_DEVICES);
        for (cl_uint d = 0; d < nd; d++)
            if (!want || (dev_type(devs[d]) & want)) {
                *pi = (int)p;
                *di = (int)d;
                return 1;
            }
    }
    return 0;
}

int dc_opencl_auto_pick(int *platform, int *device, char *why, size_t cap) {
    *platform = *device = -1;
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = get_platforms(plats, MAX_PLATFORMS);
    char cpu_names[256] = "";
    int n_cpu = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = get_devices(plats[p], devs, MAX_DEVICES);
        for (cl_uint d = 0; d < nd; d++) {
            char name[128];
            dev_str(devs[d], CL_DEVICE_NAME, name, sizeof name);
            cl_device_type t = dev_type(devs[d]);
            if (t & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) {
                *platform = (int)p;
                *device = (int)d;
                snprintf(why, cap, "first OpenCL %s: %s (opencl:%u:%u)", type_name(t), name, p, d);
                return 1;
            }
            size_t used = strlen(cpu_names);
            if (used + 8 < sizeof cpu_names)
                snprintf(cpu_names + used, sizeof cpu_names - used, "%s%s (opencl:%u:%u)",
                         n_cpu ? ", " : "", name, p, d);
            n_cpu++;
        }
    }
    if (n_cpu)
        snprintf(why, cap,
                 "the only OpenCL devices are CPU devices [%s]; the native CPU backend is faster "
                 "on the same cores",
                 cpu_names);
    else
        snprintf(why, cap, "no OpenCL device found");
    return 0;
}

dc_status dc_opencl_list_devices(void *file, dc_error *err) {
    FILE *f = file ? (FILE *)file : stdout;
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = get_platforms(plats, MAX_PLATFORMS);
    if (np == 0) {
        fprintf(f, "OpenCL: no platform found (is an ICD such as pocl-opencl-icd installed?)\n");
        return DC_OK;
    }
    for (cl_uint p = 0; p < np; p++) {
        char pname[256], pver[256];
        plat_str(plats[p], CL_PLATFORM_NAME, pname, sizeof pname);
        plat_str(plats[p], CL_PLATFORM_VERSION, pver, sizeof pver);
        fprintf(f, "OpenCL platform %u: %s (%s)\n", p, pname, pver);
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = get_devices(plats[p], devs, MAX_DEVICES);
        if (nd == 0) fprintf(f, "  no devices\n");
        for (cl_uint d = 0; d < nd; d++) {
            char name[256], driver[128], cver[128];
            cl_ulong gmem = 0;
            cl_uint cu = 0;
            size_t wg = 0;
            dev_str(devs[d], CL_DEVICE_NAME, name, sizeof name);
            dev_str(devs[d], CL_DRIVER_VERSION, driver, sizeof driver);
            dev_str(devs[d], CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
            if (clGetDeviceInfo(devs[d], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL) ||
                clGetDeviceInfo(devs[d], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL) ||
                clGetDeviceInfo(devs[d], CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL))
                return dc_set_error(err, DC_ERR_CL, "OpenCL: cannot query device %u of platform %u",
                                    d, p);
            fprintf(f, "  device %u: %s\n", d, name);
            fprintf(f,
                    "    type %s, %.1f GiB global memory, %u compute units, max work-group %zu, "
                    "driver %s, %s\n",
                    type_name(dev_type(devs[d])), (double)gmem / (1024.0 * 1024.0 * 1024.0), cu, wg,
                    driver, cver);
            fprintf(f, "    use: --device opencl:%u:%u\n", p, d);
        }
    }
    return DC_OK;
}

/* ------------------------------------------------------------ kernel sources */
typedef struct cl_source {
    char name[128];
    char *text; /* owned when loaded from disk */
    const char *ctext;
} cl_source;

static int source_cmp(const void *a, const void *b) {
    const cl_source *x = a, *y = b;
    /* common.cl first: it holds the helpers every other file uses */
    int cx = !strcmp(x->name, "common.cl"), cy = !strcmp(y->name, "common.cl");
    if (cx != cy) return cy - cx;
    return strcmp(x->name, y->name);
}

static char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            } else {
                buf[len] = 0;
            }
        }
    }
    fclose(f);
    return buf;
}

/* Joins every kernel file into one program text, common.cl first, each preceded by a
 * #line directive so the compiler's build log names the real file and line. Sources come
 * from the binary, or from $DECONV_CL_DIR (development). */
static dc_status load_sources(dc_error *err, char **out) {
    *out = NULL;
    cl_source srcs[64];
    int n = 0;
    const char *dir = getenv("DECONV_CL_DIR");
    dc_status s = DC_OK;
    if (dir && *dir) {
        DIR *d = opendir(dir);
        if (!d)
            return dc_set_error(err, DC_ERR_IO, "DECONV_CL_DIR=%s: cannot open directory: %s", dir,
                                strerror(errno));
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (len < 4 || strcmp(e->d_name + len - 3, ".cl")) continue;
            if (n == (int)DC_ARRAY_LEN(srcs) || len >= sizeof srcs[0].name) {
                s = dc_set_error(err, DC_ERR_IO, "DECONV_CL_DIR=%s: too many or too long .cl names",
                                 dir);
                break;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            memcpy(srcs[n].name, e->d_name, len + 1);
            srcs[n].text = read_text_file(path);
            srcs[n].ctext = srcs[n].text;
            if (!srcs[n].text) {
                s = dc_set_error(err, DC_ERR_IO, "cannot read kernel source %s: %s", path,
                                 strerror(errno));
                break;
            }
            n++;
        }
        closedir(d);
        if (s == DC_OK && n == 0)
            s = dc_set_error(err, DC_ERR_IO, "DECONV_CL_DIR=%s holds no .cl files", dir);
    } else {
        for (int i = 0; dc_cl_embedded[i].name && n < (int)DC_ARRAY_LEN(srcs); i++) {
            dc_strlcpy(srcs[n].name, dc_cl_embedded[i].name, sizeof srcs[n].name);
            srcs[n].text = NULL;
            srcs[n].ctext = dc_cl_embedded[i].src;
            n++;
        }
    }
    if (s == DC_OK) {
        qsort(srcs, (size_t)n, sizeof srcs[0], source_cmp);
        size_t total = 1;
        for (int i = 0; i < n; i++)
            total += strlen(srcs[i].ctext) + strlen(srcs[i].name) + 32;
        char *all = malloc(total), *p = all;
        if (!all) {
            s = dc_set_error(err, DC_ERR_OOM, "OpenCL: out of memory joining kernel sources");
        } else {
            for (int i = 0; i < n; i++)
                p += sprintf(p, "#line 1 \"%s\"\n%s\n", srcs[i].name, srcs[i].ctext);
            *out = all;
        }
    }
    for (int i = 0; i < n; i++)
        free(srcs[i].text);
    return s;
}

/* -------------------------------------------------------- binary cache (disk) */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s) {
    return fnv1a(h, s, strlen(s) + 1); /* with the terminator: fields cannot run together */
}

static int mkdir_p(const char *path) {
    char tmp[1024];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++)
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    return 0;
}

/* $DECONV_CACHE_DIR (empty: no cache), else $XDG_CACHE_HOME/deconv, else
 * ~/.cache/deconv. Returns 0 when there is no usable directory. */
static int cache_dir(char *out, size_t cap) {
    const char *d = getenv("DECONV_CACHE_DIR");
    if (d) {
        if (!*d) return 0;
        snprintf(out, cap, "%s", d);
    } else {
        const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (x && *x)
            snprintf(out, cap, "%s/deconv", x);
        else if (home && *home)
            snprintf(out, cap, "%s/.cache/deconv", home);
        else
            return 0;
    }
    return mkdir_p(out) == 0;
}

/* File layout: magic, payload size, payload hash, payload (the device binary). */
static const char cache_magic[8] = {'D', 'C', 'C', 'L', 'B', 'I', 'N', '1'};

static unsigned char *cache_load(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t size = 0, hash = 0;
    unsigned char *data = NULL;
    if (fread(magic, 1, 8, f) == 8 && !memcmp(magic, cache_magic, 8) &&
        fread(&size, sizeof size, 1, f) == 1 && fread(&hash, sizeof hash, 1, f) == 1 && size > 0 &&
        size < ((uint64_t)1 << 31) && (data = malloc((size_t)size))) {
        if (fread(data, 1, (size_t)size, f) != (size_t)size ||
            fnv1a(0xcbf29ce484222325ULL, data, (size_t)size) != hash || fgetc(f) != EOF) {
            free(data);
            data = NULL;
        } else {
            *len = (size_t)size;
        }
    }
    fclose(f);
    return data;
}

/* Written to a temporary name and renamed, so readers never see a partial file. A cache
 * that cannot be written is not an error: the next start compiles again. */
static int cache_store(const char *path, const unsigned char *data, size_t len) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%p", path, (long)getpid(), (const void *)data);
    FILE *f = fopen(tmp, "wb");
    if (!f) return 0;
    uint64_t size = len, hash = fnv1a(0xcbf29ce484222325ULL, data, len);
    int ok = fwrite(cache_magic, 1, 8, f) == 8 && fwrite(&size, sizeof size, 1, f) == 1 &&
             fwrite(&hash, sizeof hash, 1, f) == 1 && fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return 0;
    }
    return 1;
}

/* Keeps the cache bounded: each kernel edit, driver update or device adds an entry, so
 * beyond DC_CL_CACHE_KEEP entries the least recently used ones go (hits refresh the
 * modification time). */
#define DC_CL_CACHE_KEEP 32
static void cache_trim(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct {
        char name[128];
        time_t mtime;
    } entries[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < (int)DC_ARRAY_LEN(entries)) {
        size_t len = strlen(e->d_name);
        if (len < 7 || len >= sizeof entries[0].name || strcmp(e->d_name + len - 6, ".clbin"))
            continue;
        char path[1200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0) continue;
        memcpy(entries[n].name, e->d_name, len + 1);
        entries[n++].mtime = st.st_mtime;
    }
    closedir(d);
    while (n > DC_CL_CACHE_KEEP) {
        int oldest = 0;
        for (int i = 1; i < n; i++)
            if (entries[i].mtime < entries[oldest].mtime) oldest = i;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, entries[oldest].name);
        remove(path);
        entries[oldest] = entries[--n];
    }
}

/* ------------------------------------------------------------------ program */
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void build_options(cl_backend *b, char *out, size_t cap) {
    char cver[128];
    dev_str(b->device, CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
    out[0] = 0;
    /* "OpenCL C 1.2 ...": ask for 1.2 where the device speaks it (kernels are 1.1-safe) */
    int major = 0, minor = 0;
    if (sscanf(cver, "OpenCL C %d.%d", &major, &minor) == 2 &&
        (major > 1 || (major == 1 && minor >= 2))) {
        snprintf(out, cap, "-cl-std=CL1.2");
        /* Correctly rounded float divide and sqrt where offered: the CPU reference's are,
         * and parity then holds to the last bit in the optimizer and normalisation. */
        cl_device_fp_config fp = 0;
        if (clGetDeviceInfo(b->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL) ==
                CL_SUCCESS &&
            (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT))
            snprintf(out + strlen(out), cap - strlen(out),
                     " -cl-fp32-correctly-rounded-divide-sqrt");
    }
}

static dc_status build_log_error(cl_backend *b, cl_int e, const char *what) {
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(b->program, b->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) ==
            CL_SUCCESS &&
        (log = malloc(len + 1)) &&
        clGetProgramBuildInfo(b->program, b->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) ==
            CL_SUCCESS)
        log[len] = 0;
    else if (log)
        log[0] = 0;
    fprintf(stderr, "deconv: OpenCL kernel build failed on %s (%s):\n%s\n", b->base.device_name,
            dc_cl_error_name(e), log ? log : "(no build log)");
    dc_set_error(&b->base.err, DC_ERR_CL, "OpenCL %s failed on %s: %s (%d); build log:\n%s", what,
                 b->base.device_name, dc_cl_error_name(e), (int)e, log ? log : "(none)");
    free(log);
    return DC_ERR_CL;
}

static void release_program(cl_backend *b) {
    for (int k = 0; k < DC_K_COUNT; k++)
        if (b->kernels[k]) {
            clReleaseKernel(b->kernels[k]);
            b->kernels[k] = NULL;
        }
    if (b->program) clReleaseProgram(b->program);
    b->program = NULL;
}

static const char *const kernel_names[DC_K_COUNT] = {
#define X(k) "dc_" #k,
    DC_CL_KERNELS(X)
#undef X
};

const char *dc_cl_kernel_name(int k) {
    return k >= 0 && k < DC_K_COUNT ? kernel_names[k] : "unknown kernel";
}

static size_t pow2_floor(size_t x) {
    size_t p = 1;
    while (p * 2 <= x)
        p *= 2;
    return p;
}

/* Creates every kernel once and picks its work-group size: the largest power of two
 * within our target, the device's limits and the kernel's own limit. */
static dc_status create_kernels(cl_backend *b) {
    size_t dev_max = 0, item_max[32] = {0}; /* CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS >= 3 */
    cl_ulong local_mem = 0;
    DC_CL_CHECK(b, clGetDeviceInfo(b->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dev_max,
                                   &dev_max, NULL));
    DC_CL_CHECK(b, clGetDeviceInfo(b->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof item_max,
                                   item_max, NULL));
    DC_CL_CHECK(b, clGetDeviceInfo(b->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_mem,
                                   &local_mem, NULL));
    for (int k = 0; k < DC_K_COUNT; k++) {
        cl_int e;
        b->kernels[k] = clCreateKernel(b->program, kernel_names[k], &e);
        if (e != CL_SUCCESS)
            return dc_cl_fail(&b->base.err, b->base.device_name, e, "clCreateKernel");
        size_t kmax = 0;
        cl_ulong kmem = 0;
        DC_CL_CHECK(b, clGetKernelWorkGroupInfo(b->kernels[k], b->device, CL_KERNEL_WORK_GROUP_SIZE,
                                                sizeof kmax, &kmax, NULL));
        DC_CL_CHECK(b, clGetKernelWorkGroupInfo(b->kernels[k], b->device, CL_KERNEL_LOCAL_MEM_SIZE,
                                                sizeof kmem, &kmem, NULL));
        size_t lim = DC_CL_LOCAL_TARGET;
        if (dev_max && dev_max < lim) lim = dev_max;
        if (item_max[0] && item_max[0] < lim) lim = item_max[0];
        if (kmax && kmax < lim) lim = kmax;
        /* reduction scratch: one float per work-item on top of the kernel's own */
        while (lim > 1 && local_mem && kmem + lim * sizeof(float) > local_mem)
            lim /= 2;
        b->local[k] = pow2_floor(lim ? lim : 1);
    }
    return DC_OK;
}

/* Loads the program from the disk cache, or compiles it and fills the cache. */
static dc_status build_program(cl_backend *b) {
    char *src = NULL;
    DC_TRY(load_sources(&b->base.err, &src));
    char opts[256], pname[256], pver[256], dname[256], dver[256], driver[256];
    build_options(b, opts, sizeof opts);
    plat_str(b->platform, CL_PLATFORM_NAME, pname, sizeof pname);
    plat_str(b->platform, CL_PLATFORM_VERSION, pver, sizeof pver);
    dev_str(b->device, CL_DEVICE_NAME, dname, sizeof dname);
    dev_str(b->device, CL_DEVICE_VERSION, dver, sizeof dver);
    dev_str(b->device, CL_DRIVER_VERSION, driver, sizeof driver);
    uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
    const char *parts[] = {"deconv-cl-cache-1", pname, pver, dname, dver, driver, opts, src};
    for (size_t i = 0; i < DC_ARRAY_LEN(parts); i++) {
        h1 = fnv1a_str(h1, parts[i]);
        h2 = fnv1a_str(h2 ^ (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL, parts[i]);
    }
    char dir[900];
    b->cache_file[0] = 0;
    if (cache_dir(dir, sizeof dir))
        snprintf(b->cache_file, sizeof b->cache_file, "%s/%016llx%016llx.clbin", dir,
                 (unsigned long long)h1, (unsigned long long)h2);

    const double t0 = now_seconds();
    cl_int e;
    /* 1. the cache; anything wrong with it means a silent rebuild */
    if (b->cache_file[0]) {
        size_t len = 0;
        unsigned char *bin = cache_load(b->cache_file, &len);
        if (bin) {
            const unsigned char *bins[1] = {bin};
            cl_int bin_status = CL_SUCCESS;
            b->program =
                clCreateProgramWithBinary(b->ctx, 1, &b->device, &len, bins, &bin_status, &e);
            if (e == CL_SUCCESS && bin_status == CL_SUCCESS &&
                clBuildProgram(b->program, 1, &b->device, opts, NULL, NULL) == CL_SUCCESS &&
                create_kernels(b) == DC_OK) {
                b->from_cache = 1;
                utimensat(AT_FDCWD, b->cache_file, NULL, 0); /* recently used */
            } else {
                release_program(b);
                dc_error_clear(&b->base.err);
            }
            free(bin);
        }
    }
    /* 2. compile from source */
    if (!b->from_cache) {
        const char *srcs[1] = {src};
        b->program = clCreateProgramWithSource(b->ctx, 1, srcs, NULL, &e);
        if (e != CL_SUCCESS) {
            free(src);
            return dc_cl_fail(&b->base.err, b->base.device_name, e, "clCreateProgramWithSource");
        }
        e = clBuildProgram(b->program, 1, &b->device, opts, NULL, NULL);
        if (e != CL_SUCCESS) {
            free(src);
            return build_log_error(b, e, "clBuildProgram");
        }
        dc_status s = create_kernels(b);
        if (s != DC_OK) {
            free(src);
            return s;
        }
        if (b->cache_file[0]) {
            size_t len = 0;
            if (clGetProgramInfo(b->program, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) ==
                    CL_SUCCESS &&
                len > 0) {
                unsigned char *bin = malloc(len);
                unsigned char *bins[1] = {bin};
                if (bin && clGetProgramInfo(b->program, CL_PROGRAM_BINARIES, sizeof bins, bins,
                                            NULL) == CL_SUCCESS)
                    if (cache_store(b->cache_file, bin, len)) cache_trim(dir);
                free(bin);
            }
        }
    }
    b->build_seconds = now_seconds() - t0;
    free(src);
    return DC_OK;
}

/* --------------------------------------------------------- create / destroy */
void dc_cl_destroy(dc_backend *be) {
    cl_backend *b = (cl_backend *)be;
    if (!b) return;
    if (b->queue) {
        (void)dc_cl_flush(be);
        clFinish(b->queue);
    }
    release_program(b);
    if (b->partial) clReleaseMemObject(b->partial);
    dc_cl_free_work(be);
    if (b->queue) clReleaseCommandQueue(b->queue);
    if (b->ctx) clReleaseContext(b->ctx);
    /* CLBlast keeps compiled programs per context in a process-wide cache; they retain our
     * context, so without this every backend that ran a GEMM would leak its context. The
     * price: another live OpenCL backend recompiles its GEMM kernels on its next call. */
    if (b->used_clblast) CLBlastClearCache();
    free(b);
}

static dc_status open_device(cl_backend *b, int platform, int device) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = get_platforms(plats, MAX_PLATFORMS);
    if (np == 0)
        return dc_set_error(&b->base.err, DC_ERR_NOT_FOUND,
                            "OpenCL: no platform found (install an ICD, e.g. pocl-opencl-icd)");
    if (platform < 0) {
        /* first GPU anywhere, else the first device anywhere */
        if (!find_device(CL_DEVICE_TYPE_GPU, &platform, &device) &&
            !find_device(0, &platform, &device))
            return dc_set_error(&b->base.err, DC_ERR_NOT_FOUND,
                                "OpenCL: %u platform(s) but no device", np);
    }
    if ((cl_uint)platform >= np) {
        char list[512];
        list_choices(list, sizeof list, plats, NULL, np);
        return dc_set_error(&b->base.err, DC_ERR_NOT_FOUND,
                            "OpenCL platform %d does not exist (platforms: %s; see deconv devices)",
                            platform, list);
    }
    cl_device_id devs[MAX_DEVICES];
    cl_uint nd = get_devices(plats[platform], devs, MAX_DEVICES);
    char pname[128];
    plat_str(plats[platform], CL_PLATFORM_NAME, pname, sizeof pname);
    if (device < 0) {
        device = 0;
        for (cl_uint d = 0; d < nd; d++)
            if (dev_type(devs[d]) & CL_DEVICE_TYPE_GPU) {
                device = (int)d;
                break;
            }
    }
    if ((cl_uint)device >= nd) {
        char list[512];
        list_choices(list, sizeof list, NULL, devs, nd);
        return dc_set_error(&b->base.err, DC_ERR_NOT_FOUND,
                            "OpenCL device %d does not exist on platform %d (%s) (devices: %s; see "
                            "deconv devices)",
                            device, platform, pname, nd ? list : "none");
    }
    b->platform_index = platform;
    b->device_index = device;
    b->platform = plats[platform];
    b->device = devs[device];
    char name[96];
    dev_str(b->device, CL_DEVICE_NAME, name, sizeof name);
    b->base.scratch_bytes = (size_t)32 << 20;
    snprintf(b->base.device_name, sizeof b->base.device_name, "%s [opencl:%d:%d]", name, platform,
             device);
    return DC_OK;
}

dc_status dc_backend_create_opencl(int platform, int device, dc_backend **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_backend_create_opencl: out is NULL");
    *out = NULL;
    cl_backend *b = calloc(1, sizeof *b);
    if (!b) return dc_set_error(err, DC_ERR_OOM, "OpenCL backend: out of memory");
    b->base.ops = &dc_cl_ops;
    dc_status s = open_device(b, platform, device);
    cl_int e = CL_SUCCESS;
    if (s == DC_OK) {
        cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)b->platform,
                                         0};
        b->ctx = clCreateContext(props, 1, &b->device, NULL, NULL, &e);
        if (e != CL_SUCCESS)
            s = dc_cl_fail(&b->base.err, b->base.device_name, e, "clCreateContext");
    }
    if (s == DC_OK) {
        b->queue = clCreateCommandQueue(b->ctx, b->device, 0, &e);
        if (e != CL_SUCCESS)
            s = dc_cl_fail(&b->base.err, b->base.device_name, e, "clCreateCommandQueue");
    }
    if (s == DC_OK) {
        b->partial =
            clCreateBuffer(b->ctx, CL_MEM_READ_WRITE, DC_CL_PARTIALS * sizeof(float), NULL, &e);
        if (e != CL_SUCCESS) s = dc_cl_fail(&b->base.err, b->base.device_name, e, "clCreateBuffer");
    }
    if (s == DC_OK && clGetDeviceInfo(b->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof b->max_alloc,
                                      &b->max_alloc, NULL) != CL_SUCCESS)
        b->max_alloc = 0;
    if (s == DC_OK) {
        /* a convolution's columns for as many images as fit in an eighth of the device's
         * memory (one buffer at most): the whole batch in one chunk on a GPU, so one GEMM
         * per product instead of one per chunk; never below the graph's 32 MB workspace */
        cl_ulong global = 0;
        clGetDeviceInfo(b->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL);
        cl_ulong budget = global / 8;
        if (b->max_alloc && budget > b->max_alloc) budget = b->max_alloc;
        if (budget > ((cl_ulong)1 << 30)) budget = (cl_ulong)1 << 30;
        if (budget < ((cl_ulong)32 << 20)) budget = (cl_ulong)32 << 20;
        b->work_budget = (size_t)(budget / sizeof(float));
    }
    if (s == DC_OK) {
        b->elem = (dev_type(b->device) & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
        const char *e_env = getenv("DECONV_CL_ELEM");
        if (e_env && (!strcmp(e_env, "0") || !strcmp(e_env, "1"))) b->elem = e_env[0] == '1';
    }
    if (s == DC_OK) s = build_program(b);
    if (s != DC_OK) {
        if (err) {
            err->status = s;
            memcpy(err->msg, b->base.err.msg, sizeof err->msg);
        }
        dc_cl_destroy(&b->base);
        return s;
    }
    *out = &b->base;
    return DC_OK;
}

/* ------------------------------------------------------------------ memory */
dc_status dc_cl_alloc(dc_backend *be, size_t bytes, dc_buffer **out) {
    cl_backend *b = (cl_backend *)be;
    *out = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    if (b->max_alloc && rounded > b->max_alloc)
        return dc_set_error(&be->err, DC_ERR_OOM,
                            "OpenCL: cannot allocate %zu bytes on %s: one buffer is limited to "
                            "%llu bytes (CL_DEVICE_MAX_MEM_ALLOC_SIZE)",
                            bytes, be->device_name, (unsigned long long)b->max_alloc);
    dc_buffer *buf = calloc(1, sizeof *buf);
    if (!buf) return dc_set_error(&be->err, DC_ERR_OOM, "OpenCL: out of host memory");
    cl_int e;
    buf->mem = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE, rounded, NULL, &e);
    if (e != CL_SUCCESS) {
        free(buf);
        return dc_set_error(&be->err, DC_ERR_OOM,
                            "OpenCL clCreateBuffer failed on %s: %s (%d) for %zu bytes",
                            be->device_name, dc_cl_error_name(e), (int)e, bytes);
    }
    buf->bytes = bytes;
    /* zeroed like the CPU backend's buffers; enqueued, so this does not block */
    const cl_float zero = 0.0f;
    e = clEnqueueFillBuffer(b->queue, buf->mem, &zero, sizeof zero, 0, rounded, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        clReleaseMemObject(buf->mem);
        free(buf);
        /* devices allocate lazily: the first use is where a too-large buffer fails */
        return dc_set_error(&be->err,
                            e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES
                                ? DC_ERR_OOM
                                : DC_ERR_CL,
                            "OpenCL clEnqueueFillBuffer failed on %s: %s (%d) clearing %zu bytes",
                            be->device_name, dc_cl_error_name(e), (int)e, bytes);
    }
    be->bytes_allocated += bytes;
    if (be->bytes_allocated > be->bytes_peak) be->bytes_peak = be->bytes_allocated;
    *out = buf;
    return DC_OK;
}

void dc_cl_free(dc_backend *be, dc_buffer *buf) {
    if (!buf) return;
    /* pending updates may use it; a failure there is kept in be->err */
    cl_backend *b = (cl_backend *)be;
    if ((b->adam.runs && (b->adam.p.buf == buf || b->adam.g.buf == buf || b->adam.m.buf == buf ||
                          b->adam.v.buf == buf || b->adam.gscale.buf == buf)) ||
        (b->fill.count && b->fill.dst.buf == buf))
        (void)dc_cl_flush(be);
    be->bytes_allocated -= buf->bytes;
    /* commands still queued on it keep it alive until they finish (OpenCL semantics) */
    clReleaseMemObject(buf->mem);
    free(buf);
}

dc_status dc_cl_sync(dc_backend *be) {
    cl_backend *b = (cl_backend *)be;
    DC_TRY(dc_cl_flush(be));
    b->budget.host_waits++;
    DC_CL_CHECK(b, clFinish(b->queue));
    return DC_OK;
}

/* ------------------------------------------------------- test / tool hooks */
static const cl_backend *as_cl(const dc_backend *be) {
    return be && be->ops == &dc_cl_ops ? (const cl_backend *)be : NULL;
}
int dc_cl_program_from_cache(const dc_backend *be) {
    const cl_backend *b = as_cl(be);
    return b ? b->from_cache : 0;
}
double dc_cl_program_seconds(const dc_backend *be) {
    const cl_backend *b = as_cl(be);
    return b ? b->build_seconds : 0.0;
}
const char *dc_cl_cache_file(const dc_backend *be) {
    const cl_backend *b = as_cl(be);
    return b ? b->cache_file : "";
}
int dc_cl_set_elem(dc_backend *be, int on) {
    cl_backend *b = (cl_backend *)as_cl(be);
    if (!b) return -1;
    const int was = b->elem;
    if (on >= 0) b->elem = on != 0;
    return was;
}

int dc_cl_budget_get(const dc_backend *be, dc_cl_budget *out) {
    const cl_backend *b = as_cl(be);
    if (!b) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    *out = b->budget;
    return 1;
}

void dc_cl_free_work(dc_backend *be) {
    cl_backend *b = (cl_backend *)be;
    if (!b->work) return;
    clReleaseMemObject(b->work->mem);
    free(b->work);
    b->work = NULL;
}
