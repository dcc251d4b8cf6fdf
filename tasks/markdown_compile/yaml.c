/*
 * A YAML subset for catalog frontmatter.
 *
 * Supported: block mappings and sequences by indentation (spaces only),
 * `- key: v` items, flow sequences and mappings, plain / single-quoted /
 * double-quoted scalars (multi-line with folding), literal `|` and folded
 * `>` block scalars with chomping and indentation indicators, comments.
 *
 * Plain scalars resolve as in the YAML 1.2 core schema, narrowed to what
 * JSON carries exactly: null (~, null), booleans (true/false in three
 * spellings), decimal integers within +-(2^53-1) without leading zeros.
 * Everything else -- decimals such as 149.90, 0x1F, 1e3, .inf, 007 -- stays
 * a string, so no value is ever rounded through a float.
 *
 * Rejected with constraint `syntax` (field "frontmatter", message naming the
 * line): tabs in indentation, duplicate keys, anchors, aliases, tags,
 * directives, complex keys, and anything else outside the subset.
 */
#include <stdlib.h>
#include <string.h>

#include "mdc.h"

typedef struct {
    const char *s;
    int len;
    int no;  /* file line number */
    int off; /* virtual start column (after "- " of a sequence item) */
} yline;

typedef struct {
    yline *L;
    int nl;
    int i; /* current line */
    int depth;
    bool failed; /* structural error: parsing stopped */
    bool dup;    /* duplicate keys found: parsing went on to report them all */
    /* Errors are reported in line order once parsing ends. */
    struct yerror {
        int line;
        const char *constraint, *message;
    } errs[MAX_ERRORS];
    int nerrs;
} yparser;

static void yrecord(yparser *p, int line, const char *constraint, char *msg) {
    if (p->nerrs < MAX_ERRORS) {
        p->errs[p->nerrs].line = line;
        p->errs[p->nerrs].constraint = constraint;
        p->errs[p->nerrs].message = msg;
        p->nerrs++;
    }
}

static void yerr(yparser *p, int line, const char *constraint, char *msg) {
    if (!p->failed) yrecord(p, line, constraint, msg);
    p->failed = true;
}

static void ysyntax(yparser *p, int line, const char *what) {
    yerr(p, line, "syntax", sfmt("line %d: %s", line, what));
}

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

/* Column of the first character that is not a space, from the virtual start. */
static int first_ns(const yline *l) {
    int c = l->off;
    while (c < l->len && l->s[c] == ' ') c++;
    return c;
}

/* True if the line from column c is empty or a comment. */
static bool rest_blank(const yline *l, int c) {
    while (c < l->len && is_ws(l->s[c])) c++;
    return c >= l->len || l->s[c] == '#';
}

static bool is_empty_line(const yline *l) {
    for (int c = 0; c < l->len; c++) {
        if (!is_ws(l->s[c])) return false;
    }
    return true;
}

/* Moves to the next line that has content; rejects tabs in its indentation. */
static void skip_blank(yparser *p) {
    while (p->i < p->nl) {
        yline *l = &p->L[p->i];
        if (!rest_blank(l, l->off)) {
            int c = first_ns(l);
            if (l->s[c] == '\t') {
                ysyntax(p, l->no, "tab character in indentation (use spaces)");
            }
            return;
        }
        p->i++;
    }
}

static bool is_seq_item(const yline *l, int c) {
    return l->s[c] == '-' && (c + 1 >= l->len || l->s[c + 1] == ' ' || l->s[c + 1] == '\t');
}

/* Finds the ':' ending a quoted key that starts at column c; -1 if none. */
static int quoted_key_end(const yline *l, int c) {
    char q = l->s[c];
    int k = c + 1;
    while (k < l->len) {
        if (q == '"' && l->s[k] == '\\') {
            k += 2;
            continue;
        }
        if (l->s[k] == q) {
            if (q == '\'' && k + 1 < l->len && l->s[k + 1] == '\'') {
                k += 2;
                continue;
            }
            break;
        }
        k++;
    }
    if (k >= l->len) return -1;
    k++;
    while (k < l->len && is_ws(l->s[k])) k++;
    if (k < l->len && l->s[k] == ':' && (k + 1 >= l->len || is_ws(l->s[k + 1]))) return k;
    return -1;
}

/* Finds the ':' of a plain implicit key starting at column c; -1 if none. */
static int plain_key_end(const yline *l, int c) {
    if (strchr("[]{},#&*!|>'\"%@`", l->s[c]) != NULL) return -1;
    for (int k = c; k < l->len; k++) {
        if (l->s[k] == '#' && k > c && is_ws(l->s[k - 1])) return -1;
        if (l->s[k] == ':' && (k + 1 >= l->len || is_ws(l->s[k + 1]))) return k;
    }
    return -1;
}

