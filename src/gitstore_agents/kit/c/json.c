/* JSON tree, bounded parser and canonical writer. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* ---- construction ----------------------------------------------------- */

static jval *jnew(jtype_t t) {
    jval *v = arena_alloc(sizeof *v);
    memset(v, 0, sizeof *v);
    v->t = t;
    return v;
}

jval *jnull(void) { return jnew(J_NULL); }
jval *jbool(bool b) { return jnew(b ? J_TRUE : J_FALSE); }

jval *jint(int64_t x) {
    jval *v = jnew(J_INT);
    v->i = x;
    return v;
}

jval *jstr(const char *s, size_t n) {
    jval *v = jnew(J_STR);
    v->u.s = arena_strndup(s, n);
    v->n = n;
    return v;
}

jval *jstr_ref(const char *s, size_t n) {
    jval *v = jnew(J_STR);
    v->u.s = s;
    v->n = n;
    return v;
}

jval *jstrz(const char *s) { return jstr(s, strlen(s)); }

jval *jlit(const char *s) {
    jval *v = jnew(J_STR);
    v->u.s = s;
    v->n = strlen(s);
    return v;
}
jval *jarr(void) { return jnew(J_ARR); }
jval *jobj(void) { return jnew(J_OBJ); }

/* Arrays grow inside the arena: the old block is abandoned (at most half the space). */
static void *arena_grow(void *old, size_t n, size_t newcap, size_t elem) {
    void *p = arena_alloc(newcap * elem);
    if (n) memcpy(p, old, n * elem);
    return p;
}

void jarr_push(jval *a, jval *v) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        a->u.a = arena_grow(a->u.a, a->n, cap, sizeof(jval *));
        a->cap = cap;
    }
    a->u.a[a->n++] = v;
}

void jobj_putn(jval *o, const char *key, size_t klen, jval *v) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4;
        o->u.o = arena_grow(o->u.o, o->n, cap, sizeof(jmember));
        o->cap = cap;
    }
    o->u.o[o->n].key = key;
    o->u.o[o->n].klen = klen;
    o->u.o[o->n].val = v;
    o->n++;
}

void jobj_put(jval *o, const char *key, jval *v) { jobj_putn(o, key, strlen(key), v); }

jval *jobj_get(const jval *o, const char *key) {
    if (o == NULL || o->t != J_OBJ) {
        return NULL;
    }
    size_t kl = strlen(key);
    for (size_t i = 0; i < o->n; i++) {
        if (o->u.o[i].klen == kl && memcmp(o->u.o[i].key, key, kl) == 0) {
            return o->u.o[i].val;
        }
    }
    return NULL;
}

bool jstr_eq(const jval *v, const char *s) {
    size_t n = strlen(s);
    return v != NULL && v->t == J_STR && v->n == n && memcmp(v->u.s, s, n) == 0;
}

/* ---- parser ----------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, i;
    int depth;
    const char *constraint;
    const char *message;
    const char *str; /* last string parsed */
    size_t str_len;
} jparser;

/* Bit 1: '"', '\\' or a control character (escaped when written); bit 2: not ASCII. */
static const uint8_t STOP[256] = {
    [0 ... 0x1F] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xFF] = 2,
};

/*
 * First index at or after i of a byte that ends a run of plain string
 * characters: '"', '\\', a control character, or (stop_high) a non-ASCII
 * byte. Eight bytes at a time: one fuel unit per instruction makes the
 * byte loop the costliest part of reading and writing JSON.
 */

static size_t plain_run(const char *s, size_t i, size_t n, bool stop_high) {
    uint64_t high = stop_high ? WORD_HIGHS : 0;
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if ((WORD_HAS_BELOW(w, 0x20) | WORD_HAS(w, '"') | WORD_HAS(w, '\\') | (w & high)) != 0) break;
        i += 8;
    }
    const unsigned char *u = (const unsigned char *)s;
    uint8_t mask = stop_high ? 3 : 1;
    while (i < n && !(STOP[u[i]] & mask)) i++;
    return i;
}

size_t json_plain_run(const char *s, size_t i, size_t n) { return plain_run(s, i, n, false); }

static void jfail(jparser *p, const char *constraint, const char *what) {
    if (p->message == NULL) {
        p->constraint = constraint;
        p->message = sfmt("invalid JSON at byte %z: %s", p->i, what);
    }
}

static void jws(jparser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        p->i++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool jhex4(jparser *p, uint32_t *out) {
    if (p->n - p->i < 4) {
        return false;
    }
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0) {
            return false;
        }
        v = v * 16 + (uint32_t)h;
    }
    p->i += 4;
    *out = v;
    return true;
}

