/*
 * Field table tests: one entry of every type (hand-written bytes, named by
 * their type letter), nesting and the depth limit, hostile lengths and
 * types, truncation at every byte (heap copies of exactly the prefix, so ASan
 * sees any read past it), lookups, fvalue_equal across integer widths, and
 * the builder against byte vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/ftable.h"

/* Table content with one entry per type; each entry is named by its type. */
static const uint8_t every[] = {
    1, 't', 't', 0x01,                                     /* bool true */
    1, 'b', 'b', 0xfe,                                     /* int8 -2 */
    1, 'B', 'B', 0xfe,                                     /* uint8 254 */
    1, 's', 's', 0xff, 0xfe,                               /* int16 -2 */
    1, 'u', 'u', 0xff, 0xfe,                               /* uint16 65534 */
    1, 'I', 'I', 0xff, 0xff, 0xff, 0xfe,                   /* int32 -2 */
    1, 'i', 'i', 0xff, 0xff, 0xff, 0xfe,                   /* uint32 4294967294 */
    1, 'l', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* int64 -2 */
    1, 'f', 'f', 0x3f, 0xc0, 0x00, 0x00,                   /* float 1.5 */
    1, 'd', 'd', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,             /* double 1.5 */
    1, 'D', 'D', 0x02, 0x00, 0x00, 0x01, 0x2c,             /* decimal 3.00 */
    1, 'S', 'S', 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c',    /* longstr "abc" */
    1, 'x', 'x', 0x00, 0x00, 0x00, 0x02, 0x00, 0xff,       /* byte array */
    1, 'A', 'A', 0x00, 0x00, 0x00, 0x08,                   /* array of 8 bytes: */
    'I', 0x00, 0x00, 0x00, 0x01, 'V', 't', 0x00,           /*   [I 1, V, t false] */
    1, 'F', 'F', 0x00, 0x00, 0x00, 0x03, 1, 'k', 'V',      /* table {k: V} */
    1, 'T', 'T', 0x00, 0x00, 0x00, 0x00, 0x65, 0x5e, 0x3f, 0x80, /* timestamp */
    1, 'V', 'V',                                           /* void */
};
#define N_EVERY 17

static amqp_bytes_t view(const void *p, size_t n)
{
    amqp_bytes_t b = {(const uint8_t *)p, (uint32_t)n};
    return b;
}

/* ftable_validate on a heap copy of exactly n bytes. */
static int validate_copy(const uint8_t *p, size_t n, int array)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    int rc = array ? farray_validate(view(copy, n)) : ftable_validate(view(copy, n));
    free(copy);
    return rc;
}

static void test_every_type(void **state)
{
    (void)state;
    amqp_bytes_t t = view(every, sizeof every);
    assert_int_equal(ftable_validate(t), 0);

    ftable_iter_t it = {t};
    amqp_bytes_t name;
    fvalue_t v;
    int count = 0;
    while (ftable_next(&it, &name, &v)) {
        assert_int_equal(name.len, 1);
        assert_int_equal(v.type, name.p[0]);
        switch (v.type) {
        case FV_BOOL: assert_int_equal(v.v.i, 1); break;
        case FV_I8: case FV_I16: case FV_I32: case FV_I64: assert_int_equal(v.v.i, -2); break;
        case FV_U8: assert_int_equal(v.v.i, 254); break;
        case FV_U16: assert_int_equal(v.v.i, 65534); break;
        case FV_U32: assert_true(v.v.i == 4294967294ll); break;
        case FV_FLOAT: case FV_DOUBLE: assert_true(v.v.d == 1.5); break;
        case FV_DECIMAL:
            assert_int_equal(v.v.dec.scale, 2);
            assert_int_equal(v.v.dec.value, 300);
            break;
        case FV_LONGSTR: assert_true(amqp_bytes_eq(v.v.str, "abc")); break;
        case FV_BYTES:
            assert_int_equal(v.v.str.len, 2);
            assert_int_equal(v.v.str.p[1], 0xff);
            break;
        case FV_ARRAY: {
            assert_int_equal(v.v.array.len, 8);
            ftable_iter_t ai = {v.v.array};
            fvalue_t e;
            assert_true(farray_next(&ai, &e));
            assert_int_equal(e.type, FV_I32);
            assert_int_equal(e.v.i, 1);
            assert_true(farray_next(&ai, &e));
            assert_int_equal(e.type, FV_VOID);
            assert_true(farray_next(&ai, &e));
            assert_int_equal(e.type, FV_BOOL);
            assert_int_equal(e.v.i, 0);
            assert_false(farray_next(&ai, &e));
            break;
        }
        case FV_TABLE: {
            fvalue_t k;
            assert_int_equal(ftable_get(v.v.table, "k", &k), 1);
            assert_int_equal(k.type, FV_VOID);
            break;
        }
        case FV_TIMESTAMP: assert_int_equal(v.v.i, 0x655e3f80); break;
        case FV_VOID: break;
        default: fail();
        }
        count++;
    }
    assert_int_equal(count, N_EVERY);
    assert_false(ftable_next(&it, &name, &v)); /* stays at the end */
}