static int map_key_colon(const yline *l, int c) {
    if (l->s[c] == '"' || l->s[c] == '\'') return quoted_key_end(l, c);
    if (l->s[c] == '?' && (c + 1 >= l->len || is_ws(l->s[c + 1]))) return -1;
    return plain_key_end(l, c);
}

/* ---- a character cursor across lines, for flow and quoted scalars ------ */

typedef struct {
    yparser *p;
    int li, ci;
} ycur;

/* Current character; '\n' at the end of a line, '\0' at the end of the text. */
static char cpeek(const ycur *c) {
    if (c->li >= c->p->nl) return '\0';
    const yline *l = &c->p->L[c->li];
    return c->ci < l->len ? l->s[c->ci] : '\n';
}

static char cpeek2(const ycur *c) {
    if (c->li >= c->p->nl) return '\0';
    const yline *l = &c->p->L[c->li];
    return c->ci + 1 < l->len ? l->s[c->ci + 1] : '\n';
}

static void cnext(ycur *c) {
    if (c->li >= c->p->nl) return;
    if (c->ci < c->p->L[c->li].len) {
        c->ci++;
    } else {
        c->li++;
        c->ci = 0;
    }
}

static int cline(const ycur *c) {
    return c->li < c->p->nl ? c->p->L[c->li].no : c->p->L[c->p->nl - 1].no;
}

/* Skips spaces, line breaks and comments inside flow collections. */
static void cskip(ycur *c) {
    for (;;) {
        if (c->li < c->p->nl) {
            const yline *l = &c->p->L[c->li];
            while (c->ci < l->len && (l->s[c->ci] == ' ' || l->s[c->ci] == '\t')) c->ci++;
        }
        char ch = cpeek(c);
        if (ch == ' ' || ch == '\t' || ch == '\n') {
            cnext(c);
        } else if (ch == '#') {
            c->ci = c->p->L[c->li].len;
        } else {
            return;
        }
    }
}

/* Reads a quoted scalar at the cursor (which is on the quote) into out. */
static bool read_quoted(ycur *c, buf_t *out) {
    yparser *p = c->p;
    char q = cpeek(c);
    int start_line = cline(c);
    size_t keep = 0; /* output before this length is never trimmed */
    out->len = 0;
    buf_reserve(out, 0);
    cnext(c);
    for (;;) {
        /* A run of ordinary characters on the current line, at once. */
        if (c->li < p->nl) {
            const yline *l = &p->L[c->li];
            int k = c->ci;
            while (k < l->len && l->s[k] != q && l->s[k] != '\\') k++;
            if (k > c->ci) {
                buf_put(out, l->s + c->ci, (size_t)(k - c->ci));
                c->ci = k;
            }
        }
        char ch = cpeek(c);
        if (ch == '\0') {
            ysyntax(p, start_line, "unterminated quoted scalar");
            return false;
        }
        if (ch == '\n') {
            /* Folding: drop trailing blanks, count empty lines, drop indentation. */
            while (out->len > keep && is_ws(out->p[out->len - 1])) out->len--;
            cnext(c);
            int empty = 0;
            for (;;) {
                while (is_ws(cpeek(c))) cnext(c);
                if (cpeek(c) == '\n') {
                    empty++;
                    cnext(c);
                    continue;
                }
                break;
            }
            if (cpeek(c) == '\0') {
                ysyntax(p, start_line, "unterminated quoted scalar");
                return false;
            }
            if (empty == 0) {
                buf_putc(out, ' ');
            } else {
                for (int k = 0; k < empty; k++) buf_putc(out, '\n');
            }
            keep = out->len;
            continue;
        }
        if (ch == q) {
            if (q == '\'' && cpeek2(c) == '\'') {
                buf_putc(out, '\'');
                cnext(c);
                cnext(c);
                continue;
            }
            cnext(c);
            return true;
        }
        if (q == '"' && ch == '\\') {
            cnext(c);
            char e = cpeek(c);
            int hexlen = 0;
            switch (e) {
            case '0': buf_putc(out, '\0'); break;
            case 'a': buf_putc(out, '\a'); break;
            case 'b': buf_putc(out, '\b'); break;
            case 't':
            case '\t': buf_putc(out, '\t'); break;
            case 'n': buf_putc(out, '\n'); break;
            case 'v': buf_putc(out, '\v'); break;
            case 'f': buf_putc(out, '\f'); break;
            case 'r': buf_putc(out, '\r'); break;
            case 'e': buf_putc(out, 0x1B); break;
            case ' ': buf_putc(out, ' '); break;
            case '"': buf_putc(out, '"'); break;
            case '/': buf_putc(out, '/'); break;
            case '\\': buf_putc(out, '\\'); break;
            case 'N': buf_pututf8(out, 0x85); break;
            case '_': buf_pututf8(out, 0xA0); break;
            case 'L': buf_pututf8(out, 0x2028); break;
            case 'P': buf_pututf8(out, 0x2029); break;
            case 'x': hexlen = 2; break;
            case 'u': hexlen = 4; break;
            case 'U': hexlen = 8; break;
            case '\n': {
                /* Escaped line break: join lines without a space. */
                cnext(c);
                while (is_ws(cpeek(c))) cnext(c);
                keep = out->len;
                continue;
            }
            default: ysyntax(p, cline(c), "invalid escape in double-quoted scalar"); return false;
            }
            cnext(c);
            if (hexlen) {
                uint32_t cp = 0;
                for (int k = 0; k < hexlen; k++) {
                    char h = cpeek(c);
                    int d = (h >= '0' && h <= '9')   ? h - '0'
                            : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                            : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                     : -1;
                    if (d < 0) {
                        ysyntax(p, cline(c), "invalid hex escape in double-quoted scalar");
                        return false;
                    }
                    cp = cp * 16 + (uint32_t)d;
                    cnext(c);
                }
                if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
                    ysyntax(p, cline(c), "escape is not a Unicode scalar value");
                    return false;
                }
                buf_pututf8(out, cp);
            }
            keep = out->len;
            continue;
        }
        buf_putc(out, ch);
        cnext(c);
    }
}

