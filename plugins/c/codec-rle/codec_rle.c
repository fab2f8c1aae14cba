// codec-rle: a run-length codec written in C (PackBits, as in TIFF and
// Apple's MacPaint), for payloads with long runs of equal bytes (zero-padded
// binary records, sparse counters, repeated fill values).
//
// Format: a sequence of packets, each a control byte `n` then data:
//   n in 0..127   : n + 1 literal bytes follow;
//   n in 128..255 : one byte follows, repeated 257 - n times (2..129).
// No header: the batch records the uncompressed size and `decompress` must
// produce exactly `expected-size` bytes, else it returns an `err`. Worst case
// output is input + ceil(input / 128) bytes. Params: none.
//
// Ownership follows the wit-bindgen C ABI: arguments belong to the callee
// (freed here), results and error strings are malloc'd and freed by the
// generated post-return functions.
#include <stdlib.h>
#include <string.h>

#include "codec_plugin.h"

#define MAX_LITERAL 128
#define MAX_RUN 129

static void set_error(codec_plugin_string_t *err, const char *message) {
    codec_plugin_string_dup(err, message);
}

static void log_line(distlog_plugin_host_level_t level, const char *message) {
    codec_plugin_string_t text;
    codec_plugin_string_set(&text, message);
    distlog_plugin_host_log(level, &text);
}

bool exports_distlog_plugin_codec_init(exports_distlog_plugin_codec_params_t *params,
                                       codec_plugin_string_t *err) {
    bool ok = params->len == 0;
    if (!ok) {
        set_error(err, "unknown parameter: codec-rle takes no parameters");
    }
    exports_distlog_plugin_codec_params_free(params);
    if (ok) {
        log_line(DISTLOG_PLUGIN_TYPES_LEVEL_DEBUG, "codec-rle ready: PackBits run-length");
    }
    return ok;
}

// Length of the run of equal bytes starting at in[i], at most MAX_RUN.
static size_t run_length(const uint8_t *in, size_t len, size_t i) {
    size_t n = 1;
    while (i + n < len && n < MAX_RUN && in[i + n] == in[i]) {
        n++;
    }
    return n;
}

bool exports_distlog_plugin_codec_compress(codec_plugin_list_u8_t *input,
                                           codec_plugin_list_u8_t *ret,
                                           codec_plugin_string_t *err) {
    const uint8_t *in = input->ptr;
    size_t len = input->len;
    size_t cap = len + len / MAX_LITERAL + 1;
    uint8_t *out = malloc(cap);
    if (out == NULL) {
        codec_plugin_list_u8_free(input);
        set_error(err, "out of memory");
        return false;
    }
    size_t o = 0;
    size_t i = 0;
    while (i < len) {
        size_t run = run_length(in, len, i);
        if (run >= 3 || (run == 2 && i + 2 == len)) {
            out[o++] = (uint8_t)(257 - run);
            out[o++] = in[i];
            i += run;
            continue;
        }
        // Literal packet: up to the next run of three or more.
        size_t start = i;
        while (i < len && i - start < MAX_LITERAL) {
            if (run_length(in, len, i) >= 3) {
                break;
            }
            i++;
        }
        size_t n = i - start;
        out[o++] = (uint8_t)(n - 1);
        memcpy(out + o, in + start, n);
        o += n;
    }
    codec_plugin_list_u8_free(input);
    ret->ptr = out;
    ret->len = o;
    return true;
}

bool exports_distlog_plugin_codec_decompress(codec_plugin_list_u8_t *input,
                                             uint32_t expected_size,
                                             codec_plugin_list_u8_t *ret,
                                             codec_plugin_string_t *err) {
    const uint8_t *in = input->ptr;
    size_t len = input->len;
    size_t want = expected_size;
    // malloc(0) may return NULL: allocate at least one byte.
    uint8_t *out = malloc(want > 0 ? want : 1);
    if (out == NULL) {
        codec_plugin_list_u8_free(input);
        set_error(err, "out of memory for the expected size");
        return false;
    }
    const char *problem = NULL;
    size_t o = 0;
    size_t i = 0;
    while (i < len && problem == NULL) {
        uint8_t control = in[i++];
        if (control < 128) {
            size_t n = (size_t)control + 1;
            if (n > len - i) {
                problem = "corrupt rle payload: literal packet runs past the end of the input";
            } else if (n > want - o) {
                problem = "rle payload decodes to more bytes than expected";
            } else {
                memcpy(out + o, in + i, n);
                o += n;
                i += n;
            }
        } else {
            size_t n = 257 - (size_t)control;
            if (i >= len) {
                problem = "corrupt rle payload: run packet without its byte";
            } else if (n > want - o) {
                problem = "rle payload decodes to more bytes than expected";
            } else {
                memset(out + o, in[i++], n);
                o += n;
            }
        }
    }
    if (problem == NULL && o != want) {
        problem = "rle payload decodes to fewer bytes than expected";
    }
    codec_plugin_list_u8_free(input);
    if (problem != NULL) {
        free(out);
        set_error(err, problem);
        return false;
    }
    ret->ptr = out;
    ret->len = o;
    return true;
}
