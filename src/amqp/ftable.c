/*
 * AMQP field tables and arrays (see ftable.h for the type list).
 *
 *   table:  u32 length | ( name shortstr | type u8 | value )*
 *   array:  u32 length | ( type u8 | value )*
 *
 *   value by type:  t b B u8 | s u u16 | I i u32 | l T u64 | f 4 | d 8
 *                   D scale u8 + u32 | S x u32 length + bytes
 *                   F A u32 length + content | V nothing
 *
 * All integers are big-endian. A table's content is the bytes after its u32
 * length. Validity: every entry ends inside the content, every type octet is
 * one of the above, every nested length fits in what remains of its parent,
 * and nesting stops at FTABLE_MAX_DEPTH levels below the outermost table.
 * Validation walks the structure once with the bounds-checked reader; the
 * recursion depth is bounded by that same limit.
 */
#include "amqp/ftable.h"

#include <assert.h>
#include <string.h>

/* Reads one value of the given type (the type octet already consumed). On
 * an unknown type or truncation r's sticky error is set. Nested tables and
 * arrays are returned as views and not checked here. */
static void read_value(rbuf_t *r, uint8_t type, fvalue_t *v)
{
    memset(v, 0, sizeof *v);
    v->type = (fv_type_t)type;
    switch (type) {
    case FV_VOID: break;
    case FV_BOOL: v->v.i = rbuf_u8(r) != 0; break;
    case FV_I8: v->v.i = rbuf_i8(r); break;
    case FV_U8: v->v.i = rbuf_u8(r); break;
    case FV_I16: v->v.i = rbuf_i16(r); break;
    case FV_U16: v->v.i = rbuf_u16(r); break;
    case FV_I32: v->v.i = rbuf_i32(r); break;
    case FV_U32: v->v.i = rbuf_u32(r); break;
    case FV_I64: v->v.i = rbuf_i64(r); break;
    case FV_TIMESTAMP: v->v.i = (int64_t)rbuf_u64(r); break;
    case FV_FLOAT: {
        uint32_t u = rbuf_u32(r);
        float f;
        memcpy(&f, &u, sizeof f);
        v->v.d = f;
        break;
    }
    case FV_DOUBLE: v->v.d = rbuf_f64(r); break;
    case FV_DECIMAL:
        v->v.dec.scale = rbuf_u8(r);
        v->v.dec.value = rbuf_u32(r);
        break;
    case FV_LONGSTR:
    case FV_BYTES:
    case FV_TABLE:
    case FV_ARRAY: {
        /* str, table and array share the layout of one amqp_bytes_t */
        uint32_t n = rbuf_u32(r);
        const uint8_t *p = rbuf_view(r, n); /* refuses n beyond what remains */
        v->v.str.p = p;
        v->v.str.len = p ? n : 0;
        break;
    }
    default: rbuf_fail(r, HE_MALFORMED); break;
    }
}

static void read_name(rbuf_t *r, amqp_bytes_t *name)
{
    uint8_t n = rbuf_u8(r);
    name->p = rbuf_view(r, n);
    name->len = name->p ? n : 0;
}

static int check_table(amqp_bytes_t content, int depth);
static int check_array(amqp_bytes_t content, int depth);

/* Checks a value read at nesting level `depth` (its container's level). */
static int check_nested(const fvalue_t *v, int depth)
{
    if (v->type != FV_TABLE && v->type != FV_ARRAY)
        return 0;
    if (depth + 1 > FTABLE_MAX_DEPTH)
        return HE_MALFORMED;
    return v->type == FV_TABLE ? check_table(v->v.table, depth + 1)
                               : check_array(v->v.array, depth + 1);
}

static int check_table(amqp_bytes_t content, int depth)
{
    rbuf_t r;
    rbuf_init(&r, content.p, content.len);
    while (rbuf_remaining(&r) > 0) {
        amqp_bytes_t name;
        fvalue_t v;
        read_name(&r, &name);
        read_value(&r, rbuf_u8(&r), &v);
        if (r.err || check_nested(&v, depth) != 0)
            return HE_MALFORMED;
    }
    return r.err ? HE_MALFORMED : 0;
}

static int check_array(amqp_bytes_t content, int depth)
{
    rbuf_t r;
    rbuf_init(&r, content.p, content.len);
    while (rbuf_remaining(&r) > 0) {
        fvalue_t v;
        read_value(&r, rbuf_u8(&r), &v);
        if (r.err || check_nested(&v, depth) != 0)
            return HE_MALFORMED;
    }
    return r.err ? HE_MALFORMED : 0;
}

int ftable_validate(amqp_bytes_t content) { return check_table(content, 0); }

int farray_validate(amqp_bytes_t content) { return check_array(content, 0); }

void ftable_read(rbuf_t *r, amqp_bytes_t *out)
{
    out->p = NULL;
    out->len = 0;
    /* checked here rather than by rbuf_u32/rbuf_view so that a short table
     * is HE_MALFORMED (the frame around it is complete), not HE_TRUNCATED */
    if (r->err)
        return;
    if (rbuf_remaining(r) < 4 || buf_get_be32(r->p + r->pos) > rbuf_remaining(r) - 4) {
        rbuf_fail(r, HE_MALFORMED);
        return;
    }
    uint32_t n = rbuf_u32(r);
    amqp_bytes_t content = {rbuf_view(r, n), n};
    if (ftable_validate(content) != 0) {
        rbuf_fail(r, HE_MALFORMED);
        return;
    }
    *out = content;
}

/* ---- iteration and lookup (on validated content) ---- */