/* ---- scalars ---------------------------------------------------------- */

static jval *resolve_plain(const char *s, size_t n) {
    if (n == 1 && s[0] == '~') return jnull();
    if ((n == 4) && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4))) return jnull();
    if ((n == 4) && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4))) return jbool(true);
    if ((n == 5) && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))
        return jbool(false);
    size_t k = 0;
    bool neg = false;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        k = 1;
    }
    if (k < n) {
        size_t d0 = k;
        int64_t v = 0;
        bool ok = true;
        for (; k < n; k++) {
            if (s[k] < '0' || s[k] > '9') {
                ok = false;
                break;
            }
            v = v * 10 + (s[k] - '0');
            if (v > MAX_SAFE_INT) {
                ok = false;
                break;
            }
        }
        /* Leading zeros (007, SKU-like codes) stay strings rather than losing digits. */
        if (ok && !(s[d0] == '0' && n - d0 > 1)) return jint(neg ? -v : v);
    }
    return jstr(s, n);
}

/* ---- block structure -------------------------------------------------- */

static jval *parse_node(yparser *p, int parent_ind);
static jval *parse_seq(yparser *p, int ind);

static bool enter(yparser *p, int line) {
    if (++p->depth > YAML_MAX_DEPTH) {
        yerr(p, line, "max_depth", sfmt("line %d: nesting deeper than %d levels", line, YAML_MAX_DEPTH));
        return false;
    }
    return true;
}

/* After a value that ended inside line `li` at column `c`: only a comment may follow. */
static bool expect_line_end(yparser *p, int li, int c) {
    if (li >= p->nl) return true;
    if (!rest_blank(&p->L[li], c)) {
        ysyntax(p, p->L[li].no, "unexpected text after a value");
        return false;
    }
    if (c < p->L[li].len) {
        /* A comment must be separated from the value by white space. */
        int k = c;
        while (k < p->L[li].len && is_ws(p->L[li].s[k])) k++;
        if (k < p->L[li].len && k == c && c > 0) {
            ysyntax(p, p->L[li].no, "a comment needs white space before '#'");
            return false;
        }
    }
    p->i = li + 1;
    return true;
}

typedef struct {
    const char *key;
    size_t klen;
    int line;
} keyline;

static int keyline_cmp(const void *a, const void *b) {
    const keyline *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

static uint32_t key_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < n; k++) h = (h ^ (unsigned char)s[k]) * 16777619u;
    return h;
}

/*
 * Reports every duplicate key of a finished mapping (lines[k] = line of
 * member k), ordered by key bytes and then line: each member whose key an
 * earlier member already has (members are in document order, so the first
 * has the lowest line). A hash table finds them in linear time.
 */