/*
 * Parses a string at p->i (which is '"'). The decoded string is
 * [p->str, p->str + p->str_len): the source slice when there are no
 * escapes, else decoded in place over the source (decoding never makes a
 * string longer, so the write position stays behind the read position).
 */
static bool jstring(jparser *p) {
    p->i++;
    size_t start = p->i;
    size_t w = SIZE_MAX; /* write position once an escape was seen */
    const unsigned char *u = (const unsigned char *)p->s;
    for (;;) {
        /* A run of plain bytes, validating UTF-8. */
        size_t i = p->i, n = p->n, run = i;
        for (;;) {
            i = plain_run(p->s, i, n, true);
            if (i >= n || u[i] < 0x80) break;
            int l = utf8_valid_seq(u + i, n - i);
            if (l == 0) {
                p->i = i;
                jfail(p, "syntax", "invalid UTF-8");
                return false;
            }
            i += (size_t)l;
        }
        p->i = i;
        if (w != SIZE_MAX && i > run) {
            memmove(p->s + w, p->s + run, i - run);
            w += i - run;
        }
        if (p->i >= p->n) {
            jfail(p, "syntax", "unterminated string");
            return false;
        }
        unsigned char c = u[p->i];
        if (c == '"') {
            p->str = p->s + start;
            p->str_len = (w == SIZE_MAX ? p->i : w) - start;
            p->i++;
            return true;
        }
        if (c < 0x20) {
            jfail(p, "syntax", "control character in string");
            return false;
        }
        /* A backslash escape. */
        if (w == SIZE_MAX) w = p->i;
        p->i++;
        if (p->i >= p->n) {
            jfail(p, "syntax", "unterminated string");
            return false;
        }
        char e = p->s[p->i++];
        char out;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!jhex4(p, &cp)) {
                jfail(p, "syntax", "bad \\u escape");
                return false;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                jfail(p, "syntax", "lone low surrogate escape");
                return false;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    jfail(p, "syntax", "lone high surrogate escape");
                    return false;
                }
                p->i += 2;
                if (!jhex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    jfail(p, "syntax", "bad surrogate pair escape");
                    return false;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* At most 4 bytes from the 6 (or 12) just read. */
            char t[4];
            buf_t tb = {t, 0, sizeof t, NULL};
            buf_pututf8(&tb, cp);
            memcpy(p->s + w, t, tb.len);
            w += tb.len;
            continue;
        }
        default: jfail(p, "syntax", "bad escape in string"); return false;
        }
        p->s[w++] = out;
    }
}

static jval *jvalue(jparser *p);