static void test_truncation(void **state)
{
    (void)state;
    /* content prefixes are valid exactly at entry boundaries */
    size_t bounds[N_EVERY + 1];
    size_t nb = 0;
    bounds[nb++] = 0;
    ftable_iter_t it = {view(every, sizeof every)};
    amqp_bytes_t name;
    fvalue_t v;
    while (ftable_next(&it, &name, &v))
        bounds[nb++] = sizeof every - it.rest.len;
    assert_int_equal(nb, N_EVERY + 1);
    size_t b = 0;
    for (size_t n = 0; n <= sizeof every; n++) {
        int boundary = b < nb && bounds[b] == n;
        assert_int_equal(validate_copy(every, n, 0), boundary ? 0 : HE_MALFORMED);
        b += boundary;
    }

    /* with its length prefix, every truncation fails in ftable_read */
    size_t full = 4 + sizeof every;
    uint8_t *wire = malloc(full);
    assert_non_null(wire);
    wbuf_put_be32(wire, sizeof every);
    memcpy(wire + 4, every, sizeof every);
    for (size_t n = 0; n <= full; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, wire, n);
        rbuf_t r;
        rbuf_init(&r, copy, n);
        amqp_bytes_t out;
        ftable_read(&r, &out);
        if (n == full) {
            assert_int_equal(r.err, 0);
            assert_int_equal(out.len, sizeof every);
            assert_ptr_equal(out.p, copy + 4);
        } else {
            assert_int_equal(r.err, HE_MALFORMED);
            assert_int_equal(out.len, 0);
        }
        free(copy);
    }
    free(wire);

    /* an array's prefixes: [I 1, V, t 0] is valid at 0, 5, 6 and 8 bytes */
    static const uint8_t arr[] = {'I', 0, 0, 0, 1, 'V', 't', 0};
    for (size_t n = 0; n <= sizeof arr; n++) {
        int ok = n == 0 || n == 5 || n == 6 || n == 8;
        assert_int_equal(validate_copy(arr, n, 1), ok ? 0 : HE_MALFORMED);
    }
}

static void test_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
    } bad[] = {
        {"longstr length 4 GiB", {1, 'k', 'S', 0xff, 0xff, 0xff, 0xff, 'a'}, 8},
        {"byte array length 2 GiB", {1, 'k', 'x', 0x80, 0, 0, 0}, 7},
        {"nested table longer than parent", {1, 'k', 'F', 0, 0, 0, 5, 1, 'a', 'V'}, 10},
        {"array length 4 GiB", {1, 'k', 'A', 0xff, 0xff, 0xff, 0xff}, 7},
        {"name longer than content", {200, 'k'}, 2},
        {"unknown type", {1, 'k', 'Z'}, 3},
        {"0-9-1 spec-only type U", {1, 'k', 'U', 0, 1}, 5},
        {"missing type", {1, 'k'}, 2},
        {"short int32", {1, 'k', 'I', 0, 0}, 5},
        {"short decimal", {1, 'k', 'D', 2, 0}, 5},
        {"short timestamp", {1, 'k', 'T', 0, 0, 0, 0, 0, 0, 0}, 10},
        {"bad type inside nested table", {1, 'k', 'F', 0, 0, 0, 3, 1, 'a', 'Z'}, 10},
        {"bad type inside array", {1, 'k', 'A', 0, 0, 0, 1, 'Z'}, 8},
        {"nested table truncated entry", {1, 'k', 'F', 0, 0, 0, 2, 1, 'a'}, 9},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (validate_copy(bad[i].b, bad[i].n, 0) != HE_MALFORMED)
            fail_msg("accepted: %s", bad[i].what);
        /* iteration over unvalidated bytes stops instead of reading on */
        uint8_t *copy = malloc(bad[i].n);
        assert_non_null(copy);
        memcpy(copy, bad[i].b, bad[i].n);
        ftable_iter_t it = {view(copy, bad[i].n)};
        amqp_bytes_t name;
        fvalue_t v;
        while (ftable_next(&it, &name, &v))
            ;
        free(copy);
    }
    /* empty table and an empty name are fine */
    assert_int_equal(ftable_validate(view(NULL, 0)), 0);
    static const uint8_t empty_name[] = {0, 'V'};
    assert_int_equal(validate_copy(empty_name, sizeof empty_name, 0), 0);
    /* array bytes given as a table, and the reverse */
    static const uint8_t arr[] = {'V', 'V'};
    assert_int_equal(validate_copy(arr, sizeof arr, 1), 0);
    assert_int_equal(validate_copy(arr, sizeof arr, 0), HE_MALFORMED);
    assert_int_equal(validate_copy(empty_name, sizeof empty_name, 1), HE_MALFORMED);
}

