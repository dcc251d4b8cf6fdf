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
    const char *s;
    size_t n, i;
    int depth;
    const char *constraint;
    const char *message;
    buf_t tmp;
    const char *str; /* last string parsed */
    size_t str_len;
} jparser;

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
 * Parses a string at p->i (which is '"'). Without escapes the result is the
 * source slice [p->str, p->str + p->str_len); otherwise it is built in p->tmp
 * and p->str points there.
 */
static bool jstring(jparser *p) {
    p->i++;
    size_t start = p->i;
    bool escaped = false;
    p->tmp.len = 0;
    for (;;) {
        /* A run of plain bytes, validating UTF-8. */
        const unsigned char *u = (const unsigned char *)p->s;
        size_t i = p->i, n = p->n, run = i;
        while (i < n) {
            unsigned char d = u[i];
            if (d < 0x80) {
                if (d == '"' || d == '\\' || d < 0x20) break;
                i++;
                continue;
            }
            int l = utf8_valid_seq(u + i, n - i);
            if (l == 0) {
                p->i = i;
                jfail(p, "syntax", "invalid UTF-8");
                return false;
            }
            i += (size_t)l;
        }
        p->i = i;
        if (escaped) buf_put(&p->tmp, p->s + run, i - run);
        if (p->i >= p->n) {
            jfail(p, "syntax", "unterminated string");
            return false;
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            if (escaped) {
                p->str = p->tmp.p;
                p->str_len = p->tmp.len;
            } else {
                p->str = p->s + start;
                p->str_len = p->i - start;
            }
            p->i++;
            return true;
        }
        if (c < 0x20) {
            jfail(p, "syntax", "control character in string");
            return false;
        }
        /* A backslash escape. */
        if (!escaped) {
            buf_put(&p->tmp, p->s + start, p->i - start);
            escaped = true;
        }
        p->i++;
        if (p->i >= p->n) {
            jfail(p, "syntax", "unterminated string");
            return false;
        }
        char e = p->s[p->i++];
        switch (e) {
        case '"': buf_putc(&p->tmp, '"'); break;
        case '\\': buf_putc(&p->tmp, '\\'); break;
        case '/': buf_putc(&p->tmp, '/'); break;
        case 'b': buf_putc(&p->tmp, '\b'); break;
        case 'f': buf_putc(&p->tmp, '\f'); break;
        case 'n': buf_putc(&p->tmp, '\n'); break;
        case 'r': buf_putc(&p->tmp, '\r'); break;
        case 't': buf_putc(&p->tmp, '\t'); break;
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
            buf_pututf8(&p->tmp, cp);
            break;
        }
        default: jfail(p, "syntax", "bad escape in string"); return false;
        }
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

static int member_cmp(const void *a, const void *b) {
    const jmember *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return (x->klen > y->klen) - (x->klen < y->klen);
}

static bool jcheck_unique(jparser *p, jval *o) {
    if (o->n < 2) {
        return true;
    }
    /* Sorting is the canonical order anyway; duplicates end up adjacent. */
    qsort(o->u.o, o->n, sizeof(jmember), member_cmp);
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
            char *key = arena_strndup(p->str, p->str_len);
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
        return jstr(p->str, p->str_len);
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

json_parse_result json_parse(const char *s, size_t n) {
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
    free(p.tmp.p);
    r.value = p.message == NULL ? v : NULL;
    r.constraint = p.constraint;
    r.message = p.message;
    return r;
}

/* ---- canonical writer ------------------------------------------------- */

void json_write_string(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, n + 2);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && u[i] >= 0x20 && u[i] != '"' && u[i] != '\\') i++;
    if (i == n) {
        /* Fast path: nothing to escape. */
        char *d = b->p + b->len;
        d[0] = '"';
        if (n) memcpy(d + 1, s, n);
        d[n + 1] = '"';
        b->len += n + 2;
        return;
    }
    b->p[b->len++] = '"';
    size_t run = 0;
    for (; i < n; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_put(b, s + run, i - run);
        run = i + 1;
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
            if (k < v->n) qsort(v->u.o, v->n, sizeof(jmember), member_cmp);
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