static jval *jnumber(jparser *p) {
    size_t start = p->i;
    bool integral = true;
    if (p->s[p->i] == '-') {
        p->i++;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
        jfail(p, "syntax", "bad number");
        return NULL;
    }
    if (p->s[p->i] == '0') {
        p->i++;
    } else {
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        integral = false;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            jfail(p, "syntax", "bad number");
            return NULL;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        integral = false;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            jfail(p, "syntax", "bad number");
            return NULL;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (integral) {
        bool neg = p->s[start] == '-';
        uint64_t u = 0;
        bool ok = true;
        for (size_t k = start + (neg ? 1 : 0); k < p->i; k++) {
            unsigned d = (unsigned)(p->s[k] - '0');
            if (u > (UINT64_MAX - d) / 10) {
                ok = false;
                break;
            }
            u = u * 10 + d;
        }
        if (ok && (neg ? u <= (uint64_t)INT64_MAX + 1 : u <= (uint64_t)INT64_MAX)) {
            return jint(neg ? (int64_t)(0 - u) : (int64_t)u);
        }
    }
    jval *v = jnew(J_NUM);
    v->u.s = arena_strndup(p->s + start, p->i - start);
    v->n = p->i - start;
    return v;
}

static int member_cmp(const jmember *x, const jmember *y) {
    return bytes_cmp(x->key, x->klen, y->key, y->klen);
}

/*
 * Members with the first 8 bytes of their key as a big-endian number
 * (zero-padded): unequal prefixes order keys as bytes_cmp does (a shorter
 * key that ends inside the prefix is a prefix of the other), so most
 * comparisons are one integer comparison.
 */
typedef struct {
    uint64_t pre;
    jmember m;
} keyed;

static int keyed_cmp(const keyed *x, const keyed *y) {
    if (x->pre != y->pre) return x->pre < y->pre ? -1 : 1;
    return member_cmp(&x->m, &y->m);
}

/* Merge sort of a[0, n) with scratch t (n / 2 entries). */
static void sort_keyed(keyed *a, keyed *t, size_t n) {
    if (n <= 8) {
        for (size_t i = 1; i < n; i++) {
            keyed m = a[i];
            size_t j = i;
            while (j > 0 && keyed_cmp(&a[j - 1], &m) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = m;
        }
        return;
    }
    size_t h = n / 2;
    sort_keyed(a, t, h);
    sort_keyed(a + h, t, n - h);
    if (keyed_cmp(&a[h - 1], &a[h]) <= 0) return;
    memcpy(t, a, h * sizeof *a);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) a[k++] = keyed_cmp(&a[j], &t[i]) < 0 ? a[j++] : t[i++];
    while (i < h) a[k++] = t[i++];
}

void jobj_sort(jval *o) {
    size_t n = o->n;
    jmember *m = o->u.o;
    if (n <= 8) {
        /* Small objects (nearly all of them): insertion sort in place. */
        for (size_t i = 1; i < n; i++) {
            jmember x = m[i];
            size_t j = i;
            while (j > 0 && member_cmp(&m[j - 1], &x) > 0) {
                m[j] = m[j - 1];
                j--;
            }
            m[j] = x;
        }
        return;
    }
    keyed *a = xmalloc((n + n / 2) * sizeof *a);
    for (size_t k = 0; k < n; k++) {
        uint64_t pre = 0;
        size_t l = m[k].klen < 8 ? m[k].klen : 8;
        for (size_t b = 0; b < 8; b++) pre = pre << 8 | (b < l ? (unsigned char)m[k].key[b] : 0);
        a[k] = (keyed){pre, m[k]};
    }
    sort_keyed(a, a + n, n);
    for (size_t k = 0; k < n; k++) m[k] = a[k].m;
    free(a);
}

static bool jcheck_unique(jparser *p, jval *o) {
    if (o->n < 2) {
        return true;
    }
    /* Sorting is the canonical order anyway; duplicates end up adjacent. */
    jobj_sort(o);
    for (size_t k = 1; k < o->n; k++) {
        if (member_cmp(&o->u.o[k - 1], &o->u.o[k]) == 0) {
            if (p->message == NULL) {
                p->constraint = "syntax";
                p->message = sfmt("invalid JSON: duplicate object key \"%S\"", o->u.o[k].key, o->u.o[k].klen);
            }
            return false;
        }
    }
    return true;
}

static jval *jcontainer(jparser *p, char open) {
    if (++p->depth > JSON_MAX_DEPTH) {
        if (p->message == NULL) {
            p->constraint = "max_depth";
            p->message = sfmt("JSON nesting deeper than %d levels at byte %z", JSON_MAX_DEPTH, p->i);
        }
        return NULL;
    }
    p->i++;
    jval *c = open == '[' ? jarr() : jobj();
    jws(p);
    char close = open == '[' ? ']' : '}';
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        p->depth--;
        return c;
    }
    for (;;) {
        jws(p);
        if (open == '{') {
            if (p->i >= p->n || p->s[p->i] != '"') {
                jfail(p, "syntax", "expected a string key");
                return NULL;
            }
            if (!jstring(p)) {
                return NULL;
            }
            const char *key = p->str;
            size_t klen = p->str_len;
            jws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                jfail(p, "syntax", "expected ':'");
                return NULL;
            }
            p->i++;
            jval *v = jvalue(p);
            if (v == NULL) {
                return NULL;
            }
            jobj_putn(c, key, klen, v);
        } else {
            jval *v = jvalue(p);
            if (v == NULL) {
                return NULL;
            }
            jarr_push(c, v);
        }
        jws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            break;
        }
        jfail(p, "syntax", open == '[' ? "expected ',' or ']'" : "expected ',' or '}'");
        return NULL;
    }
    p->depth--;
    if (open == '{' && !jcheck_unique(p, c)) {
        return NULL;
    }
    return c;
}

static bool jliteral(jparser *p, const char *lit) {
    size_t l = strlen(lit);
    if (p->n - p->i >= l && memcmp(p->s + p->i, lit, l) == 0) {
        p->i += l;
        return true;
    }
    return false;
}