static void check_dups(yparser *p, const jval *obj, const int *lines) {
    size_t n = obj->n;
    if (n < 2) return;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    uint32_t *slot = xmalloc(cap * sizeof *slot);
    memset(slot, 0xFF, cap * sizeof *slot);
    keyline *dups = NULL;
    size_t ndups = 0;
    const jmember *m = obj->u.o;
    for (size_t k = 0; k < n; k++) {
        size_t h = key_hash(m[k].key, m[k].klen) & (cap - 1);
        while (slot[h] != UINT32_MAX &&
               (m[slot[h]].klen != m[k].klen || memcmp(m[slot[h]].key, m[k].key, m[k].klen) != 0)) {
            h = (h + 1) & (cap - 1);
        }
        if (slot[h] == UINT32_MAX) {
            slot[h] = (uint32_t)k;
            continue;
        }
        /* A duplicate: keep it with the line of the key's first member. */
        if (ndups == 0 || (ndups >= 8 && (ndups & (ndups - 1)) == 0)) {
            dups = xrealloc(dups, (ndups ? 2 * ndups : 8) * 2 * sizeof *dups);
        }
        dups[2 * ndups] = (keyline){m[k].key, m[k].klen, lines[k]};
        dups[2 * ndups + 1] = (keyline){m[k].key, m[k].klen, lines[slot[h]]};
        ndups++;
    }
    free(slot);
    /* Pairs (duplicate, first) sorted by the duplicate's key and line. */
    qsort(dups, ndups, 2 * sizeof *dups, keyline_cmp);
    for (size_t a = 0; a < ndups; a++) {
        const keyline *d = &dups[2 * a];
        int first = dups[2 * a + 1].line;
        yrecord(p, d->line, "syntax",
                sfmt("line %d: duplicate key \"%S\" (first on line %d)", d->line, d->key, d->klen, first));
        p->dup = true;
    }
    free(dups);
}

/* Appends line to lines[0, n), growing the array by doubling. */
static int *push_line(int *lines, size_t n, int line) {
    if (n == 0 || (n >= 8 && (n & (n - 1)) == 0)) lines = xrealloc(lines, (n ? 2 * n : 8) * sizeof(int));
    lines[n] = line;
    return lines;
}

static jval *flow_node(yparser *p, ycur *c);

/* Characters that may end a plain scalar or key inside a flow collection. */
static const bool FLOW_STOP[256] = {
    [','] = true, ['['] = true, [']'] = true, ['{'] = true, ['}'] = true, [':'] = true, ['#'] = true,
};

static jval *flow_plain(yparser *p, ycur *c) {
    buf_t b = {0};
    int line = cline(c);
    for (;;) {
        /* A run of characters that cannot end the scalar, at once. */
        if (c->li < p->nl) {
            const yline *l = &p->L[c->li];
            int k = c->ci;
            while (k < l->len && !FLOW_STOP[(unsigned char)l->s[k]]) k++;
            if (k > c->ci) {
                buf_put(&b, l->s + c->ci, (size_t)(k - c->ci));
                c->ci = k;
            }
        }
        char ch = cpeek(c);
        if (ch == '\0' || ch == ',' || ch == '[' || ch == ']' || ch == '{' || ch == '}') break;
        if (ch == ':') {
            char n2 = cpeek2(c);
            if (n2 == ' ' || n2 == '\t' || n2 == '\n' || n2 == ',' || n2 == ']' || n2 == '}' || n2 == '\0') break;
        }
        if (ch == '#' && b.len > 0 && is_ws(b.p[b.len - 1])) break;
        if (ch == '\n') {
            /* Multi-line plain scalar: fold the break into one space. */
            while (b.len > 0 && is_ws(b.p[b.len - 1])) b.len--;
            ycur save = *c;
            cskip(c);
            char nx = cpeek(c);
            if (nx == '\0' || strchr(",[]{}:#", nx) != NULL) {
                *c = save;
                cskip(c);
                break;
            }
            buf_putc(&b, ' ');
            continue;
        }
        buf_putc(&b, ch);
        cnext(c);
    }
    while (b.len > 0 && is_ws(b.p[b.len - 1])) b.len--;
    if (b.len == 0) {
        ysyntax(p, line, "expected a value in flow collection");
        free(b.p);
        return NULL;
    }
    jval *v = resolve_plain(b.p, b.len);
    free(b.p);
    return v;
}

