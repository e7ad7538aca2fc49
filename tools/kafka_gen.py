#!/usr/bin/python3
"""Generates Herald's Kafka message codec (kafka_msgs.h/.c) from a schema.

usage: kafka_gen.py SCHEMA MSGS.h MSGS.c SAMPLE.h SAMPLE.c

Writes the codec (kafka_msgs.h/.c) and, for unit tests only, sample-value
fillers (kafka_sample.h/.c).

Schema language (one file, indentation = nesting, 2 spaces per level):

    api <key> <Name> versions <min>-<max> [flexible <n>+]
    request
      <field>...
    response
      <field>...

    field := <name> <type> [<vers>] [null <vers>] [tag <n>] [default <value>]
    type  := int8 int16 int32 int64 uint16 float64 bool uuid
             string nstring bytes nbytes records     (n* = nullable, records too)
             []<type>   array                         []?<type> nullable array
             <Struct>   a CamelCase name: the fields indented below belong to it
    vers  := <n>+ | <n>-<m> | <n>     (default: every version of the API)

`null <vers>` makes a string/bytes/array nullable only in those versions;
`tag <n>` makes the field a tagged field (flexible versions only); `default`
is the value a field holds in versions where it is absent (ints, true/false,
null; else 0/false/""/empty). Comments start with '#'.

Only the standard library is used; the output is deterministic.
"""
import re
import sys

FIXED = {'int8': ('int8_t', 1), 'int16': ('int16_t', 2), 'int32': ('int32_t', 4),
         'int64': ('int64_t', 8), 'uint16': ('uint16_t', 2), 'float64': ('double', 8),
         'bool': ('bool', 1), 'uuid': ('kuuid_t', 16)}
VARLEN = {'string': 'kstr_t', 'nstring': 'kstr_t', 'bytes': 'kbytes_t',
          'nbytes': 'kbytes_t', 'records': 'kbytes_t'}
RD = {'int8': 'rbuf_i8', 'int16': 'rbuf_i16', 'int32': 'rbuf_i32', 'int64': 'rbuf_i64',
      'uint16': 'rbuf_u16', 'float64': 'rbuf_f64'}
WR = {'int8': 'wbuf_i8', 'int16': 'wbuf_i16', 'int32': 'wbuf_i32', 'int64': 'wbuf_i64',
      'uint16': 'wbuf_u16', 'float64': 'wbuf_f64'}
INF = 1 << 15


def snake(name):
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', name)
    return re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', s).lower()


def die(msg, lineno=None):
    sys.exit('kafka_gen: %s%s' % ('line %d: ' % lineno if lineno else '', msg))


def parse_vers(tok, lineno):
    m = re.fullmatch(r'(\d+)(\+|-(\d+))?', tok)
    if not m:
        die('bad version range %r' % tok, lineno)
    lo = int(m.group(1))
    if m.group(2) == '+':
        return (lo, INF)
    return (lo, int(m.group(3)) if m.group(3) else lo)


class Struct:
    def __init__(self, name, cname):
        self.name, self.cname, self.fields = name, cname, []


class Field:
    def __init__(self, name, base, array, vers, nullv, tag, default, lineno):
        self.name, self.base, self.array = name, base, array
        self.vers, self.nullv, self.tag, self.default = vers, nullv, tag, default
        self.lineno, self.struct = lineno, None

    @property
    def is_struct(self):
        return self.struct is not None


class Api:
    def __init__(self, key, name, vmin, vmax, flex):
        self.key, self.name, self.snake = key, name, snake(name)
        self.vmin, self.vmax, self.flex = vmin, vmax, flex  # flex: first flexible or None
        self.msgs = {}  # 'req'/'resp' -> top Struct
        self.structs = {}  # 'req'/'resp' -> [Struct] in definition order (children first)


