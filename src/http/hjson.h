/*
 * JSON helpers the API modules share: byte strings as text or base64
 * (docs/http-api.md, "Payloads").
 */
#ifndef HERALD_HTTP_HJSON_H
#define HERALD_HTTP_HJSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Sets obj[field] to the bytes as a JSON string when they are valid UTF-8
 * (without NUL), else base64, and obj[enc_field] to "string" or "base64".
 * p NULL (a Kafka null key or value) sets JSON null and "string". */
void hjson_set_bytes(json_t *obj, const char *field, const char *enc_field, const void *p, size_t n);

/* Decodes a JSON string v given as encoding ("string", "base64" or NULL =
 * "string") into *out (malloc'd, caller frees; NUL-terminated for
 * convenience, not counted in *n). v JSON null gives *out NULL, *n 0 and
 * returns 1. Returns 0, 1 (null) or -1 (not a string, bad base64, unknown
 * encoding). */
int hjson_get_bytes(const json_t *v, const char *encoding, uint8_t **out, size_t *n);

/* Base64 (RFC 4648, with padding). encode returns a malloc'd
 * NUL-terminated string; decode returns 0 and a malloc'd buffer, or -1. */
char *hjson_b64_encode(const void *p, size_t n);
int hjson_b64_decode(const char *s, size_t len, uint8_t **out, size_t *n);

/* 1 if p[0..n) is valid UTF-8 without NUL bytes. */
int hjson_utf8_valid(const void *p, size_t n);

#endif