static jval *flow_collection(yparser *p, ycur *c) {
    char open = cpeek(c);
    char close = open == '[' ? ']' : '}';
    int start_line = cline(c);
    if (!enter(p, start_line)) return NULL;
    cnext(c);
    jval *coll = open == '[' ? jarr() : jobj();
    int *lines = NULL;
    for (;;) {
        cskip(c);
        char ch = cpeek(c);
        if (ch == close) {
            cnext(c);
            break;
        }
        if (ch == '\0') {
            ysyntax(p, start_line, open == '[' ? "unterminated flow sequence" : "unterminated flow mapping");
            free(lines);
            return NULL;
        }
        if (open == '[') {
            jval *v = flow_node(p, c);
            if (v == NULL) {
                free(lines);
                return NULL;
            }
            cskip(c);
            if (cpeek(c) == ':') {
                ysyntax(p, cline(c), "mappings inside flow sequences are not supported");
                free(lines);
                return NULL;
            }
            jarr_push(coll, v);
        } else {
            buf_t key = {0};
            int kline = cline(c);
            if (strchr("&*!", ch) != NULL) {
                ysyntax(p, kline, "anchors, aliases and tags are not supported");
                free(lines);
                return NULL;
            }
            if (ch == '[' || ch == '{' || ch == ',') {
                ysyntax(p, kline, "expected a scalar key in flow mapping");
                free(lines);
                return NULL;
            }
            jval *ok;
            if (ch == '"' || ch == '\'') {
                ok = read_quoted(c, &key) ? jnull() : NULL;
            } else {
                /* Plain keys are taken verbatim, without type resolution. */
                ok = jnull();
                for (;;) {
                    if (c->li < p->nl) {
                        const yline *l = &p->L[c->li];
                        int k = c->ci;
                        while (k < l->len && !FLOW_STOP[(unsigned char)l->s[k]]) k++;
                        if (k > c->ci) {
                            buf_put(&key, l->s + c->ci, (size_t)(k - c->ci));
                            c->ci = k;
                        }
                    }
                    char k2 = cpeek(c);
                    if (k2 == '\0' || k2 == '\n' || k2 == ',' || k2 == '}' || k2 == '[' || k2 == ']' ||
                        k2 == '{')
                        break;
                    if (k2 == ':') {
                        char n2 = cpeek2(c);
                        if (n2 == ' ' || n2 == '\t' || n2 == '\n' || n2 == ',' || n2 == '}') break;
                    }
                    buf_putc(&key, k2);
                    cnext(c);
                }
                while (key.len > 0 && is_ws(key.p[key.len - 1])) key.len--;
                if (key.len == 0) {
                    ysyntax(p, kline, "expected a key in flow mapping");
                    ok = NULL;
                }
            }
            if (ok == NULL) {
                free(key.p);
                free(lines);
                return NULL;
            }
            cskip(c);
            jval *v;
            if (cpeek(c) == ':') {
                cnext(c);
                cskip(c);
                if (cpeek(c) == ',' || cpeek(c) == '}') {
                    v = jnull();
                } else {
                    v = flow_node(p, c);
                }
            } else {
                v = jnull();
            }
            if (v == NULL) {
                free(key.p);
                free(lines);
                return NULL;
            }
            lines = push_line(lines, coll->n, kline);
            jobj_putn(coll, arena_strndup(key.p ? key.p : "", key.len), key.len, v);
            free(key.p);
        }
        cskip(c);
        ch = cpeek(c);
        if (ch == ',') {
            cnext(c);
            continue;
        }
        if (ch == close) {
            cnext(c);
            break;
        }
        ysyntax(p, cline(c), open == '[' ? "expected ',' or ']' in flow sequence" : "expected ',' or '}' in flow mapping");
        free(lines);
        return NULL;
    }
    if (open == '{') check_dups(p, coll, lines);
    free(lines);
    p->depth--;
    return p->failed ? NULL : coll;
}

static jval *flow_node(yparser *p, ycur *c) {
    char ch = cpeek(c);
    if (ch == '[' || ch == '{') return flow_collection(p, c);
    if (ch == '"' || ch == '\'') {
        buf_t b = {0};
        jval *v = read_quoted(c, &b) ? jstr(b.p ? b.p : "", b.len) : NULL;
        free(b.p);
        return v;
    }
    if (ch == '&' || ch == '*' || ch == '!') {
        ysyntax(p, cline(c), "anchors, aliases and tags are not supported");
        return NULL;
    }
    if (ch == '-' && (cpeek2(c) == ' ' || cpeek2(c) == '\n')) {
        ysyntax(p, cline(c), "block sequences are not allowed inside flow collections");
        return NULL;
    }
    if (ch == '%' || ch == '@' || ch == '`' || ch == '|' || ch == '>' || ch == '?') {
        ysyntax(p, cline(c), "reserved or unsupported indicator in flow collection");
        return NULL;
    }
    return flow_plain(p, c);
}

