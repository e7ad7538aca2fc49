/* JSON helpers. See hjson.h. */
#include "http/hjson.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *hjson_b64_encode(const void *src, size_t n)
{
    const uint8_t *p = src;
    char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int hjson_b64_decode(const char *s, size_t len, uint8_t **out, size_t *n)
{
    while (len && s[len - 1] == '=') len--;
    if (len % 4 == 1) return -1;
    uint8_t *buf = xmalloc(len / 4 * 3 + 3), *o = buf;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (uint8_t)(acc >> bits);
        }
    }
    *out = buf;
    *n = (size_t)(o - buf);
    return 0;
}

int hjson_utf8_valid(const void *src, size_t n)
{
    const uint8_t *p = src;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

void hjson_set_bytes(json_t *obj, const char *field, const char *enc_field, const void *p, size_t n)
{
    if (!p) {
        json_object_set_new(obj, field, json_null());
        json_object_set_new(obj, enc_field, json_string("string"));
    } else if (hjson_utf8_valid(p, n)) {
        json_object_set_new(obj, field, json_stringn(p, n));
        json_object_set_new(obj, enc_field, json_string("string"));
    } else {
        char *s = hjson_b64_encode(p, n);
        json_object_set_new(obj, field, json_string(s));
        json_object_set_new(obj, enc_field, json_string("base64"));
        free(s);
    }
}

int hjson_get_bytes(const json_t *v, const char *encoding, uint8_t **out, size_t *n)
{
    if (json_is_null(v)) {
        *out = NULL;
        *n = 0;
        return 1;
    }
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!encoding || !strcmp(encoding, "string")) {
        uint8_t *b = xmalloc(len + 1);
        memcpy(b, s, len);
        b[len] = '\0';
        *out = b;
        *n = len;
        return 0;
    }
    if (strcmp(encoding, "base64")) return -1;
    uint8_t *b;
    size_t bl;
    if (hjson_b64_decode(s, len, &b, &bl) < 0) return -1;
    b = xrealloc(b, bl + 1);
    b[bl] = '\0';
    *out = b;
    *n = bl;
    return 0;
}