/* Writes a table holding `levels` nested values below the top, alternating
 * tables and arrays when `mixed`. Returns the content view into w. */
static amqp_bytes_t nest(wbuf_t *w, int levels, int mixed)
{
    size_t marks[64];
    assert_true(levels < 64);
    wbuf_reset(w);
    size_t top = ftable_begin(w);
    int in_array = 0;
    for (int k = 0; k < levels; k++) {
        if (!in_array)
            ftable_put_name(w, "n");
        int array = mixed && k % 2 == 1;
        marks[k] = array ? ftable_put_array_begin(w) : ftable_put_table_begin(w);
        in_array = array;
    }
    for (int k = levels - 1; k >= 0; k--)
        ftable_end(w, marks[k]);
    ftable_end(w, top);
    return view(w->p + 4, w->len - 4);
}

static void test_depth(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    for (int mixed = 0; mixed < 2; mixed++) {
        for (int levels = 0; levels <= FTABLE_MAX_DEPTH + 2; levels++) {
            amqp_bytes_t t = nest(&w, levels, mixed);
            int want = levels <= FTABLE_MAX_DEPTH ? 0 : HE_MALFORMED;
            assert_int_equal(ftable_validate(t), want);
            rbuf_t r;
            rbuf_init(&r, w.p, w.len);
            amqp_bytes_t out;
            ftable_read(&r, &out);
            assert_int_equal(r.err, want);
        }
    }
    /* walk the deepest valid one down to the bottom */
    amqp_bytes_t t = nest(&w, FTABLE_MAX_DEPTH, 1);
    int depth = 0;
    fv_type_t kind = FV_TABLE;
    for (;;) {
        fvalue_t v;
        ftable_iter_t it = {t};
        amqp_bytes_t name;
        int got = kind == FV_TABLE ? ftable_next(&it, &name, &v) : farray_next(&it, &v);
        if (!got)
            break;
        depth++;
        kind = v.type;
        t = kind == FV_TABLE ? v.v.table : v.v.array;
    }
    assert_int_equal(depth, FTABLE_MAX_DEPTH);

    /* a deep array on its own */
    static uint8_t deep[5 * (FTABLE_MAX_DEPTH + 2)];
    for (int levels = FTABLE_MAX_DEPTH; levels <= FTABLE_MAX_DEPTH + 1; levels++) {
        size_t n = 5 * (size_t)levels;
        for (int k = 0; k < levels; k++) {
            deep[5 * k] = 'A';
            wbuf_put_be32(deep + 5 * k + 1, (uint32_t)(n - 5 * (size_t)k - 5));
        }
        assert_int_equal(farray_validate(view(deep, n)),
                         levels <= FTABLE_MAX_DEPTH ? 0 : HE_MALFORMED);
    }
    wbuf_destroy(&w);
}