/* Block scalar (| or >) whose header is on the current line at column col. */
static jval *block_scalar(yparser *p, int col, int parent_ind) {
    yline *hl = &p->L[p->i];
    bool literal = hl->s[col] == '|';
    char chomp = 'c';
    int explicit_ind = 0;
    int k = col + 1;
    for (int t = 0; t < 2 && k < hl->len; t++) {
        if ((hl->s[k] == '-' || hl->s[k] == '+') && chomp == 'c') {
            chomp = hl->s[k++];
        } else if (hl->s[k] >= '1' && hl->s[k] <= '9' && explicit_ind == 0) {
            explicit_ind = hl->s[k++] - '0';
        }
    }
    if (k < hl->len && !is_ws(hl->s[k])) {
        ysyntax(p, hl->no, "invalid block scalar header");
        return NULL;
    }
    if (!rest_blank(hl, k)) {
        ysyntax(p, hl->no, "unexpected text after block scalar header");
        return NULL;
    }
    p->i++;
    int base = parent_ind < 0 ? 0 : parent_ind;
    int content_ind = explicit_ind ? base + explicit_ind : -1;
    /* Collect lines: blank lines, or lines indented at least content_ind. */
    int first = p->i, last = p->i; /* [first, last) */
    for (int li = p->i; li < p->nl; li++) {
        const yline *l = &p->L[li];
        int c = 0;
        while (c < l->len && l->s[c] == ' ') c++;
        bool blank = true;
        for (int q = c; q < l->len; q++) {
            if (!is_ws(l->s[q])) {
                blank = false;
                break;
            }
        }
        if (blank && c >= l->len) {
            continue; /* only spaces (or empty): part of the scalar if more content follows */
        }
        if (content_ind < 0) {
            if (c <= parent_ind) break;
            content_ind = c;
        }
        if (c < content_ind) {
            if (blank) continue;
            break;
        }
        last = li + 1;
    }
    if (content_ind < 0) content_ind = base + 1;
    buf_t out = {0};
    buf_reserve(&out, 0);
    int pending_empty = 0;
    int prev = 0; /* 0 none, 1 normal, 2 more-indented */
    for (int li = first; li < last; li++) {
        const yline *l = &p->L[li];
        int c = 0;
        while (c < l->len && c < content_ind && l->s[c] == ' ') c++;
        const char *t = l->s + c;
        int tl = l->len - c;
        bool empty = true;
        for (int q = 0; q < tl; q++) {
            if (!is_ws(t[q])) {
                empty = false;
                break;
            }
        }
        if (empty && (c < content_ind || !literal)) {
            pending_empty++;
            continue;
        }
        if (literal) {
            for (int q = 0; q < pending_empty; q++) buf_putc(&out, '\n');
            if (prev) buf_putc(&out, '\n');
            prev = 1;
        } else {
            int kind = (tl > 0 && is_ws(t[0])) ? 2 : 1;
            if (prev == 0) {
                for (int q = 0; q < pending_empty; q++) buf_putc(&out, '\n');
            } else if (prev == 1 && kind == 1) {
                if (pending_empty) {
                    for (int q = 0; q < pending_empty; q++) buf_putc(&out, '\n');
                } else {
                    buf_putc(&out, ' ');
                }
            } else {
                for (int q = 0; q <= pending_empty; q++) buf_putc(&out, '\n');
            }
            prev = kind;
        }
        pending_empty = 0;
        buf_put(&out, t, (size_t)tl);
    }
    /* Trailing empty lines (inside and just after the content) for chomping. */
    int trailing = pending_empty;
    int li = last;
    while (li < p->nl) {
        const yline *l = &p->L[li];
        int c = 0;
        while (c < l->len && is_ws(l->s[c])) c++;
        if (c < l->len) break;
        trailing++;
        li++;
    }
    if (prev != 0) {
        if (chomp == 'c') {
            buf_putc(&out, '\n');
        } else if (chomp == '+') {
            for (int q = 0; q <= trailing; q++) buf_putc(&out, '\n');
        }
    } else if (chomp == '+') {
        for (int q = 0; q < trailing; q++) buf_putc(&out, '\n');
    }
    p->i = last;
    jval *v = jstr(out.p, out.len);
    free(out.p);
    return v;
}

/* Plain scalar starting at column col of the current line, with continuation lines. */
static jval *block_plain(yparser *p, int col, int parent_ind) {
    yline *l = &p->L[p->i];
    buf_t b = {0};
    buf_reserve(&b, 0);
    bool ended = false;
    int k = col;
    for (; k < l->len; k++) {
        if (l->s[k] == '#' && k > col && is_ws(l->s[k - 1])) {
            ended = true;
            break;
        }
        if (l->s[k] == ':' && (k + 1 >= l->len || is_ws(l->s[k + 1]))) {
            ysyntax(p, l->no, "unexpected ':' in a plain value (quote the value)");
            free(b.p);
            return NULL;
        }
    }
    int e = k;
    while (e > col && is_ws(l->s[e - 1])) e--;
    buf_put(&b, l->s + col, (size_t)(e - col));
    p->i++;
    while (!ended && p->i < p->nl) {
        /* Continuation lines are more indented than the parent node. */
        int li = p->i, empty = 0;
        while (li < p->nl && is_empty_line(&p->L[li])) {
            empty++;
            li++;
        }
        if (li >= p->nl) break;
        const yline *n = &p->L[li];
        int c = first_ns(n);
        if (c <= parent_ind || n->s[c] == '#' || n->s[c] == '\t') break;
        int q = c;
        for (; q < n->len; q++) {
            if (n->s[q] == '#' && is_ws(n->s[q - 1])) {
                ended = true;
                break;
            }
            if (n->s[q] == ':' && (q + 1 >= n->len || is_ws(n->s[q + 1]))) {
                ysyntax(p, n->no, "unexpected ':' in a multi-line plain value (check the indentation, or quote the value)");
                free(b.p);
                return NULL;
            }
        }
        int qe = q;
        while (qe > c && is_ws(n->s[qe - 1])) qe--;
        if (empty) {
            for (int t = 0; t < empty; t++) buf_putc(&b, '\n');
        } else {
            buf_putc(&b, ' ');
        }
        buf_put(&b, n->s + c, (size_t)(qe - c));
        p->i = li + 1;
    }
    jval *v = resolve_plain(b.p, b.len);
    free(b.p);
    return v;
}

