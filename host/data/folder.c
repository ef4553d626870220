/* Loading a folder of image files, flat (unlabelled) or with one sub-folder per class. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "data/data_internal.h"

/* A sorted list of names found in one folder. */
typedef struct name_list {
    char **items;
    int count, cap;
} name_list;

static void name_list_free(name_list *l) {
    for (int i = 0; i < l->count; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int name_list_push(name_list *l, const char *name) {
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->items, (size_t)cap * sizeof(char *));
        if (!grown) return 0;
        l->items = grown;
        l->cap = cap;
    }
    char *copy = dc_data_strdup(name);
    if (!copy) return 0;
    l->items[l->count++] = copy;
    return 1;
}

static int compare_names(const void *a, const void *b) {
    /* Byte order, not the locale's collation, so the order is the same everywhere. */
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int has_image_extension(const char *name) {
    static const char *const exts[] = {"png", "jpg", "jpeg", "bmp", "gif",
                                       "tga", "pgm", "ppm", "pnm"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    const char *ext = dot + 1;
    for (size_t i = 0; i < DC_ARRAY_LEN(exts); i++) {
        size_t k = 0;
        while (ext[k] && exts[i][k] && tolower((unsigned char)ext[k]) == exts[i][k]) k++;
        if (!ext[k] && !exts[i][k]) return 1; /* equal, ignoring case */
    }
    return 0;
}

/* Image files and sub-folders of dir, each sorted. Hidden entries are left out. */
static dc_status scan_folder(const char *dir, name_list *files, name_list *subdirs,
                             dc_error *err) {
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return dc_set_error(err, (e == ENOENT || e == ENOTDIR) ? DC_ERR_NOT_FOUND : DC_ERR_IO,
                            "cannot open folder %s: %s", dir, strerror(e));
    }
    dc_status s = DC_OK;
    struct dirent *ent;
    while (s == DC_OK && (ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.') continue;
        char *path = join_path(dir, ent->d_name);
        struct stat st;
        if (!path) {
            s = dc_set_error(err, DC_ERR_OOM, "scanning %s: out of memory", dir);
        } else if (stat(path, &st) == 0) {
            int ok = 1;
            if (S_ISDIR(st.st_mode) && subdirs) ok = name_list_push(subdirs, ent->d_name);
            if (S_ISREG(st.st_mode) && has_image_extension(ent->d_name))
                ok = name_list_push(files, ent->d_name);
            if (!ok) s = dc_set_error(err, DC_ERR_OOM, "scanning %s: out of memory", dir);
        }
        free(path);
    }
    closedir(d);
    if (files && files->count > 1)
        qsort(files->items, (size_t)files->count, sizeof(char *), compare_names);
    if (subdirs && subdirs->count > 1)
        qsort(subdirs->items, (size_t)subdirs->count, sizeof(char *), compare_names);
    return s;
}

/* What to load: relative names ("a.png" or "class/a.png") with labels (-1: unlabelled). */
typedef struct load_plan {
    name_list rel;
    int32_t *labels;
    name_list classes;
} load_plan;

static void load_plan_free(load_plan *p) {
    name_list_free(&p->rel);
    name_list_free(&p->classes);
    free(p->labels);
}

static dc_status plan_push(load_plan *p, const char *rel, int32_t label, dc_error *err) {
    if (!name_list_push(&p->rel, rel)) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    int32_t *grown = realloc(p->labels, (size_t)p->rel.cap * sizeof(int32_t));
    if (!grown) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    p->labels = grown;
    p->labels[p->rel.count - 1] = label;
    return DC_OK;
}

/* How deep a class folder is searched: deep enough for any sensible layout, and an end to
 * a symbolic link that points back up. */
#define FOLDER_MAX_DEPTH 8

/* Adds every image under dir/rel, its sub-folders included (in sorted order, files before
 * folders), as class `label`; *added counts them. */
static dc_status plan_tree(load_plan *p, const char *dir, const char *rel, int32_t label, int depth,
                           int quiet, int *added, dc_error *err) {
    char *sub = join_path(dir, rel);
    if (!sub) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    name_list files = {0}, subdirs = {0};
    dc_status s = scan_folder(sub, &files, &subdirs, err);
    for (int i = 0; s == DC_OK && i < files.count; i++) {
        char *item = join_path(rel, files.items[i]);
        s = item ? plan_push(p, item, label, err) : dc_set_error(err, DC_ERR_OOM, "out of memory");
        free(item);
    }
    *added += s == DC_OK ? files.count : 0;
    if (s == DC_OK && subdirs.count > 0 && depth >= FOLDER_MAX_DEPTH) {
        if (!quiet)
            fprintf(stderr,
                    "deconv: warning: %s is %d folders deep; its %d sub-folder(s) are not "
                    "searched\n",
                    sub, depth, subdirs.count);
    } else {
        for (int i = 0; s == DC_OK && i < subdirs.count; i++) {
            char *child = join_path(rel, subdirs.items[i]);
            s = child ? plan_tree(p, dir, child, label, depth + 1, quiet, added, err)
                      : dc_set_error(err, DC_ERR_OOM, "out of memory");
            free(child);
        }
    }
    free(sub);
    name_list_free(&files);
    name_list_free(&subdirs);
    return s;
}

/* A folder with sub-folders that hold images (at any depth) is labelled: one class per
 * top-level sub-folder; otherwise its image files are one unlabelled set. quiet: no
 * warnings (a second look at the same folder). */
static dc_status make_plan(const char *dir, load_plan *plan, int quiet, dc_error *err) {
    name_list files = {0}, subdirs = {0};
    dc_status s = scan_folder(dir, &files, &subdirs, err);
    for (int i = 0; s == DC_OK && i < subdirs.count; i++) {
        int added = 0;
        s = plan_tree(plan, dir, subdirs.items[i], plan->classes.count, 1, quiet, &added, err);
        if (s == DC_OK && added > 0 && !name_list_push(&plan->classes, subdirs.items[i]))
            s = dc_set_error(err, DC_ERR_OOM, "out of memory");
    }
    if (s == DC_OK && plan->classes.count > 0 && files.count > 0 && !quiet)
        fprintf(stderr,
                "deconv: warning: %s has class sub-folders; ignoring the %d image file(s) "
                "beside them\n",
                dir, files.count);
    for (int i = 0; s == DC_OK && plan->classes.count == 0 && i < files.count; i++)
        s = plan_push(plan, files.items[i], -1, err);
    name_list_free(&files);
    name_list_free(&subdirs);
    return s;
}

/* Growing result of the load loop. */
typedef struct loaded {
    float *images;
    int32_t *labels;
    char **names;
    int n, size;
} loaded;

static dc_status load_one(const char *dir, const char *rel, int32_t label, int channels,
                          int64_t max_pixels, int planned, loaded *L, dc_error *err) {
    char *path = join_path(dir, rel);
    if (!path) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    float *planes = NULL;
    int h = 0, w = 0;
    dc_error why = {DC_OK, ""};
    dc_status s = dc_image_decode_file(path, channels, max_pixels, &planes, &h, &w, &why);
    free(path);
    if (s == DC_ERR_FORMAT || s == DC_ERR_IO) {
        /* A bad file costs one warning, not the whole dataset. */
        fprintf(stderr, "deconv: warning: skipping %s\n", why.msg);
        return DC_OK;
    }
    if (s != DC_OK) return dc_set_error(err, s, "%s", why.msg);
    if (L->size <= 0) L->size = h > w ? h : w; /* native size from the first image */
    size_t per = (size_t)channels * (size_t)L->size * (size_t)L->size;
    if (!L->images) {
        L->images = malloc((size_t)planned * per * sizeof(float));
        L->labels = malloc((size_t)planned * sizeof(int32_t));
        L->names = calloc((size_t)planned, sizeof(char *));
    }
    if (!L->images || !L->labels || !L->names) s = dc_set_error(err, DC_ERR_OOM, "out of memory");
    if (s == DC_OK) s = dc_image_fit(planes, channels, h, w, L->images + (size_t)L->n * per,
                                     L->size, err);
    free(planes);
    if (s != DC_OK) return s;
    L->labels[L->n] = label;
    L->names[L->n] = dc_data_strdup(rel);
    if (!L->names[L->n]) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    L->n++;
    return DC_OK;
}

/* load_one for a lazy load: the file is read and checked (structure, size, pixel cap) as a
 * decode checks it, but not decoded; a file that fails costs the same warning. */
static dc_status list_one(const char *dir, const char *rel, int32_t label, int64_t max_pixels,
                          int planned, loaded *L, dc_error *err) {
    char *path = join_path(dir, rel);
    if (!path) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    int h = 0, w = 0;
    dc_error why = {DC_OK, ""};
    dc_status s = dc_image_check_file(path, max_pixels, &h, &w, &why);
    free(path);
    if (s == DC_ERR_FORMAT || s == DC_ERR_IO) {
        fprintf(stderr, "deconv: warning: skipping %s\n", why.msg);
        return DC_OK;
    }
    if (s != DC_OK) return dc_set_error(err, s, "%s", why.msg);
    if (L->size <= 0) L->size = h > w ? h : w;
    if (!L->labels) {
        L->labels = malloc((size_t)planned * sizeof(int32_t));
        L->names = calloc((size_t)planned, sizeof(char *));
    }
    if (!L->labels || !L->names) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    L->labels[L->n] = label;
    L->names[L->n] = dc_data_strdup(rel);
    if (!L->names[L->n]) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    L->n++;
    return DC_OK;
}

static void loaded_free(loaded *L, int planned) {
    free(L->images);
    free(L->labels);
    if (L->names)
        for (int i = 0; i < planned; i++) free(L->names[i]);
    free(L->names);
}

/* Moves the load result into a new dataset. */
static dc_status build_dataset(const char *dir, int channels, load_plan *plan, loaded *L,
                               dc_dataset **out, dc_error *err) {
    dc_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return dc_set_error(err, DC_ERR_OOM, "out of memory");
    ds->n = L->n;
    ds->c = channels;
    ds->h = ds->w = L->size;
    ds->images = L->images;
    ds->names = L->names;
    L->images = NULL;
    L->names = NULL;
    dc_dataset_set_source(ds, dir);
    if (plan->classes.count > 0) {
        ds->labels = L->labels;
        L->labels = NULL;
        dc_status s = dc_dataset_set_class_names(ds, plan->classes.count,
                                                 (const char *const *)plan->classes.items, err);
        if (s != DC_OK) {
            dc_dataset_free(ds);
            return s;
        }
    }
    *out = ds;
    return DC_OK;
}

dc_status dc_dataset_load_folder(const char *dir, int size, int channels, dc_dataset **out,
                                 dc_error *err) {
    return dc_dataset_load_folder_opts(dir, size, channels, NULL, out, err);
}

dc_status dc_dataset_load_folder_opts(const char *dir, int size, int channels,
                                      const dc_load_options *opts, dc_dataset **out,
                                      dc_error *err) {
    if (!dir || !out) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_load_folder: NULL argument");
    *out = NULL;
    if (channels != 1 && channels != 3)
        return dc_set_error(err, DC_ERR_ARG, "loading %s: channels must be 1 or 3, got %d", dir,
                            channels);
    const int64_t max_pixels = opts ? opts->max_image_pixels : 0;
    load_plan plan = {0};
    dc_status s = make_plan(dir, &plan, 0, err);
    loaded L = {0};
    L.size = size;
    const int lazy = opts && opts->lazy;
    for (int i = 0; s == DC_OK && i < plan.rel.count; i++)
        s = lazy ? list_one(dir, plan.rel.items[i], plan.labels[i], max_pixels, plan.rel.count, &L,
                            err)
                 : load_one(dir, plan.rel.items[i], plan.labels[i], channels, max_pixels,
                            plan.rel.count, &L, err);
    if (s == DC_OK && L.n == 0)
        s = dc_set_error(err, DC_ERR_NOT_FOUND,
                         "no readable image in folder %s (%d image file(s) found, all skipped)",
                         dir, plan.rel.count);
    if (s == DC_OK) s = build_dataset(dir, channels, &plan, &L, out, err);
    if (s == DC_OK && lazy) {
        s = dc_lazy_create_folder(dir, (*out)->names, (*out)->n, channels, L.size, max_pixels,
                                  &(*out)->lazy, err);
        if (s != DC_OK) dc_dataset_free(*out), *out = NULL;
    }
    loaded_free(&L, plan.rel.count);
    load_plan_free(&plan);
    return s;
}

/* How many image files the channel guess decodes: spread over the whole folder (every
 * class), few enough that a folder of large photos is looked at in a moment. */
#define DETECT_MAX_FILES 16

/* Whether decoded pixels hold colour: more than 0.5% of the pixels with channels more than
 * 12/255 apart (a grey picture saved as colour JPEG differs by a count or two). */
static int pixels_are_colour(const unsigned char *px, int h, int w, int comp) {
    if (comp < 3) return 0;
    const size_t n = (size_t)h * (size_t)w;
    size_t coloured = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = px + i * (size_t)comp;
        const int rg = abs(p[0] - p[1]), gb = abs(p[1] - p[2]), rb = abs(p[0] - p[2]);
        if (rg > 12 || gb > 12 || rb > 12) coloured++;
    }
    return coloured * 200 > n;
}

dc_status dc_dataset_detect_channels(const char *spec, int *channels, char *why, size_t cap,
                                     dc_error *err) {
    if (!spec || !channels)
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_detect_channels: NULL argument");
    *channels = 1;
    struct stat st;
    if (stat(spec, &st) != 0 || !S_ISDIR(st.st_mode)) {
        /* IDX files and Fashion-MNIST hold grey images only */
        if (why) snprintf(why, cap, "grey (an IDX dataset)");
        return DC_OK;
    }
    load_plan plan = {0};
    DC_TRY(make_plan(spec, &plan, 1, err));
    const int n = plan.rel.count;
    const int look = n < DETECT_MAX_FILES ? n : DETECT_MAX_FILES;
    int decoded = 0, colour = 0;
    for (int k = 0; k < look; k++) {
        const int i = (int)((long)k * n / look);
        char *path = join_path(spec, plan.rel.items[i]);
        if (!path) {
            load_plan_free(&plan);
            return dc_set_error(err, DC_ERR_OOM, "out of memory");
        }
        void *px = NULL;
        int h = 0, w = 0, comp = 0, wide = 0;
        dc_error ignored = {DC_OK, ""};
        /* files that do not decode are skipped here; the load names them */
        if (dc_image_decode_raw(path, 0, &px, &h, &w, &comp, &wide, &ignored) == DC_OK) {
            decoded++;
            if (pixels_are_colour(px, h, w, comp)) colour++;
            dc_image_raw_free(px);
        }
        free(path);
    }
    load_plan_free(&plan);
    *channels = colour > 0 ? 3 : 1;
    if (why) {
        if (colour > 0)
            snprintf(why, cap, "colour (%d of the %d image(s) looked at have colour)", colour,
                     decoded);
        else
            snprintf(why, cap, "grey (none of the %d image(s) looked at has colour)", decoded);
    }
    return DC_OK;
}