static void test_lookups(void **state)
{
    (void)state;
    amqp_bytes_t t = view(every, sizeof every);
    static const struct { const char *name; int64_t want; } ints[] = {
        {"t", 1}, {"b", -2}, {"B", 254}, {"s", -2}, {"u", 65534}, {"I", -2},
        {"i", 4294967294ll}, {"l", -2}, {"T", 0x655e3f80},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t got = 0;
        assert_int_equal(ftable_get_int(t, ints[i].name, &got), 1);
        assert_true(got == ints[i].want);
    }
    static const char *not_int[] = {"f", "d", "D", "S", "x", "A", "F", "V"};
    for (size_t i = 0; i < sizeof not_int / sizeof not_int[0]; i++) {
        int64_t got = 77;
        assert_int_equal(ftable_get_int(t, not_int[i], &got), -1);
        assert_int_equal(got, 77);
    }
    int64_t got;
    assert_int_equal(ftable_get_int(t, "missing", &got), 0);
    assert_int_equal(ftable_get_int(t, "", &got), 0);
    assert_int_equal(ftable_get_int(view(NULL, 0), "t", &got), 0);

    amqp_bytes_t s;
    assert_int_equal(ftable_get_str(t, "S", &s), 1);
    assert_true(amqp_bytes_eq(s, "abc"));
    assert_ptr_equal(s.p, memchr(every, 'a', sizeof every)); /* a view */
    assert_int_equal(ftable_get_str(t, "x", &s), -1);
    assert_int_equal(ftable_get_str(t, "I", &s), -1);
    assert_int_equal(ftable_get_str(t, "SS", &s), 0);

    /* the first of duplicate names wins; names compare by full length */
    static const uint8_t dup[] = {
        3, 'k', 'e', 'y', 'I', 0, 0, 0, 1,
        3, 'k', 'e', 'y', 'I', 0, 0, 0, 2,
        2, 'k', 'e', 'I', 0, 0, 0, 3,
    };
    assert_int_equal(ftable_validate(view(dup, sizeof dup)), 0);
    assert_int_equal(ftable_get_int(view(dup, sizeof dup), "key", &got), 1);
    assert_int_equal(got, 1);
    assert_int_equal(ftable_get_int(view(dup, sizeof dup), "ke", &got), 1);
    assert_int_equal(got, 3);
    assert_int_equal(ftable_get_int(view(dup, sizeof dup), "k", &got), 0);
}

static fvalue_t fv_int(fv_type_t t, int64_t i)
{
    fvalue_t v;
    memset(&v, 0, sizeof v);
    v.type = t;
    v.v.i = i;
    return v;
}

static fvalue_t fv_str(fv_type_t t, const char *s)
{
    fvalue_t v;
    memset(&v, 0, sizeof v);
    v.type = t;
    v.v.str = amqp_cstr(s);
    return v;
}

static void test_equal(void **state)
{
    (void)state;
    /* integers compare by value whatever their width and signedness */
    static const fv_type_t ints[] = {FV_I8, FV_U8, FV_I16, FV_U16, FV_I32, FV_U32, FV_I64};
    for (size_t i = 0; i < 7; i++) {
        for (size_t j = 0; j < 7; j++) {
            fvalue_t a = fv_int(ints[i], 5), b = fv_int(ints[j], 5), c = fv_int(ints[j], 6);
            assert_true(fvalue_equal(&a, &b));
            assert_false(fvalue_equal(&a, &c));
        }
    }
    /* decoded: B 254 is not b -2; i 4294967294 is not I -2; b -2 is l -2 */
    fvalue_t vb, vB, vi, vI, vl, vS, vx, vt, vV, vT;
    amqp_bytes_t t = view(every, sizeof every);
    assert_true(ftable_get(t, "b", &vb) && ftable_get(t, "B", &vB) && ftable_get(t, "i", &vi) &&
                ftable_get(t, "I", &vI) && ftable_get(t, "l", &vl) && ftable_get(t, "S", &vS) &&
                ftable_get(t, "x", &vx) && ftable_get(t, "t", &vt) && ftable_get(t, "V", &vV) &&
                ftable_get(t, "T", &vT));
    assert_false(fvalue_equal(&vb, &vB));
    assert_false(fvalue_equal(&vi, &vI));
    assert_true(fvalue_equal(&vb, &vl));
    assert_true(fvalue_equal(&vI, &vl));

    /* bool and timestamp are not integers for matching */
    fvalue_t one = fv_int(FV_I32, 1);
    assert_false(fvalue_equal(&vt, &one));
    assert_true(fvalue_equal(&vt, &vt));
    fvalue_t ts = fv_int(FV_I64, 0x655e3f80);
    assert_false(fvalue_equal(&vT, &ts));
    fvalue_t ts2 = fv_int(FV_TIMESTAMP, 0x655e3f80);
    assert_true(fvalue_equal(&vT, &ts2));

    /* strings by bytes, not by type across S and x */
    fvalue_t abc = fv_str(FV_LONGSTR, "abc"), abd = fv_str(FV_LONGSTR, "abd");
    fvalue_t ab = fv_str(FV_LONGSTR, "ab"), xabc = fv_str(FV_BYTES, "abc");
    assert_true(fvalue_equal(&vS, &abc));
    assert_false(fvalue_equal(&vS, &abd));
    assert_false(fvalue_equal(&vS, &ab));
    assert_false(fvalue_equal(&abc, &xabc));
    assert_false(fvalue_equal(&vS, &vx));
    fvalue_t five = fv_int(FV_I8, 5);
    assert_false(fvalue_equal(&vS, &five));

    /* void equals void only */
    fvalue_t v2 = fv_int(FV_VOID, 0);
    assert_true(fvalue_equal(&vV, &v2));
    assert_false(fvalue_equal(&vV, &five));

    /* float and double are different types; decimals compare both parts */
    fvalue_t f, d;
    assert_true(ftable_get(t, "f", &f) && ftable_get(t, "d", &d));
    assert_false(fvalue_equal(&f, &d));
    assert_true(fvalue_equal(&d, &d));
    fvalue_t dec1, dec2;
    assert_true(ftable_get(t, "D", &dec1));
    dec2 = dec1;
    assert_true(fvalue_equal(&dec1, &dec2));
    dec2.v.dec.scale = 1;
    assert_false(fvalue_equal(&dec1, &dec2));

    /* tables and arrays by raw bytes */
    fvalue_t tab, tab2;
    assert_true(ftable_get(t, "F", &tab));
    tab2 = fv_str(FV_TABLE, "\001kV");
    assert_true(fvalue_equal(&tab, &tab2));
    tab2.type = FV_ARRAY;
    assert_false(fvalue_equal(&tab, &tab2));
}