/* A value that starts on the current line at column col (after "key:" or "- "). */
static jval *inline_value(yparser *p, int col, int parent_ind) {
    yline *l = &p->L[p->i];
    char ch = l->s[col];
    char n2 = col + 1 < l->len ? l->s[col + 1] : '\n';
    if (ch == '&' || ch == '*' || ch == '!') {
        ysyntax(p, l->no, "anchors, aliases and tags are not supported");
        return NULL;
    }
    if (ch == '|' || ch == '>') return block_scalar(p, col, parent_ind);
    if (ch == '[' || ch == '{' || ch == '"' || ch == '\'') {
        ycur c = {p, p->i, col};
        jval *v = ch == '[' || ch == '{' ? flow_collection(p, &c) : NULL;
        if (ch == '"' || ch == '\'') {
            buf_t b = {0};
            v = read_quoted(&c, &b) ? jstr(b.p ? b.p : "", b.len) : NULL;
            free(b.p);
        }
        if (v == NULL) return NULL;
        if (c.li >= p->nl) {
            p->i = p->nl;
            return v;
        }
        if (!expect_line_end(p, c.li, c.ci)) return NULL;
        return v;
    }
    if (ch == '%' || ch == '@' || ch == '`') {
        ysyntax(p, l->no, "reserved indicator at the start of a plain value (quote the value)");
        return NULL;
    }
    if ((ch == '-' || ch == '?' || ch == ':') && (n2 == ' ' || n2 == '\t' || n2 == '\n')) {
        ysyntax(p, l->no, ch == '-' ? "a block sequence cannot start on the line of its key"
                          : ch == '?' ? "complex keys are not supported"
                                      : "unexpected ':'");
        return NULL;
    }
    return block_plain(p, col, parent_ind);
}

static void key_text(yparser *p, const yline *l, int c, int colon, buf_t *key) {
    key->len = 0;
    buf_reserve(key, 0);
    if (l->s[c] == '"' || l->s[c] == '\'') {
        ycur cur = {p, (int)(l - p->L), c};
        read_quoted(&cur, key);
        return;
    }
    int e = colon;
    while (e > c && is_ws(l->s[e - 1])) e--;
    buf_put(key, l->s + c, (size_t)(e - c));
}

static jval *parse_map(yparser *p, int ind) {
    jval *obj = jobj();
    int *kl = NULL;
    buf_t key = {0};
    for (;;) {
        skip_blank(p);
        if (p->failed || p->i >= p->nl) break;
        yline *l = &p->L[p->i];
        int c = first_ns(l);
        if (c < ind) break;
        if (c > ind) {
            ysyntax(p, l->no, "unexpected indentation");
            break;
        }
        int colon = map_key_colon(l, c);
        if (colon < 0) {
            if (l->s[c] == '?' && (c + 1 >= l->len || is_ws(l->s[c + 1]))) {
                ysyntax(p, l->no, "complex keys are not supported");
            } else if (is_seq_item(l, c)) {
                ysyntax(p, l->no, "expected a mapping entry, found a sequence item");
            } else if (l->s[c] == '&' || l->s[c] == '*' || l->s[c] == '!') {
                ysyntax(p, l->no, "anchors, aliases and tags are not supported");
            } else {
                ysyntax(p, l->no, "expected 'key: value'");
            }
            break;
        }
        int kline = l->no;
        if (colon == c) {
            ysyntax(p, l->no, "empty key");
            break;
        }
        key_text(p, l, c, colon, &key);
        if (p->failed) break;
        char *k = arena_strndup(key.p, key.len);
        size_t klen = key.len;
        int vc = colon + 1;
        while (vc < l->len && is_ws(l->s[vc])) vc++;
        jval *v;
        if (rest_blank(l, colon + 1)) {
            p->i++;
            skip_blank(p);
            if (p->failed) break;
            v = NULL;
            if (p->i < p->nl) {
                const yline *n = &p->L[p->i];
                int c2 = first_ns(n);
                if (c2 > ind) {
                    v = parse_node(p, ind);
                } else if (c2 == ind && is_seq_item(n, c2)) {
                    if (enter(p, n->no)) {
                        v = parse_seq(p, ind);
                        p->depth--;
                    }
                }
            }
            if (p->failed) break;
            if (v == NULL) v = jnull();
        } else {
            v = inline_value(p, vc, ind);
            if (v == NULL) break;
        }
        kl = push_line(kl, obj->n, kline);
        jobj_putn(obj, k, klen, v);
    }
    free(key.p);
    if (!p->failed) check_dups(p, obj, kl);
    free(kl);
    return p->failed ? NULL : obj;
}

