// Native tests of codec_rle.c, built with AddressSanitizer and
// UndefinedBehaviorSanitizer by ../../build.sh (step "c"): round trips,
// the worst-case bound, and corrupt or truncated payloads, which must be an
// error, never an out-of-bounds access.
//
// The few binding functions codec_rle.c calls are defined here, so the
// generated (wasm-only) codec_plugin.c is not needed natively.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_plugin.h"

void distlog_plugin_host_log(distlog_plugin_host_level_t level, codec_plugin_string_t *message) {
    (void)level;
    (void)message;
}
void codec_plugin_string_set(codec_plugin_string_t *ret, const char *s) {
    ret->ptr = (uint8_t *)s;
    ret->len = strlen(s);
}
void codec_plugin_string_dup(codec_plugin_string_t *ret, const char *s) {
    ret->len = strlen(s);
    ret->ptr = malloc(ret->len);
    memcpy(ret->ptr, s, ret->len);
}
void codec_plugin_string_free(codec_plugin_string_t *ret) {
    free(ret->ptr);
    ret->ptr = NULL;
    ret->len = 0;
}
void codec_plugin_list_u8_free(codec_plugin_list_u8_t *ptr) {
    free(ptr->ptr);
    ptr->ptr = NULL;
    ptr->len = 0;
}
void exports_distlog_plugin_codec_params_free(exports_distlog_plugin_codec_params_t *ptr) {
    for (size_t i = 0; i < ptr->len; i++) {
        codec_plugin_string_free(&ptr->ptr[i].f0);
        codec_plugin_string_free(&ptr->ptr[i].f1);
    }
    free(ptr->ptr);
}

static int passed = 0;
static int failed = 0;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (cond) {                                                                       \
            passed++;                                                                     \
        } else {                                                                          \
            failed++;                                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
        }                                                                                 \
    } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

// A malloc'd copy, as the bindings hand arguments over.
static codec_plugin_list_u8_t owned(const uint8_t *data, size_t len) {
    codec_plugin_list_u8_t list = {malloc(len > 0 ? len : 1), len};
    memcpy(list.ptr, data, len);
    return list;
}

// Decompresses a copy of `payload`; returns true on ok (output in *out).
static bool decode(const uint8_t *payload, size_t len, uint32_t expected,
                   codec_plugin_list_u8_t *out) {
    codec_plugin_list_u8_t input = owned(payload, len);
    codec_plugin_string_t err = {0};
    bool ok = exports_distlog_plugin_codec_decompress(&input, expected, out, &err);
    if (!ok) {
        codec_plugin_string_free(&err);
    }
    return ok;
}

static void round_trip(const uint8_t *data, size_t len) {
    codec_plugin_list_u8_t input = owned(data, len);
    codec_plugin_list_u8_t packed = {0};
    codec_plugin_string_t err = {0};
    CHECK(exports_distlog_plugin_codec_compress(&input, &packed, &err), "compress %zu", len);
    CHECK(packed.len <= len + len / 128 + 1, "bound: %zu -> %zu", len, packed.len);
    codec_plugin_list_u8_t out = {0};
    CHECK(decode(packed.ptr, packed.len, (uint32_t)len, &out) && out.len == len &&
              (len == 0 || memcmp(out.ptr, data, len) == 0),
          "round trip of %zu bytes", len);
    codec_plugin_list_u8_free(&out);
    CHECK(!decode(packed.ptr, packed.len, (uint32_t)len + 1, &out), "longer expected size");
    if (len > 0) {
        CHECK(!decode(packed.ptr, packed.len, (uint32_t)len - 1, &out), "shorter expected size");
        // Corrupt and truncated payloads: an error or some output of the
        // expected length, never a crash (the sanitizers watch).
        for (int i = 0; i < 8; i++) {
            uint8_t *bad = malloc(packed.len);
            memcpy(bad, packed.ptr, packed.len);
            bad[next() % packed.len] ^= (uint8_t)(1 + next() % 255);
            if (decode(bad, packed.len, (uint32_t)len, &out)) {
                CHECK(out.len == len, "corrupt payload decoded to %zu bytes", out.len);
                codec_plugin_list_u8_free(&out);
            }
            size_t cut = next() % packed.len;
            if (decode(bad, cut, (uint32_t)len, &out)) {
                CHECK(out.len == len, "truncated payload decoded to %zu bytes", out.len);
                codec_plugin_list_u8_free(&out);
            }
            free(bad);
        }
    }
    codec_plugin_list_u8_free(&packed);
}

int main(void) {
    static uint8_t buf[20000];
    for (int round = 0; round < 400; round++) {
        size_t len = round < 10 ? (size_t)round : next() % sizeof buf;
        size_t i = 0;
        while (i < len) {
            size_t n = 1 + next() % (next() % 2 ? 300 : 8);
            uint8_t value = (uint8_t)next();
            bool run = next() % 2;
            for (size_t j = 0; j < n && i < len; j++, i++) {
                buf[i] = run ? value : (uint8_t)next();
            }
        }
        round_trip(buf, len);
    }
    codec_plugin_list_u8_t out = {0};
    static const uint8_t lone_run[] = {0x80};
    CHECK(!decode(lone_run, 1, 129, &out), "run packet without its byte");
    static const uint8_t short_literal[] = {0x05, 'a', 'b'};
    CHECK(!decode(short_literal, 3, 6, &out), "literal past the end");

    codec_plugin_string_t err = {0};
    exports_distlog_plugin_codec_params_t none = {NULL, 0};
    CHECK(exports_distlog_plugin_codec_init(&none, &err), "init without params");
    exports_distlog_plugin_codec_params_t one = {malloc(sizeof(codec_plugin_tuple2_string_string_t)), 1};
    codec_plugin_string_dup(&one.ptr[0].f0, "level");
    codec_plugin_string_dup(&one.ptr[0].f1, "9");
    CHECK(!exports_distlog_plugin_codec_init(&one, &err), "init rejects params");
    codec_plugin_string_free(&err);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
