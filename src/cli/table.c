/*
 * Human output: tables whose column widths come from their content (text
 * left-aligned, numbers right-aligned, two spaces between columns), numbers
 * in human units (1.2k, 3.4 MiB), and tolerant JSON field access. See
 * cli_int.h.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli_int.h"

struct cli_table {
    int ncols;
    const char *const *headers;
    const char *align; /* 'l' or 'r' per column */
    char **cells;      /* owned, row-major; a partial last row is padded at print */
    size_t ncells, cap;
};

cli_table_t *cli_table_new(const char *const *headers, const char *align)
{
    cli_table_t *t = xcalloc(1, sizeof *t);
    while (headers[t->ncols]) t->ncols++;
    t->headers = headers;
    t->align = align;
    return t;
}

void cli_table_free(cli_table_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->ncells; i++) free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* A name or payload from the broker must not drive the terminal (ESC, CR,
 * newlines): control characters become '?'. */
static char *neutralise(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return s;
}

void cli_table_cell(cli_table_t *t, const char *s)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = xrealloc(t->cells, t->cap * sizeof *t->cells);
    }
    t->cells[t->ncells++] = neutralise(xstrdup(s ? s : ""));
}

const char *cli_safe(const char *s)
{
    static char ring[CLI_SAFE_SLOTS][CLI_SAFE_MAX];
    static unsigned next;
    char *b = ring[next++ % CLI_SAFE_SLOTS];
    snprintf(b, CLI_SAFE_MAX, "%s", s ? s : "");
    return neutralise(b);
}

void cli_safe_inplace(char *s)
{
    neutralise(s);
}

void cli_table_cellf(cli_table_t *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cli_table_cell(t, buf);
}

void cli_table_count(cli_table_t *t, double v)
{
    char b[32];
    cli_table_cell(t, cli_fmt_count(b, sizeof b, v));
}

void cli_table_bytes(cli_table_t *t, double v)
{
    char b[32];
    cli_table_cell(t, cli_fmt_bytes(b, sizeof b, v));
}

void cli_table_rate(cli_table_t *t, double v)
{
    char b[32];
    cli_table_cell(t, cli_fmt_rate(b, sizeof b, v));
}

size_t cli_table_rows(const cli_table_t *t)
{
    return (t->ncells + (size_t)t->ncols - 1) / (size_t)t->ncols;
}

/* Display width: characters, not bytes (UTF-8 continuation bytes skipped). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* Prints s padded to w; spaces are held in *pending and written only
 * before more text, so no line ends in blanks. */
static void print_cell(FILE *out, const char *s, size_t w, char align, size_t *pending)
{
    size_t pad = w - width(s);
    if (align == 'r') *pending += pad;
    if (*s) {
        fprintf(out, "%*s%s", (int)*pending, "", s);
        *pending = 0;
    }
    if (align != 'r') *pending += pad;
}

void cli_table_print(const cli_table_t *t, FILE *out)
{
    size_t *w = xcalloc((size_t)t->ncols, sizeof *w);
    size_t rows = cli_table_rows(t);
    for (int c = 0; c < t->ncols; c++) w[c] = width(t->headers[c]);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t cw = width(t->cells[i]);
        if (cw > w[i % (size_t)t->ncols]) w[i % (size_t)t->ncols] = cw;
    }
    for (size_t r = 0; r <= rows; r++) {
        size_t pending = 0;
        for (int c = 0; c < t->ncols; c++) {
            size_t i = (r - 1) * (size_t)t->ncols + (size_t)c;
            const char *s = r == 0 ? t->headers[c] : i < t->ncells ? t->cells[i] : "";
            if (c) pending += 2;
            print_cell(out, s, w[c], t->align[c], &pending);
        }
        fputc('\n', out);
    }
    free(w);
}

/* v scaled by powers of base with the given unit names: one decimal below
 * 10 of a unit, none above ("1.2k", "34k", "3.4 MiB", "120 MiB"). */
static char *scaled(char *buf, size_t n, double v, double base, const char *const *units, const char *sep)
{
    int u = 0;
    double a = v < 0 ? -v : v;
    while (a >= base * 0.9995 && units[u + 1]) {
        a /= base;
        v /= base;
        u++;
    }
    if (u == 0 || a >= 9.95) snprintf(buf, n, "%.0f%s%s", v, *units[u] ? sep : "", units[u]);
    else snprintf(buf, n, "%.1f%s%s", v, sep, units[u]);
    return buf;
}

char *cli_fmt_count(char *buf, size_t n, double v)
{
    static const char *const units[] = {"", "k", "M", "G", "T", NULL};
    return scaled(buf, n, v, 1000, units, "");
}

char *cli_fmt_bytes(char *buf, size_t n, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", NULL};
    if (v < 1024 && v > -1024) {
        snprintf(buf, n, "%.0f B", v);
        return buf;
    }
    return scaled(buf, n, v, 1024, units, " ");
}

char *cli_fmt_rate(char *buf, size_t n, double v)
{
    if (v != 0 && v < 9.95 && v > -9.95) snprintf(buf, n, "%.1f", v);
    else cli_fmt_count(buf, n, v);
    return buf;
}

char *cli_fmt_duration(char *buf, size_t n, double ms)
{
    long long s = (long long)(ms / 1000);
    if (s < 60) snprintf(buf, n, "%llds", s);
    else if (s < 3600) snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400) snprintf(buf, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else snprintf(buf, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    return buf;
}

int cli_print_json(const json_t *v)
{
    if (v) json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    else fputs("null", stdout);
    fputc('\n', stdout);
    return CLI_OK;
}

const char *cli_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

double cli_jnum(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

const json_t *cli_jpath(const json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof key) return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        o = json_object_get(o, key);
        path += len + (dot ? 1 : 0);
    }
    return o;
}

double cli_jpnum(const json_t *o, const char *path)
{
    return json_number_value(cli_jpath(o, path));
}

const char *cli_jyes(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key)) ? "yes" : "no";
}

char *cli_jshow(const json_t *v)
{
    if (!v || json_is_null(v)) return xstrdup("");
    if (json_is_string(v)) return xstrdup(json_string_value(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *copy = xstrdup(s ? s : "");
    free(s);
    return copy;
}

void cli_table_cell_json(cli_table_t *t, const json_t *v)
{
    if ((json_is_object(v) && !json_object_size(v)) || (json_is_array(v) && !json_array_size(v))) {
        cli_table_cell(t, "");
        return;
    }
    char *s = cli_jshow(v);
    cli_table_cell(t, s);
    free(s);
}