def parse_field(api, words, lineno):
    name, typ, rest = words[0], words[1], words[2:]
    vers, nullv, tag, default = (0, INF), None, None, None
    i = 0
    while i < len(rest):
        w = rest[i]
        if w == 'null':
            nullv = parse_vers(rest[i + 1], lineno); i += 2
        elif w == 'tag':
            tag = int(rest[i + 1]); i += 2
        elif w == 'default':
            default = rest[i + 1]; i += 2
        else:
            vers = parse_vers(w, lineno); i += 1
    array = None
    if typ.startswith('[]?'):
        array, typ = 'nullable', typ[3:]
    elif typ.startswith('[]'):
        array, typ = 'plain', typ[2:]
    if typ in ('nstring', 'nbytes', 'records') or array == 'nullable':
        nullv = nullv or vers
    if not (typ in FIXED or typ in VARLEN or re.fullmatch(r'[A-Z]\w*', typ)):
        die('unknown type %r' % typ, lineno)
    lo, hi = max(vers[0], api.vmin), min(vers[1], api.vmax)
    if lo > hi:
        die('field %s exists in no version of %s' % (name, api.name), lineno)
    if tag is not None and (api.flex is None or lo < api.flex):
        die('tagged field %s outside flexible versions' % name, lineno)
    return Field(name, typ, array, (lo, hi), nullv, tag, default, lineno)


def parse(path):
    apis, api, stack, kind = [], None, None, None
    for lineno, raw in enumerate(open(path), 1):
        line = raw.split('#', 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(' '))
        words = line.split()
        if indent == 0 and words[0] == 'api':
            m = re.fullmatch(r'api (\d+) (\w+) versions (\d+)-(\d+)(?: flexible (\d+)\+)?',
                             ' '.join(words))
            if not m:
                die('bad api line', lineno)
            flex = int(m.group(5)) if m.group(5) else None
            api = Api(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), flex)
            apis.append(api)
        elif indent == 0 and words[0] in ('request', 'response') and api:
            kind = 'req' if words[0] == 'request' else 'resp'
            top = Struct(None, 'kafka_%s_%s' % (api.snake, kind))
            api.msgs[kind], api.structs[kind] = top, []
            stack = [(0, top)]
        elif indent > 0 and stack:
            if indent % 2:
                die('indent must be a multiple of 2', lineno)
            depth = indent // 2
            if depth > len(stack):
                die('unexpected indent', lineno)
            del stack[depth:]
            parent = stack[-1][1]
            f = parse_field(api, words, lineno)
            if any(g.name == f.name for g in parent.fields):
                die('duplicate field %s' % f.name, lineno)
            parent.fields.append(f)
            if f.base not in FIXED and f.base not in VARLEN:
                cname = 'kafka_%s_%s_%s' % (api.snake, kind, snake(f.base))
                known = [s for s in api.structs[kind] if s.name == f.base]
                f.struct = known[0] if known else Struct(f.base, cname)
                if not known:
                    api.structs[kind].append(f.struct)
                    stack.append((depth + 1, f.struct))
        else:
            die('cannot parse %r' % line.strip(), lineno)
    for a in apis:
        for kind in ('req', 'resp'):
            if kind not in a.msgs:
                die('api %s lacks a %s' % (a.name, kind))
            order = []
            collect(a.msgs[kind], order)
            a.structs[kind] = order
    return sorted(apis, key=lambda x: x.key)


def collect(s, order):
    """Post-order list of the structs below s (children before parents)."""
    for f in s.fields:
        if f.is_struct and f.struct not in order:
            collect(f.struct, order)
    if s not in order:
        order.append(s)


# ---- C expressions ----

def vcond(api, rng):
    """C condition for 'v in rng', simplified against the API's range; None = always."""
    lo, hi = rng
    conds = []
    if lo > api.vmin:
        conds.append('v >= %d' % lo)
    if hi < api.vmax:
        conds.append('v <= %d' % hi)
    if lo == hi and lo > api.vmin and hi < api.vmax:
        conds = ['v == %d' % lo]
    return ' && '.join(conds) or None


def nullexpr(api, f):
    if f.nullv is None:
        return '0'
    lo, hi = max(f.nullv[0], f.vers[0]), min(f.nullv[1], f.vers[1])
    if lo > hi:
        return '0'
    return '(%s)' % vcond(api, (lo, hi)) if vcond(api, (lo, hi)) else '1'


def min_size(api, f, flex):
    """Fewest bytes a value of field f takes on the wire (flex = compact encodings)."""
    if f.array:
        return 1 if flex else 4
    if f.base in FIXED:
        return FIXED[f.base][1]
    if f.base in VARLEN:
        return 1 if flex else (2 if 'string' in f.base else 4)
    return struct_min(api, f.struct)