static jval *jvalue(jparser *p) {
    jws(p);
    if (p->i >= p->n) {
        jfail(p, "syntax", "unexpected end of input");
        return NULL;
    }
    char c = p->s[p->i];
    switch (c) {
    case '{':
    case '[': return jcontainer(p, c);
    case '"':
        if (!jstring(p)) return NULL;
        return jstr_ref(p->str, p->str_len);
    case 't':
        if (jliteral(p, "true")) return jbool(true);
        break;
    case 'f':
        if (jliteral(p, "false")) return jbool(false);
        break;
    case 'n':
        if (jliteral(p, "null")) return jnull();
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return jnumber(p);
    }
    jfail(p, "syntax", "unexpected character");
    return NULL;
}

json_parse_result json_parse(char *s, size_t n) {
    jparser p = {.s = s, .n = n};
    json_parse_result r = {0};
    jval *v = NULL;
    if (n == 0) {
        jfail(&p, "syntax", "empty input");
    } else {
        v = jvalue(&p);
        if (v != NULL) {
            jws(&p);
            if (p.i != p.n) {
                jfail(&p, "syntax", "trailing data after the document");
                v = NULL;
            }
        }
    }
    r.value = p.message == NULL ? v : NULL;
    r.constraint = p.constraint;
    r.message = p.message;
    return r;
}

/* ---- canonical writer ------------------------------------------------- */

void json_write_chars(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0;
    for (size_t i = plain_run(s, 0, n, false); i < n; i = plain_run(s, i + 1, n, false)) {
        buf_put(b, s + run, i - run);
        run = i + 1;
        unsigned char c = u[i];
        switch (c) {
        case '"': buf_put(b, "\\\"", 2); break;
        case '\\': buf_put(b, "\\\\", 2); break;
        case '\n': buf_put(b, "\\n", 2); break;
        case '\t': buf_put(b, "\\t", 2); break;
        case '\r': buf_put(b, "\\r", 2); break;
        case '\b': buf_put(b, "\\b", 2); break;
        case '\f': buf_put(b, "\\f", 2); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_put(b, e, 6);
        }
        }
    }
    buf_put(b, s + run, n - run);
}

void json_write_string(buf_t *b, const char *s, size_t n) {
    if (plain_run(s, 0, n, false) == n) {
        /* Fast path: nothing to escape. */
        buf_reserve(b, n + 2);
        char *d = b->p + b->len;
        d[0] = '"';
        if (n) memcpy(d + 1, s, n);
        d[n + 1] = '"';
        b->len += n + 2;
        return;
    }
    buf_putc(b, '"');
    json_write_chars(b, s, n);
    buf_putc(b, '"');
}

bool json_write(buf_t *b, jval *v) {
    switch (v->t) {
    case J_NULL: buf_put(b, "null", 4); return true;
    case J_FALSE: buf_put(b, "false", 5); return true;
    case J_TRUE: buf_put(b, "true", 4); return true;
    case J_INT: buf_putint(b, v->i); return true;
    case J_NUM: return false;
    case J_STR: json_write_string(b, v->u.s, v->n); return true;
    case J_ARR:
        buf_putc(b, '[');
        for (size_t k = 0; k < v->n; k++) {
            if (k) buf_putc(b, ',');
            if (!json_write(b, v->u.a[k])) return false;
        }
        buf_putc(b, ']');
        return true;
    case J_OBJ:
        if (v->n > 1) {
            /* Writers mostly insert keys in order already; sort only when needed. */
            size_t k = 1;
            while (k < v->n && member_cmp(&v->u.o[k - 1], &v->u.o[k]) < 0) k++;
            if (k < v->n) jobj_sort(v);
        }
        buf_putc(b, '{');
        for (size_t k = 0; k < v->n; k++) {
            if (k) buf_putc(b, ',');
            json_write_string(b, v->u.o[k].key, v->u.o[k].klen);
            buf_putc(b, ':');
            if (!json_write(b, v->u.o[k].val)) return false;
        }
        buf_putc(b, '}');
        return true;
    }
    return false;
}

bool json_all_integers(const jval *v, buf_t *path) {
    size_t mark = path->len;
    switch (v->t) {
    case J_NUM: return false;
    case J_ARR:
        for (size_t k = 0; k < v->n; k++) {
            path_index(path, k);
            if (!json_all_integers(v->u.a[k], path)) return false;
            path->len = mark;
        }
        return true;
    case J_OBJ:
        for (size_t k = 0; k < v->n; k++) {
            path_key(path, v->u.o[k].key, v->u.o[k].klen);
            if (!json_all_integers(v->u.o[k].val, path)) return false;
            path->len = mark;
        }
        return true;
    default: return true;
    }
}
