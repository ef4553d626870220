/* dc_meta: the string key/value metadata of a checkpoint (safetensors "__metadata__"). */
#include "internal.h"
#include "deconv/io.h"

dc_status dc_meta_set(dc_meta *m, const char *key, const char *value) {
    if (!m || !key || !value) return DC_ERR_ARG;
    if (!key[0] || strlen(key) >= sizeof m->key[0]) return DC_ERR_ARG;
    size_t len = strlen(value) + 1;
    char *v = malloc(len);
    if (!v) return DC_ERR_OOM;
    memcpy(v, value, len);
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->key[i], key)) {
            free(m->value[i]);
            m->value[i] = v;
            return DC_OK;
        }
    if (m->n < 0 || m->n >= (int)DC_ARRAY_LEN(m->value)) {
        free(v);
        return DC_ERR_ARG;
    }
    dc_strlcpy(m->key[m->n], key, sizeof m->key[0]);
    m->value[m->n++] = v;
    return DC_OK;
}

const char *dc_meta_get(const dc_meta *m, const char *key) {
    if (!m || !key) return NULL;
    for (int i = 0; i < m->n && i < (int)DC_ARRAY_LEN(m->value); i++)
        if (!strcmp(m->key[i], key)) return m->value[i];
    return NULL;
}

void dc_meta_clear(dc_meta *m) {
    if (!m) return;
    for (int i = 0; i < m->n && i < (int)DC_ARRAY_LEN(m->value); i++) {
        free(m->value[i]);
        m->value[i] = NULL;
        m->key[i][0] = 0;
    }
    m->n = 0;
}