def struct_min(api, s):
    best = None
    for v in range(api.vmin, api.vmax + 1):
        flex = api.flex is not None and v >= api.flex
        n = 1 if flex else 0
        for f in s.fields:
            if f.tag is None and f.vers[0] <= v <= f.vers[1]:
                n += min_size(api, f, flex)
        best = n if best is None else min(best, n)
    return best


def elem_min(api, f):
    """Fewest bytes one element of array f takes (either encoding): bounds its count."""
    e = Field(f.name, f.base, None, f.vers, None, None, None, f.lineno)
    e.struct = f.struct
    return max(1, min(min_size(api, e, fl) for fl in (False, True)))


def ctype(f):
    if f.is_struct:
        return f.struct.cname + '_t'
    return FIXED[f.base][0] if f.base in FIXED else VARLEN[f.base]


def default_stmts(f, acc):
    """Statements giving field f its default value."""
    d = f.default
    if f.array:
        return ['%s = NULL;' % acc, '%s_n = %s;' % (acc, '-1' if d == 'null' else '0')]
    if f.is_struct:
        return ['%s_init(&%s);' % (f.struct.cname, acc)]
    if f.base in VARLEN:
        t = VARLEN[f.base]
        if d == 'null':
            return ['%s = (%s){ NULL, -1 };' % (acc, t)]
        return ['%s = (%s){ %s, 0 };' % (acc, t, '""' if t == 'kstr_t' else 'NULL')]
    if f.base == 'uuid':
        return ['memset(&%s, 0, sizeof %s);' % (acc, acc)]
    return ['%s = %s;' % (acc, cdefault(f))]


def cdefault(f):
    d = f.default or ('false' if f.base == 'bool' else '0')
    if d == '-2147483648':
        return 'INT32_MIN'
    return d


def isdef_expr(f, acc):
    """C expression: field f holds its default (a tagged field is then omitted)."""
    if f.array:
        return '%s_n %s' % (acc, '< 0' if f.default == 'null' else '== 0')
    if f.is_struct:
        return 'isdef_%s(&%s)' % (f.struct.cname, acc)
    if f.base in VARLEN:
        return '%s.len %s' % (acc, '< 0' if f.default == 'null' else '== 0')
    if f.base == 'uuid':
        return 'kcodec_uuid_is_zero(&%s)' % acc
    return '%s == %s' % (acc, cdefault(f))


# ---- decoders / encoders of one value ----

def dec_value(api, f, r, acc, nullable):
    if f.is_struct:
        return ['dec_%s(%s, v, a, &%s);' % (f.struct.cname, r, acc)]
    if f.base == 'bool':
        return ['%s = rbuf_u8(%s) != 0;' % (acc, r)]
    if f.base == 'uuid':
        return ['kcodec_read_uuid(%s, &%s);' % (r, acc)]
    if f.base in RD:
        return ['%s = %s(%s);' % (acc, RD[f.base], r)]
    fn = 'kcodec_read_str' if VARLEN[f.base] == 'kstr_t' else 'kcodec_read_bytes'
    return ['%s(%s, flex, %s, &%s);' % (fn, r, nullable, acc)]


def enc_value(api, f, w, acc):
    if f.is_struct:
        return ['enc_%s(%s, v, &%s);' % (f.struct.cname, w, acc)]
    if f.base == 'bool':
        return ['wbuf_u8(%s, %s ? 1 : 0);' % (w, acc)]
    if f.base == 'uuid':
        return ['wbuf_put(%s, %s.b, 16);' % (w, acc)]
    if f.base in WR:
        return ['%s(%s, %s);' % (WR[f.base], w, acc)]
    fn = 'kcodec_write_str' if VARLEN[f.base] == 'kstr_t' else 'kcodec_write_bytes'
    return ['%s(%s, flex, %s);' % (fn, w, acc)]


def dec_field(api, f, r):
    acc = 'o->' + f.name
    if not f.array:
        return dec_value(api, f, r, acc, nullexpr(api, f))
    return ['{',
            '    int32_t n = kcodec_read_count(%s, flex, %s, %d);' % (r, nullexpr(api, f), elem_min(api, f)),
            '    %s_n = n;' % acc,
            '    if (n > 0) {',
            '        %s = arena_calloc(a, (size_t)n, sizeof *%s);' % (acc, acc),
            '        if (!%s) rbuf_fail(%s, HE_TOO_LARGE);' % (acc, r),
            '        for (int32_t i = 0; i < n && !%s->err; i++)' % r,
            '            ' + dec_value(api, f, r, acc + '[i]', '0')[0],
            '    }',
            '}']