/* Random byte changes to the every-type table: validation never reads past
 * the buffer, and whatever it accepts iterates to the end without error. */
static void test_mutations(void **state)
{
    (void)state;
    uint32_t rng = 777;
    size_t accepted = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t *copy = malloc(sizeof every);
        assert_non_null(copy);
        memcpy(copy, every, sizeof every);
        for (int k = 0; k < 1 + round % 4; k++) {
            rng = rng * 1103515245u + 12345u;
            copy[(rng >> 8) % sizeof every] = (uint8_t)(rng >> 24);
        }
        amqp_bytes_t t = view(copy, sizeof every);
        if (ftable_validate(t) == 0) {
            ftable_iter_t it = {t};
            amqp_bytes_t name;
            fvalue_t v;
            while (ftable_next(&it, &name, &v))
                ;
            assert_int_equal(it.rest.len, 0);
            accepted++;
        }
        free(copy);
    }
    assert_true(accepted > 0);
}

static void test_builder(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    size_t top = ftable_begin(&w);
    ftable_put_name(&w, "a");
    ftable_put_bool(&w, 7);
    ftable_put_name(&w, "n");
    ftable_put_i64(&w, -1);
    ftable_put_name(&w, "i");
    ftable_put_i32(&w, 258);
    ftable_put_name(&w, "s");
    ftable_put_longstr(&w, "hi", 2);
    ftable_put_name(&w, "ts");
    ftable_put_timestamp(&w, 1);
    ftable_put_name(&w, "sub");
    size_t sub = ftable_put_table_begin(&w);
    ftable_put_name(&w, "x");
    ftable_put_bool(&w, 0);
    ftable_end(&w, sub);
    ftable_put_name(&w, "arr");
    size_t arr = ftable_put_array_begin(&w);
    ftable_put_i32(&w, 2);
    ftable_put_longstr(&w, "z", 1);
    ftable_end(&w, arr);
    ftable_put_name(&w, "v");
    ftable_put_raw(&w, "V", 1);
    ftable_end(&w, top);

    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x4f,                     /* 79 bytes follow */
        1, 'a', 't', 0x01,
        1, 'n', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        1, 'i', 'I', 0x00, 0x00, 0x01, 0x02,
        1, 's', 'S', 0x00, 0x00, 0x00, 0x02, 'h', 'i',
        2, 't', 's', 'T', 0, 0, 0, 0, 0, 0, 0, 1,
        3, 's', 'u', 'b', 'F', 0x00, 0x00, 0x00, 0x04, 1, 'x', 't', 0x00,
        3, 'a', 'r', 'r', 'A', 0x00, 0x00, 0x00, 0x0b,
        'I', 0x00, 0x00, 0x00, 0x02, 'S', 0x00, 0x00, 0x00, 0x01, 'z',
        1, 'v', 'V',
    };
    assert_int_equal(w.len, sizeof want);
    assert_memory_equal(w.p, want, sizeof want);

    rbuf_t r;
    rbuf_init(&r, w.p, w.len);
    amqp_bytes_t content;
    ftable_read(&r, &content);
    assert_int_equal(r.err, 0);
    assert_int_equal(rbuf_remaining(&r), 0);
    int64_t i;
    assert_int_equal(ftable_get_int(content, "i", &i), 1);
    assert_int_equal(i, 258);

    /* an empty table is just a zero length */
    wbuf_reset(&w);
    ftable_end(&w, ftable_begin(&w));
    static const uint8_t empty[] = {0, 0, 0, 0};
    assert_int_equal(w.len, 4);
    assert_memory_equal(w.p, empty, 4);
    wbuf_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