int ftable_next(ftable_iter_t *it, amqp_bytes_t *name, fvalue_t *value)
{
    if (it->rest.len == 0)
        return 0;
    rbuf_t r;
    rbuf_init(&r, it->rest.p, it->rest.len);
    read_name(&r, name);
    read_value(&r, rbuf_u8(&r), value);
    if (r.err) { /* not validated: stop rather than read on */
        it->rest.len = 0;
        return 0;
    }
    it->rest.p += r.pos;
    it->rest.len -= (uint32_t)r.pos;
    return 1;
}

int farray_next(ftable_iter_t *it, fvalue_t *value)
{
    if (it->rest.len == 0)
        return 0;
    rbuf_t r;
    rbuf_init(&r, it->rest.p, it->rest.len);
    read_value(&r, rbuf_u8(&r), value);
    if (r.err) {
        it->rest.len = 0;
        return 0;
    }
    it->rest.p += r.pos;
    it->rest.len -= (uint32_t)r.pos;
    return 1;
}

int ftable_get(amqp_bytes_t content, const char *name, fvalue_t *value)
{
    ftable_iter_t it = {content};
    amqp_bytes_t n;
    while (ftable_next(&it, &n, value))
        if (amqp_bytes_eq(n, name))
            return 1;
    return 0;
}

static int is_integer(fv_type_t t)
{
    switch (t) {
    case FV_I8: case FV_U8: case FV_I16: case FV_U16: case FV_I32: case FV_U32: case FV_I64:
        return 1;
    default:
        return 0;
    }
}

int ftable_get_int(amqp_bytes_t content, const char *name, int64_t *out)
{
    fvalue_t v;
    if (!ftable_get(content, name, &v))
        return 0;
    if (!is_integer(v.type) && v.type != FV_TIMESTAMP && v.type != FV_BOOL)
        return -1;
    *out = v.v.i;
    return 1;
}

int ftable_get_str(amqp_bytes_t content, const char *name, amqp_bytes_t *out)
{
    fvalue_t v;
    if (!ftable_get(content, name, &v))
        return 0;
    if (v.type != FV_LONGSTR)
        return -1;
    *out = v.v.str;
    return 1;
}

static int bytes_same(amqp_bytes_t a, amqp_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int fvalue_equal(const fvalue_t *a, const fvalue_t *b)
{
    if (is_integer(a->type) && is_integer(b->type))
        return a->v.i == b->v.i;
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case FV_VOID: return 1;
    case FV_BOOL: case FV_TIMESTAMP: return a->v.i == b->v.i;
    case FV_FLOAT: case FV_DOUBLE: return memcmp(&a->v.d, &b->v.d, sizeof a->v.d) == 0;
    case FV_DECIMAL:
        return a->v.dec.scale == b->v.dec.scale && a->v.dec.value == b->v.dec.value;
    case FV_LONGSTR: case FV_BYTES: case FV_TABLE: case FV_ARRAY:
        return bytes_same(a->v.str, b->v.str);
    default: return 0;
    }
}

/* ---- builder ---- */

size_t ftable_begin(wbuf_t *w) { return wbuf_reserve(w, 4); }

void ftable_end(wbuf_t *w, size_t mark)
{
    assert(mark + 4 <= w->len && w->len - mark - 4 <= UINT32_MAX);
    wbuf_patch_u32(w, mark, (uint32_t)(w->len - mark - 4));
}

void ftable_put_name(wbuf_t *w, const char *name)
{
    size_t n = strlen(name);
    assert(n <= 255);
    wbuf_u8(w, (uint8_t)n);
    wbuf_put(w, name, n);
}

void ftable_put_bool(wbuf_t *w, int v)
{
    wbuf_u8(w, FV_BOOL);
    wbuf_u8(w, v ? 1 : 0);
}

void ftable_put_i64(wbuf_t *w, int64_t v)
{
    wbuf_u8(w, FV_I64);
    wbuf_i64(w, v);
}

void ftable_put_i32(wbuf_t *w, int32_t v)
{
    wbuf_u8(w, FV_I32);
    wbuf_i32(w, v);
}

void ftable_put_longstr(wbuf_t *w, const void *p, size_t n)
{
    assert(n <= UINT32_MAX);
    wbuf_u8(w, FV_LONGSTR);
    wbuf_u32(w, (uint32_t)n);
    wbuf_put(w, p, n);
}

void ftable_put_timestamp(wbuf_t *w, uint64_t v)
{
    wbuf_u8(w, FV_TIMESTAMP);
    wbuf_u64(w, v);
}

size_t ftable_put_table_begin(wbuf_t *w)
{
    wbuf_u8(w, FV_TABLE);
    return ftable_begin(w);
}

size_t ftable_put_array_begin(wbuf_t *w)
{
    wbuf_u8(w, FV_ARRAY);
    return ftable_begin(w);
}

void ftable_put_raw(wbuf_t *w, const void *p, size_t n) { wbuf_put(w, p, n); }

const char *fvalue_type_name(fv_type_t t)
{
    switch (t) {
    case FV_BOOL: return "bool";
    case FV_I8: return "byte";
    case FV_U8: return "unsignedbyte";
    case FV_I16: return "short";
    case FV_U16: return "unsignedshort";
    case FV_I32: return "signedint";
    case FV_U32: return "unsignedint";
    case FV_I64: return "long";
    case FV_FLOAT: return "float";
    case FV_DOUBLE: return "double";
    case FV_DECIMAL: return "decimal";
    case FV_LONGSTR: return "longstr";
    case FV_BYTES: return "binary";
    case FV_ARRAY: return "array";
    case FV_TABLE: return "table";
    case FV_TIMESTAMP: return "timestamp";
    case FV_VOID: return "void";
    }
    return "unknown";
}

int fvalue_is_int(fv_type_t t)
{
    return t == FV_I8 || t == FV_U8 || t == FV_I16 || t == FV_U16 || t == FV_I32 || t == FV_U32 || t == FV_I64;
}