def enc_field(api, f, w):
    acc = 'o->' + f.name
    if not f.array:
        return enc_value(api, f, w, acc)
    return ['kcodec_write_count(%s, flex, %s_n);' % (w, acc),
            'for (int32_t i = 0; i < %s_n; i++)' % acc,
            '    ' + enc_value(api, f, w, acc + '[i]')[0]]


def guarded(api, f, lines):
    c = vcond(api, f.vers)
    if not c:
        return lines
    if len(lines) == 1:
        return ['if (%s)' % c, '    ' + lines[0]]
    if lines[0] == '{' and lines[-1] == '}':
        lines = [x[4:] for x in lines[1:-1]]
    return ['if (%s) {' % c] + ['    ' + x for x in lines] + ['}']


def flex_decl(api):
    if api.flex is None:
        return 'const int flex = 0;'
    if api.flex <= api.vmin:
        return 'const int flex = 1;'
    return 'const int flex = v >= %d;' % api.flex


def gen_struct(api, s, out):
    t = s.cname + '_t'
    plain = [f for f in s.fields if f.tag is None]
    tagged = sorted((f for f in s.fields if f.tag is not None), key=lambda f: f.tag)
    # init
    out.append('void %s_init(%s *o)\n{' % (s.cname, t))
    out.append('    memset(o, 0, sizeof *o);')
    for f in s.fields:
        for st in default_stmts(f, 'o->' + f.name):
            if not (st.endswith('= 0;') or st.endswith('= NULL;') or st.startswith('memset')
                    or st.endswith('= false;') or st.endswith('{ NULL, 0 };')):
                out.append('    ' + st)
    out.append('}\n')
    if s.is_default_needed:
        conds = ['(%s)' % isdef_expr(f, 'o->' + f.name) for f in s.fields]
        out.append('static int isdef_%s(const %s *o)\n{' % (s.cname, t))
        out.append('    return %s;\n}\n' % ('\n        && '.join(conds) or '1'))
    # decoder
    body = ['%s_init(o);' % s.cname]
    for f in plain:
        body += guarded(api, f, dec_field(api, f, 'r'))
    if tagged:
        body += ['if (flex) {',
                 '    uint32_t nt = kcodec_read_tag_count(r);',
                 '    for (uint32_t ti = 0; ti < nt && !r->err; ti++) {',
                 '        rbuf_t t;',
                 '        switch (kcodec_read_tag(r, &t)) {']
        for f in tagged:
            inner = guarded(api, f, dec_field(api, f, '(&t)'))
            body += ['        case %d:' % f.tag] + ['            ' + x for x in inner] + ['            break;']
        body += ['        default:', '            break;', '        }',
                 '        kcodec_tag_done(r, &t);', '    }', '}']
    else:
        body += ['if (flex)', '    kcodec_skip_tags(r);']
    out.append('static void dec_%s(rbuf_t *r, int16_t v, arena_t *a, %s *o)\n{' % (s.cname, t))
    out.append('    %s\n    (void)v;\n    (void)a;' % flex_decl(api))
    out += ['    ' + x for x in body]
    out.append('}\n')
    # encoder
    body = []
    for f in plain:
        body += guarded(api, f, enc_field(api, f, 'w'))
    if tagged:
        present = lambda f: ' && '.join(filter(None, [vcond(api, f.vers), '!(%s)' % isdef_expr(f, 'o->' + f.name)]))
        body += ['if (flex) {', '    uint32_t nt = 0;']
        body += ['    if (%s)\n        nt++;' % present(f) for f in tagged]
        body += ['    wbuf_uvarint(w, nt);']
        for f in tagged:
            body += ['    if (%s) {' % present(f), '        wbuf_t t;', '        wbuf_init(&t);']
            body += ['        ' + x for x in enc_field(api, f, '&t')]
            body += ['        kcodec_write_tag(w, %d, &t);' % f.tag, '    }']
        body += ['}']
    else:
        body += ['if (flex)', '    wbuf_u8(w, 0);']
    out.append('static void enc_%s(wbuf_t *w, int16_t v, const %s *o)\n{' % (s.cname, t))
    out.append('    %s\n    (void)v;' % flex_decl(api))
    out += ['    ' + x for x in body]
    out.append('}\n')