static jval *parse_seq(yparser *p, int ind) {
    jval *arr = jarr();
    for (;;) {
        skip_blank(p);
        if (p->failed || p->i >= p->nl) break;
        yline *l = &p->L[p->i];
        int c = first_ns(l);
        if (c < ind) break;
        if (c > ind) {
            ysyntax(p, l->no, "unexpected indentation");
            break;
        }
        if (!is_seq_item(l, c)) break;
        int rc = c + 1;
        while (rc < l->len && l->s[rc] == ' ') rc++;
        if (rc < l->len && l->s[rc] == '\t') {
            ysyntax(p, l->no, "tab character after '-' (use spaces)");
            break;
        }
        jval *v;
        if (rest_blank(l, c + 1)) {
            p->i++;
            v = parse_node(p, ind);
            if (p->failed) break;
            if (v == NULL) v = jnull();
        } else if (is_seq_item(l, rc) || map_key_colon(l, rc) >= 0) {
            l->off = rc;
            v = parse_node(p, ind);
            if (v == NULL) break;
        } else {
            v = inline_value(p, rc, ind);
            if (v == NULL) break;
        }
        jarr_push(arr, v);
    }
    return p->failed ? NULL : arr;
}

static jval *parse_node(yparser *p, int parent_ind) {
    skip_blank(p);
    if (p->failed || p->i >= p->nl) return NULL;
    yline *l = &p->L[p->i];
    int c = first_ns(l);
    if (c <= parent_ind) return NULL;
    if (!enter(p, l->no)) return NULL;
    jval *v;
    if (is_seq_item(l, c)) {
        v = parse_seq(p, c);
    } else if (map_key_colon(l, c) >= 0) {
        v = parse_map(p, c);
    } else {
        v = inline_value(p, c, parent_ind);
    }
    p->depth--;
    return v;
}

jval *yaml_parse(const char *text, size_t n, int first_line, bool *ok) {
    static yparser p;
    memset(&p, 0, sizeof p);
    size_t cap = 16;
    p.L = xrealloc(NULL, cap * sizeof(yline));
    size_t start = 0;
    int no = first_line;
    /* Every '\n' ends a line; text after the last one is a line too. */
    while (start < n) {
        size_t k = find_byte(text, start, n, '\n');
        if ((size_t)p.nl == cap) {
            cap *= 2;
            p.L = xrealloc(p.L, cap * sizeof(yline));
        }
        p.L[p.nl++] = (yline){text + start, (int)(k - start), no++, 0};
        start = k + 1;
    }
    /* Directives and document markers are outside the subset. */
    for (int li = 0; li < p.nl; li++) {
        if (p.L[li].len > 0 && p.L[li].s[0] == '%') {
            ysyntax(&p, p.L[li].no, "directives are not supported");
            break;
        }
        if (p.L[li].len >= 3 && memcmp(p.L[li].s, "...", 3) == 0 && rest_blank(&p.L[li], 3)) {
            ysyntax(&p, p.L[li].no, "document end markers are not supported");
            break;
        }
    }
    jval *v = NULL;
    if (!p.failed) {
        v = parse_node(&p, -1);
        if (!p.failed) {
            skip_blank(&p);
            if (!p.failed && p.i < p.nl) {
                ysyntax(&p, p.L[p.i].no, "unexpected content after the document");
            }
        }
    }
    free(p.L);
    /* Stable insertion sort by line. */
    for (int a = 1; a < p.nerrs; a++) {
        struct yerror e = p.errs[a];
        int b = a;
        while (b > 0 && p.errs[b - 1].line > e.line) {
            p.errs[b] = p.errs[b - 1];
            b--;
        }
        p.errs[b] = e;
    }
    for (int a = 0; a < p.nerrs; a++) errs_add("frontmatter", p.errs[a].constraint, p.errs[a].message);
    *ok = !p.failed && !p.dup;
    return *ok ? v : NULL;
}
