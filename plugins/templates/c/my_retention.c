// A starter retention policy in C: keep the newest `keep` closed segments
// (param `keep`, default 10), delete the older ones. Change `decide` to
// change the policy; keep the rules of wit/plugin.wit: never name the active
// segment, only name segments that exist.
//
// Ownership (wit-bindgen C ABI): arguments belong to this code and are freed
// here; results and error strings are malloc'd and freed by the generated
// post-return functions. Strings are (ptr, len), not NUL-terminated.
#include <stdlib.h>
#include <string.h>

#include "retention_plugin.h"

static uint64_t keep = 10;

// Writes `value` in decimal at `out` (room for 20 digits); returns the end.
// (snprintf would pull in stdio, and with it WASI imports.)
static char *format_u64(char *out, uint64_t value) {
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0) {
        *out++ = digits[--n];
    }
    return out;
}

static bool equals(const retention_plugin_string_t *s, const char *text) {
    return s->len == strlen(text) && memcmp(s->ptr, text, s->len) == 0;
}

// Parses a decimal u64; false on anything else.
static bool parse_u64(const retention_plugin_string_t *s, uint64_t *out) {
    if (s->len == 0 || s->len > 19) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->ptr[i] < '0' || s->ptr[i] > '9') {
            return false;
        }
        value = value * 10 + (uint64_t)(s->ptr[i] - '0');
    }
    *out = value;
    return true;
}

bool exports_distlog_plugin_retention_init(exports_distlog_plugin_retention_params_t *params,
                                           retention_plugin_string_t *err) {
    const char *problem = NULL;
    for (size_t i = 0; i < params->len && problem == NULL; i++) {
        retention_plugin_tuple2_string_string_t *p = &params->ptr[i];
        if (!equals(&p->f0, "keep")) {
            problem = "unknown parameter (accepted: keep)";
        } else if (!parse_u64(&p->f1, &keep)) {
            problem = "`keep` must be a non-negative integer";
        }
    }
    exports_distlog_plugin_retention_params_free(params);
    if (problem != NULL) {
        retention_plugin_string_dup(err, problem);
        return false;
    }
    return true;
}

bool exports_distlog_plugin_retention_select_deletions(
    exports_distlog_plugin_retention_partition_info_t *partition,
    exports_distlog_plugin_retention_list_segment_info_t *segments, int64_t now_ms,
    exports_distlog_plugin_retention_list_deletion_t *ret, retention_plugin_string_t *err) {
    size_t closed = 0;
    while (closed < segments->len && !segments->ptr[closed].active) {
        closed++;
    }
    size_t excess = closed > keep ? closed - (size_t)keep : 0;
    ret->len = 0;
    ret->ptr = excess > 0 ? malloc(excess * sizeof(*ret->ptr)) : NULL;
    if (excess > 0 && ret->ptr == NULL) {
        exports_distlog_plugin_retention_partition_info_free(partition);
        exports_distlog_plugin_retention_list_segment_info_free(segments);
        retention_plugin_string_dup(err, "out of memory");
        return false;
    }
    for (size_t i = 0; i < excess; i++) {
        static const char prefix[] = "older than the newest keep=";
        char reason[sizeof prefix + 20];
        memcpy(reason, prefix, sizeof prefix - 1);
        *format_u64(reason + sizeof prefix - 1, keep) = '\0';
        ret->ptr[i].base_offset = segments->ptr[i].base_offset;
        retention_plugin_string_dup(&ret->ptr[i].reason, reason);
        ret->len++;
    }
    exports_distlog_plugin_retention_partition_info_free(partition);
    exports_distlog_plugin_retention_list_segment_info_free(segments);
    return true;
}