def gen_public(api, kind, out):
    s = api.msgs[kind]
    t = s.cname + '_t'
    out.append('int %s_decode(rbuf_t *r, int16_t version, arena_t *a, %s *out)\n{' % (s.cname, t))
    out.append('    if (version < %d || version > %d)\n        return HE_UNSUPPORTED;' % (api.vmin, api.vmax))
    out.append('    dec_%s(r, version, a, out);\n    return r->err;\n}\n' % s.cname)
    out.append('void %s_encode(wbuf_t *w, int16_t version, const %s *in)\n{' % (s.cname, t))
    out.append('    assert(version >= %d && version <= %d);' % (api.vmin, api.vmax))
    out.append('    enc_%s(w, version, in);\n}\n' % s.cname)


def vtext(api, rng):
    lo, hi = rng
    if (lo, hi) == (api.vmin, api.vmax):
        return ''
    return ' v%d+' % lo if hi == api.vmax else ' v%d-%d' % (lo, hi)


def gen_typedef(api, s, out):
    out.append('struct %s {' % s.cname)
    for f in s.fields:
        note = vtext(api, f.vers)
        if f.nullv:
            nv = (max(f.nullv[0], f.vers[0]), min(f.nullv[1], f.vers[1]))
            note += ' nullable' + (vtext(api, nv) if nv != f.vers else '')
        if f.tag is not None:
            note += ' tag %d' % f.tag
        if f.default is not None:
            note += ' default %s' % f.default
        note = '  /*%s */' % note if note else ''
        if f.array:
            out.append('    %s *%s;%s' % (ctype(f), f.name, note))
            out.append('    int32_t %s_n; /* elements, -1 = null */' % f.name)
        else:
            out.append('    %s %s;%s' % (ctype(f), f.name, note))
    if not s.fields:
        out.append('    char unused_; /* no fields in any version */')
    out.append('};\n')


HEADER_DOC = '''/* generated by tools/kafka_gen.py from src/kafka/schema.kafka, do not edit.
 *
 * Naming: API Foo (snake foo) has a request kafka_foo_req_t and a response
 * kafka_foo_resp_t; a nested struct Bar of the schema becomes
 * kafka_foo_req_bar_t / kafka_foo_resp_bar_t; fields are snake_case as in the
 * schema. An array field x is two members: `T *x; int32_t x_n;` (x_n = -1 for a
 * null array). Strings and bytes are kstr_t/kbytes_t views (len -1 = null) into
 * the decoded buffer, which must outlive the struct. Fields absent in the
 * decoded version hold their default.
 *
 * For every API:
 *   int  kafka_foo_req_decode(rbuf_t *r, int16_t version, arena_t *a, kafka_foo_req_t *out);
 *   void kafka_foo_req_encode(wbuf_t *w, int16_t version, const kafka_foo_req_t *in);
 *   (and the same for _resp), bodies only, see kcodec.h for the headers.
 *   decode returns 0, HE_UNSUPPORTED for a version outside the schema's range,
 *   or the reader's error (HE_TRUNCATED, HE_MALFORMED); arrays come from `a`.
 *   Trailing bytes after the body are left in `r` for the caller to judge.
 *   encode asserts the version is in range; the writer never fails.
 * Every struct T has void T_init(T *o) giving each field its default. Call it
 * before filling a struct to encode: tagged fields are sent only when they
 * differ from their default, and zero is not every field's default.
 */'''


def generate(apis, hpath, cpath):
    for a in apis:
        for kind in ('req', 'resp'):
            for s in a.structs[kind]:
                s.is_default_needed = False
        for kind in ('req', 'resp'):
            for s in a.structs[kind]:
                for f in s.fields:
                    if f.is_struct and not f.array:
                        f.struct.is_default_needed = True
    h = [HEADER_DOC, '#ifndef HERALD_KAFKA_MSGS_H', '#define HERALD_KAFKA_MSGS_H', '',
         '#include "kafka/kcodec.h"', '', 'enum {']
    h += ['    KAFKA_API_%s = %d,' % (a.snake.upper(), a.key) for a in apis]
    h += ['};', '', '#define KAFKA_API_COUNT %d' % len(apis),
          '/* Every API of the schema, by ascending key. */',
          'extern const kafka_api_info_t kafka_api_table[KAFKA_API_COUNT];', '']
    c = ['/* generated by tools/kafka_gen.py from src/kafka/schema.kafka, do not edit. */',
         '#include "kafka/kafka_msgs.h"', '', '#include <assert.h>', '#include <string.h>', '']
    for a in apis:
        flex = 'flexible v%d+' % a.flex if a.flex is not None else 'never flexible'
        h.append('/* ---- %s (key %d), versions %d-%d, %s ---- */\n' % (a.name, a.key, a.vmin, a.vmax, flex))
        c.append('/* ---- %s (key %d) ---- */\n' % (a.name, a.key))
        for kind in ('req', 'resp'):
            for s in a.structs[kind]:
                h.append('typedef struct %s %s_t;' % (s.cname, s.cname))
            h.append('')
            for s in a.structs[kind]:
                gen_typedef(a, s, h)
            for s in a.structs[kind]:
                h.append('void %s_init(%s_t *o);' % (s.cname, s.cname))
            top = a.msgs[kind].cname
            h.append('int %s_decode(rbuf_t *r, int16_t version, arena_t *a, %s_t *out);' % (top, top))
            h.append('void %s_encode(wbuf_t *w, int16_t version, const %s_t *in);\n' % (top, top))
            for s in a.structs[kind]:
                gen_struct(a, s, c)
            gen_public(a, kind, c)
    h += ['#endif', '']
    c.append('const kafka_api_info_t kafka_api_table[KAFKA_API_COUNT] = {')
    c += ['    { %d, "%s", %d, %d, %d },' % (a.key, a.name, a.vmin, a.vmax, -1 if a.flex is None else a.flex)
          for a in apis]
    c += ['};', '', 'const kafka_api_info_t *kafka_api_lookup(int16_t key)', '{',
          '    for (size_t i = 0; i < KAFKA_API_COUNT; i++)',
          '        if (kafka_api_table[i].key == key)',
          '            return &kafka_api_table[i];',
          '    return NULL;', '}', '']
    open(hpath, 'w').write('\n'.join(h))
    open(cpath, 'w').write('\n'.join(c))


# ---- test support: sample values for every message (kafka_sample.{h,c}) ----

SAMPLE_H = """/* generated by tools/kafka_gen.py, do not edit. Test support only: linked
 * by unit tests, never by the broker. For every API, sample[0/1] fills a
 * request/response of a given version with pseudo-random values derived from
 * seed (arrays of 0-2 elements, some nulls where nullable); decode/encode are
 * the codec functions behind void pointers. Index 0 = request, 1 = response. */
#ifndef HERALD_KAFKA_SAMPLE_H
#define HERALD_KAFKA_SAMPLE_H

#include "kafka/kafka_msgs.h"

typedef struct {
    int16_t key;
    size_t size[2];
    void (*sample[2])(arena_t *a, int16_t version, uint32_t seed, void *out);
    int (*decode[2])(rbuf_t *r, int16_t version, arena_t *a, void *out);
    void (*encode[2])(wbuf_t *w, int16_t version, const void *in);
} kafka_sample_ops_t;

extern const kafka_sample_ops_t kafka_sample_ops[KAFKA_API_COUNT];

#endif
"""

SAMPLE_HELPERS = """static inline uint32_t ks_next(uint32_t *s)
{
    return (*s = *s * 1103515245u + 12345u) >> 8;
}

/* n pseudo-random bytes (letters if text) from the arena, or NULL if null */
static inline void *ks_data(arena_t *a, uint32_t *s, int nullable, uint32_t max, int text, int32_t *n)
{
    uint32_t x = ks_next(s);
    *n = nullable && x % 4 == 0 ? -1 : (int32_t)(x % max);
    uint8_t *p = *n < 0 ? NULL : arena_alloc(a, (size_t)*n + 1);
    for (int32_t i = 0; i < *n; i++)
        p[i] = text ? (uint8_t)('a' + (x + (uint32_t)i) % 26) : (uint8_t)(x >> (i % 24));
    return p;
}

static inline kstr_t ks_str(arena_t *a, uint32_t *s, int nullable)
{
    kstr_t k;
    k.p = ks_data(a, s, nullable, 9, 1, &k.len);
    return k;
}

static inline kbytes_t ks_bytes(arena_t *a, uint32_t *s, int nullable)
{
    kbytes_t k;
    k.p = ks_data(a, s, nullable, 33, 0, &k.len);
    return k;
}

static inline int32_t ks_count(uint32_t *s, int nullable)
{
    uint32_t x = ks_next(s);
    return nullable && x % 5 == 0 ? -1 : (int32_t)(x % 3);
}

static inline void ks_uuid(uint32_t *s, kuuid_t *u)
{
    for (int i = 0; i < 16; i++)
        u->b[i] = (uint8_t)ks_next(s);
}
"""


def fill_value(f, acc, nullable):
    if f.is_struct:
        return 'fill_%s(a, v, s, &%s);' % (f.struct.cname, acc)
    if f.base == 'bool':
        return '%s = ks_next(s) & 1;' % acc
    if f.base == 'float64':
        return '%s = ks_next(s) + 0.5;' % acc
    if f.base == 'uuid':
        return 'ks_uuid(s, &%s);' % acc
    if f.base in FIXED:
        return '%s = (%s)ks_next(s);' % (acc, FIXED[f.base][0])
    fn = 'ks_str' if VARLEN[f.base] == 'kstr_t' else 'ks_bytes'
    return '%s = %s(a, s, %s);' % (acc, fn, nullable)


def gen_fill(api, s, out):
    out.append('static void fill_%s(arena_t *a, int16_t v, uint32_t *s, %s_t *o)\n{' % (s.cname, s.cname))
    out.append('    (void)a;\n    (void)v;\n    (void)s;\n    %s_init(o);' % s.cname)
    for f in s.fields:
        acc = 'o->' + f.name
        if not f.array:
            lines = [fill_value(f, acc, nullexpr(api, f))]
        else:
            lines = ['%s_n = ks_count(s, %s);' % (acc, nullexpr(api, f)),
                     'if (%s_n > 0)' % acc,
                     '    %s = arena_calloc(a, (size_t)%s_n, sizeof *%s);' % (acc, acc, acc),
                     'for (int32_t i = 0; i < %s_n; i++)' % acc,
                     '    ' + fill_value(f, acc + '[i]', '0')]
        out += ['    ' + x for x in guarded(api, f, lines)]
    out.append('}\n')


def generate_sample(apis, hpath, cpath):
    c = ['/* generated by tools/kafka_gen.py, do not edit. See kafka_sample.h. */',
         '#include "kafka/kafka_sample.h"', '', SAMPLE_HELPERS]
    for a in apis:
        for kind in ('req', 'resp'):
            for s in a.structs[kind]:
                gen_fill(a, s, c)
            n = a.msgs[kind].cname
            c.append('static void sample_%s(arena_t *a, int16_t v, uint32_t seed, void *out)\n{' % n)
            c.append('    fill_%s(a, v, &seed, out);\n}\n' % n)
            c.append('static int decode_%s(rbuf_t *r, int16_t v, arena_t *a, void *out)\n{' % n)
            c.append('    return %s_decode(r, v, a, out);\n}\n' % n)
            c.append('static void encode_%s(wbuf_t *w, int16_t v, const void *in)\n{' % n)
            c.append('    %s_encode(w, v, in);\n}\n' % n)
    c.append('const kafka_sample_ops_t kafka_sample_ops[KAFKA_API_COUNT] = {')
    for a in apis:
        rq, rs = a.msgs['req'].cname, a.msgs['resp'].cname
        c.append('    { %d, { sizeof(%s_t), sizeof(%s_t) },' % (a.key, rq, rs))
        for fn in ('sample', 'decode', 'encode'):
            c.append('      { %s_%s, %s_%s },' % (fn, rq, fn, rs))
        c.append('    },')
    c += ['};', '']
    open(hpath, 'w').write(SAMPLE_H)
    open(cpath, 'w').write('\n'.join(c))


if __name__ == '__main__':
    if len(sys.argv) != 6:
        die('usage: kafka_gen.py SCHEMA MSGS.h MSGS.c SAMPLE.h SAMPLE.c')
    apis = parse(sys.argv[1])
    generate(apis, sys.argv[2], sys.argv[3])
    generate_sample(apis, sys.argv[4], sys.argv[5])
