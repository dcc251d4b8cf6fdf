/*
 * Markdown inlines after cmark's algorithm: a left-to-right scan that
 * pushes delimiter runs and brackets on stacks, then resolves emphasis with
 * CommonMark's delimiter rules (openers_bottom keeps it linear) and links
 * when a closing bracket is met. Every scan that could restart is memoized
 * or bounded, so pathological input stays linear:
 *   - code spans look closers up in a precomputed index of backtick runs;
 *   - a link title that found no closing quote is not searched for again;
 *   - link destinations give up after 32 nested parentheses, which bounds
 *     how often a byte is scanned: a bare destination scan that fails never
 *     met a ')' at its own depth 0 (that ends a link), and each later '('
 *     starts its scan one level deeper, so at most 33 failing scans cover
 *     any byte (successful ones are disjoint: parsing resumes after them);
 *     once a paragraph's scans have read 4 times its length, tables of
 *     parentheses make each further scan cost O(stops) instead of O(bytes);
 *   - brackets after which another bracket opened never try shortcut labels.
 *
 * Entities: numeric ones, the HTML 4 Latin-1 names and about twenty common
 * others (&amp; &mdash; &euro; ...); any other name stays literal text.
 *
 * Unicode classes are approximated: whitespace is ASCII whitespace plus
 * U+00A0, U+1680, U+2000-U+200A, U+202F, U+205F, U+3000; punctuation is
 * ASCII punctuation plus the Latin-1, General Punctuation, currency and CJK
 * symbol blocks. Reference labels are case-folded for ASCII and Latin-1.
 */
#include <stdlib.h>
#include <string.h>

#include "md_internal.h"

#define MAX_LABEL 999
#define MAX_DEST_PARENS 32

typedef enum { I_TEXT, I_SOFT, I_HARD, I_CODE, I_EMPH, I_STRONG, I_LINK, I_IMAGE } itype;

typedef struct inl inl;
struct inl {
    itype t;
    inl *prev, *next, *first, *last, *parent;
    const char *s; /* text or code value */
    size_t n;
    const char *url, *title; /* link and image; title NULL if none */
};

typedef struct delim delim;
struct delim {
    delim *prev, *next;
    inl *node;
    char c;
    size_t orig;
    size_t pos;
    bool can_open, can_close;
};

typedef struct bracket bracket;
struct bracket {
    bracket *prev;
    inl *node;
    size_t pos;
    bool image, active, bracket_after;
};

typedef struct {
    size_t pos, len;
} btrun;

typedef struct {
    const char *s;
    size_t n, pos;
    inl root;
    delim *last_delim;
    bracket *last_bracket;
    const refmap *refs;
    btrun *runs; /* backtick runs sorted by (len, pos) */
    size_t nruns;
    bool runs_built;
    size_t title_fail[3]; /* '"', '\'', ')' : no closer from this position on */
    size_t dest_scanned;  /* bytes read by bare destination scans so far */
    uint32_t *opens;      /* opens[i]: number of '(' in s[0, i) (built once scans get costly) */
    uint32_t *next_stop;  /* next_stop[i]: first j >= i with ')', '\\', or a space/control byte */
} subject;

/* ---- character classes ------------------------------------------------ */

static bool is_ascii_punct(unsigned c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static bool is_uspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r'); /* \t \n \v \f \r */
    return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool is_upunct(uint32_t c) {
    if (c < 0x80) return is_ascii_punct(c);
    return (c >= 0xA1 && c <= 0xBF) || c == 0xD7 || c == 0xF7 || (c >= 0x2010 && c <= 0x2027) ||
           (c >= 0x2030 && c <= 0x205E) || (c >= 0x20A0 && c <= 0x20CF) || (c >= 0x3001 && c <= 0x303F) ||
           (c >= 0xFF01 && c <= 0xFF0F);
}

static bool is_ws_char(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* ---- node helpers ----------------------------------------------------- */

static inl *mk(itype t) {
    inl *x = arena_alloc(sizeof *x);
    memset(x, 0, sizeof *x);
    x->t = t;
    return x;
}

static inl *mktext(const char *s, size_t n) {
    inl *x = mk(I_TEXT);
    x->s = s;
    x->n = n;
    return x;
}

static void append(inl *parent, inl *x) {
    x->parent = parent;
    x->next = NULL;
    x->prev = parent->last;
    if (parent->last) {
        parent->last->next = x;
    } else {
        parent->first = x;
    }
    parent->last = x;
}

static void unlink_inl(inl *x) {
    inl *p = x->parent;
    if (x->prev) {
        x->prev->next = x->next;
    } else if (p) {
        p->first = x->next;
    }
    if (x->next) {
        x->next->prev = x->prev;
    } else if (p) {
        p->last = x->prev;
    }
    x->prev = x->next = NULL;
    x->parent = NULL;
}

static void insert_after(inl *ref, inl *x) {
    x->parent = ref->parent;
    x->prev = ref;
    x->next = ref->next;
    if (ref->next) {
        ref->next->prev = x;
    } else if (ref->parent) {
        ref->parent->last = x;
    }
    ref->next = x;
}

static void insert_before(inl *ref, inl *x) {
    x->parent = ref->parent;
    x->next = ref;
    x->prev = ref->prev;
    if (ref->prev) {
        ref->prev->next = x;
    } else if (ref->parent) {
        ref->parent->first = x;
    }
    ref->prev = x;
}

/* ---- entities and escapes --------------------------------------------- */

/* HTML 4 Latin-1 entities in code point order from U+00A0, then a few common others. */
static const char *const LATIN1_ENTITIES =
    "nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 "
    "acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde "
    "Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute "
    "Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde "
    "auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute "
    "ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml ";

static const struct {
    const char *name;
    uint32_t cp;
} ENTITIES[] = {
    {"amp", '&'},       {"lt", '<'},        {"gt", '>'},        {"quot", '"'},      {"apos", '\''},
    {"trade", 0x2122},  {"hellip", 0x2026}, {"mdash", 0x2014},  {"ndash", 0x2013},  {"euro", 0x20AC},
    {"bull", 0x2022},   {"lsquo", 0x2018},  {"rsquo", 0x2019},  {"ldquo", 0x201C},  {"rdquo", 0x201D},
    {"larr", 0x2190},   {"rarr", 0x2192},   {"OElig", 0x152},   {"oelig", 0x153},   {"thinsp", 0x2009},
};

/* Entity at s[0] == '&'; returns its length and the code point, 0 if none. */
static size_t scan_entity(const char *s, size_t n, uint32_t *cp) {
    if (n < 3) return 0;
    size_t k = 1;
    if (s[k] == '#') {
        k++;
        uint32_t v = 0;
        size_t d0;
        if (k < n && (s[k] == 'x' || s[k] == 'X')) {
            k++;
            d0 = k;
            while (k < n && k - d0 < 7) {
                char c = s[k];
                int h = (c >= '0' && c <= '9')   ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
                if (h < 0) break;
                v = v * 16 + (uint32_t)h;
                k++;
            }
            if (k == d0 || k - d0 > 6) return 0;
        } else {
            d0 = k;
            while (k < n && k - d0 < 8 && s[k] >= '0' && s[k] <= '9') {
                v = v * 10 + (uint32_t)(s[k] - '0');
                k++;
            }
            if (k == d0 || k - d0 > 7) return 0;
        }
        if (k >= n || s[k] != ';') return 0;
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) v = 0xFFFD;
        *cp = v;
        return k + 1;
    }
    size_t e = 1;
    while (e < n && e < 34 && ((s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z') || (s[e] >= '0' && s[e] <= '9')))
        e++;
    if (e == 1 || e >= n || s[e] != ';') return 0;
    uint32_t cp1 = 0xA0;
    for (const char *q = LATIN1_ENTITIES; *q; cp1++) {
        size_t l = 0;
        while (q[l] != ' ' && q[l] != '\0') l++;
        if (l == e - 1 && memcmp(q, s + 1, l) == 0) {
            *cp = cp1;
            return e + 1;
        }
        q += l + (q[l] == ' ');
    }
    for (size_t i = 0; i < sizeof ENTITIES / sizeof ENTITIES[0]; i++) {
        const char *nm = ENTITIES[i].name;
        size_t l = 0;
        while (nm[l] != '\0') l++;
        if (l == e - 1 && memcmp(nm, s + 1, l) == 0) {
            *cp = ENTITIES[i].cp;
            return e + 1;
        }
    }
    return 0;
}

/* UTF-8 of cp into d (at most 4 bytes); returns its length. */
static size_t put_utf8(char *d, uint32_t cp) {
    char t[4];
    buf_t b = {t, 0, sizeof t, NULL};
    buf_pututf8(&b, cp);
    memcpy(d, t, b.len);
    return b.len;
}

/*
 * An escape is 2 bytes for 1, an entity at least 4 ("&lt;", "&#9;") for at
 * most 4 (a code point beyond U+FFFF needs "&#65536;"): never longer.
 */
const char *md_unescape(const char *s, size_t n, size_t *len) {
    char *out = arena_alloc(n + 1);
    size_t w = 0;
    for (size_t k = 0; k < n;) {
        if (s[k] == '\\' && k + 1 < n && is_ascii_punct((unsigned char)s[k + 1])) {
            out[w++] = s[k + 1];
            k += 2;
        } else if (s[k] == '&') {
            uint32_t cp;
            size_t l = scan_entity(s + k, n - k, &cp);
            if (l) {
                w += put_utf8(out + w, cp);
                k += l;
            } else {
                out[w++] = '&';
                k++;
            }
        } else {
            out[w++] = s[k++];
        }
    }
    out[w] = '\0';
    *len = w;
    return out;
}

static const char *unescape_dup(const char *s, size_t n) {
    size_t len;
    return md_unescape(s, n, &len);
}

/* ---- reference map ---------------------------------------------------- */

/* Case fold (ASCII, Latin-1), collapse whitespace runs, trim. Never longer than s. */
static char *normalize_label(const char *s, size_t n, size_t *outlen) {
    char *r = arena_alloc(n + 1);
    size_t w = 0;
    bool pending_space = false;
    for (size_t k = 0; k < n;) {
        unsigned char c = (unsigned char)s[k];
        if (is_ws_char((char)c)) {
            pending_space = w > 0;
            k++;
            continue;
        }
        if (pending_space) {
            r[w++] = ' ';
            pending_space = false;
        }
        if (c < 0x80) {
            r[w++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            k++;
        } else {
            int l;
            uint32_t cp = utf8_decode((const unsigned char *)s + k, n - k, &l);
            if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)) cp += 32;
            if (cp == 0xDF) {
                r[w++] = 's';
                r[w++] = 's';
            } else {
                w += put_utf8(r + w, cp);
            }
            k += (size_t)l;
        }
    }
    r[w] = '\0';
    *outlen = w;
    return r;
}

static uint32_t fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < n; k++) h = (h ^ (unsigned char)s[k]) * 16777619u;
    return h;
}

void refmap_init(refmap *m) {
    m->nslots = 64;
    m->count = 0;
    m->slots = xrealloc(NULL, m->nslots * sizeof(refdef *));
    memset(m->slots, 0, m->nslots * sizeof(refdef *));
}

static const refdef *refmap_find(const refmap *m, const char *label, size_t n) {
    for (const refdef *d = m->slots[fnv(label, n) & (m->nslots - 1)]; d; d = d->next) {
        if (d->label_len == n && memcmp(d->label, label, n) == 0) return d;
    }
    return NULL;
}

static void refmap_add(refmap *m, const char *label, size_t n, const char *url, const char *title) {
    if (refmap_find(m, label, n) != NULL) return; /* first definition wins */
    if (m->count * 2 >= m->nslots) {
        size_t ns = m->nslots * 2;
        refdef **slots = xrealloc(NULL, ns * sizeof(refdef *));
        memset(slots, 0, ns * sizeof(refdef *));
        for (size_t k = 0; k < m->nslots; k++) {
            for (refdef *d = m->slots[k], *nx; d; d = nx) {
                nx = d->next;
                uint32_t h = fnv(d->label, d->label_len) & (uint32_t)(ns - 1);
                d->next = slots[h];
                slots[h] = d;
            }
        }
        free(m->slots);
        m->slots = slots;
        m->nslots = ns;
    }
    refdef *d = arena_alloc(sizeof *d);
    d->label = label;
    d->label_len = n;
    d->url = url;
    d->title = title;
    uint32_t h = fnv(label, n) & (uint32_t)(m->nslots - 1);
    d->next = m->slots[h];
    m->slots[h] = d;
    m->count++;
}

const refdef *refmap_get(const refmap *m, const char *raw, size_t n) {
    if (n > MAX_LABEL) return NULL;
    size_t l;
    char *norm = normalize_label(raw, n, &l);
    if (l == 0) return NULL;
    return refmap_find(m, norm, l);
}

/* ---- shared scanners for links and definitions ------------------------ */

/* Label "[...]" at s[pos]; returns the index after ']' or 0. */
static size_t scan_label(const char *s, size_t n, size_t pos) {
    if (pos >= n || s[pos] != '[') return 0;
    size_t k = pos + 1;
    while (k < n && k - pos <= MAX_LABEL + 1) {
        char c = s[k];
        if (c == '\\' && k + 1 < n && is_ascii_punct((unsigned char)s[k + 1])) {
            k += 2;
            continue;
        }
        if (c == '[') return 0;
        if (c == ']') return k - pos - 1 <= MAX_LABEL ? k + 1 : 0;
        k++;
    }
    return 0;
}

/* Bare (not <...>) link destination at pos: its end index or SIZE_MAX; *stop is where reading stopped. */
static size_t scan_bare_dest(const char *s, size_t n, size_t pos, size_t *stop) {
    size_t k = pos;
    int depth = 0;
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        if (c == '\\' && k + 1 < n && is_ascii_punct((unsigned char)s[k + 1])) {
            k += 2;
            continue;
        }
        if (c == '(') {
            if (++depth > MAX_DEST_PARENS) {
                *stop = k;
                return SIZE_MAX;
            }
        } else if (c == ')') {
            if (depth == 0) break;
            depth--;
        } else if (c <= 0x20 || c == 0x7F) {
            break;
        }
        k++;
    }
    *stop = k;
    return depth == 0 ? k : SIZE_MAX;
}

/* Link destination at pos; sets [*ds, *de) to its raw text. Returns end index or SIZE_MAX. */
static size_t scan_dest(const char *s, size_t n, size_t pos, size_t *ds, size_t *de) {
    if (pos < n && s[pos] == '<') {
        size_t k = pos + 1;
        while (k < n) {
            char c = s[k];
            if (c == '\\' && k + 1 < n && is_ascii_punct((unsigned char)s[k + 1])) {
                k += 2;
                continue;
            }
            if (c == '\n' || c == '<') return SIZE_MAX;
            if (c == '>') {
                *ds = pos + 1;
                *de = k;
                return k + 1;
            }
            k++;
        }
        return SIZE_MAX;
    }
    size_t stop;
    size_t k = scan_bare_dest(s, n, pos, &stop);
    if (k == SIZE_MAX) return SIZE_MAX;
    *ds = pos;
    *de = k;
    return k;
}

/* Title at pos ('"', '\'' or '('); returns end index or SIZE_MAX. fail memo optional. */
static size_t scan_title(const char *s, size_t n, size_t pos, size_t *fail_memo) {
    if (pos >= n) return SIZE_MAX;
    char open = s[pos];
    char close = open == '(' ? ')' : open;
    if (open != '"' && open != '\'' && open != '(') return SIZE_MAX;
    int mi = open == '"' ? 0 : open == '\'' ? 1 : 2;
    if (fail_memo && pos >= fail_memo[mi]) return SIZE_MAX;
    for (size_t k = pos + 1; k < n; k++) {
        char c = s[k];
        if (c == '\\' && k + 1 < n && is_ascii_punct((unsigned char)s[k + 1])) {
            k++;
            continue;
        }
        if (c == close) return k + 1;
        if (open == '(' && c == '(') return SIZE_MAX;
    }
    if (fail_memo && pos < fail_memo[mi]) fail_memo[mi] = pos;
    return SIZE_MAX;
}

/*
 * scan_bare_dest within a paragraph: directly while that is cheap, then
 * with tables (in the arena) so that a scan costs O(stops) instead of
 * O(bytes): "[a](b" repeated would otherwise rescan up to 32 parentheses
 * from every opener.
 */
static size_t scan_paragraph_dest(subject *sj, size_t pos) {
    const char *s = sj->s;
    size_t n = sj->n;
    if (sj->opens == NULL) {
        size_t stop;
        size_t end = scan_bare_dest(s, n, pos, &stop);
        sj->dest_scanned += stop - pos;
        if (sj->dest_scanned <= 4 * n + 4096) return end;
        sj->opens = arena_alloc((n + 1) * sizeof(uint32_t));
        sj->next_stop = arena_alloc((n + 1) * sizeof(uint32_t));
        uint32_t c = 0;
        for (size_t i = 0; i < n; i++) {
            sj->opens[i] = c;
            if (s[i] == '(') c++;
        }
        sj->opens[n] = c;
        uint32_t next = (uint32_t)n;
        sj->next_stop[n] = next;
        for (size_t i = n; i-- > 0;) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == ')' || ch == '\\' || ch <= 0x20 || ch == 0x7F) next = (uint32_t)i;
            sj->next_stop[i] = next;
        }
        return end;
    }
    size_t k = pos;
    uint32_t depth = 0;
    for (;;) {
        size_t x = sj->next_stop[k];
        depth += sj->opens[x] - sj->opens[k];
        if (depth > MAX_DEST_PARENS) return SIZE_MAX;
        if (x >= n) {
            k = n;
            break;
        }
        char c = s[x];
        if (c == '\\') {
            k = (x + 1 < n && is_ascii_punct((unsigned char)s[x + 1])) ? x + 2 : x + 1;
            if (k > n) k = n;
            continue;
        }
        if (c == ')') {
            if (depth == 0) {
                k = x;
                break;
            }
            depth--;
            k = x + 1;
            continue;
        }
        k = x;
        break;
    }
    return depth == 0 ? k : SIZE_MAX;
}

static size_t skip_spacechars(const char *s, size_t n, size_t k) {
    while (k < n && is_ws_char(s[k])) k++;
    return k;
}

size_t md_parse_refdef(const char *s, size_t n, refmap *m) {
    size_t k = scan_label(s, n, 0);
    if (k == 0 || k >= n || s[k] != ':') return 0;
    const char *label = s + 1;
    size_t label_len = k - 2;
    k++;
    while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
    if (k < n && s[k] == '\n') k++;
    while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
    size_t ds, de;
    if (k >= n || s[k] == '\n') return 0;
    size_t dend = scan_dest(s, n, k, &ds, &de);
    if (dend == SIZE_MAX || (dend == k)) return 0;
    /* Optional title, separated by white space; the definition must end its line. */
    size_t t = dend;
    while (t < n && (s[t] == ' ' || s[t] == '\t')) t++;
    bool dest_eol = t >= n || s[t] == '\n';
    size_t title_start = t;
    if (t < n && s[t] == '\n') title_start = t + 1;
    while (title_start < n && (s[title_start] == ' ' || s[title_start] == '\t')) title_start++;
    const char *title = NULL;
    size_t end = SIZE_MAX;
    if (title_start > dend) {
        size_t te = scan_title(s, n, title_start, NULL);
        if (te != SIZE_MAX) {
            size_t q = te;
            while (q < n && (s[q] == ' ' || s[q] == '\t')) q++;
            if (q >= n || s[q] == '\n') {
                title = unescape_dup(s + title_start + 1, te - title_start - 2);
                end = q < n ? q + 1 : q;
            }
        }
    }
    if (end == SIZE_MAX) {
        if (!dest_eol) return 0;
        end = t < n ? t + 1 : t;
    }
    size_t nl;
    char *norm = normalize_label(label, label_len, &nl);
    if (nl == 0) return 0;
    refmap_add(m, norm, nl, unescape_dup(s + ds, de - ds), title);
    return end;
}

/* ---- subject ---------------------------------------------------------- */

static int btrun_cmp(const void *a, const void *b) {
    const btrun *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static void build_runs(subject *sj) {
    sj->runs_built = true;
    size_t count = 0;
    for (size_t k = find_byte(sj->s, 0, sj->n, '`'); k < sj->n; k = find_byte(sj->s, k, sj->n, '`')) {
        count++;
        while (k < sj->n && sj->s[k] == '`') k++;
    }
    sj->runs = arena_alloc(count * sizeof(btrun));
    for (size_t k = find_byte(sj->s, 0, sj->n, '`'); k < sj->n; k = find_byte(sj->s, k, sj->n, '`')) {
        size_t st = k;
        while (k < sj->n && sj->s[k] == '`') k++;
        sj->runs[sj->nruns++] = (btrun){st, k - st};
    }
    qsort(sj->runs, sj->nruns, sizeof(btrun), btrun_cmp);
}

/* First backtick run of exactly len bytes starting at or after pos. */
static size_t find_closer_run(subject *sj, size_t len, size_t pos) {
    if (!sj->runs_built) build_runs(sj);
    size_t lo = 0, hi = sj->nruns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        btrun *r = &sj->runs[mid];
        if (r->len < len || (r->len == len && r->pos < pos)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < sj->nruns && sj->runs[lo].len == len) return sj->runs[lo].pos;
    return SIZE_MAX;
}

static void handle_backticks(subject *sj) {
    size_t st = sj->pos;
    while (sj->pos < sj->n && sj->s[sj->pos] == '`') sj->pos++;
    size_t len = sj->pos - st;
    size_t close = find_closer_run(sj, len, sj->pos);
    if (close == SIZE_MAX) {
        append(&sj->root, mktext(sj->s + st, len));
        return;
    }
    const char *c = sj->s + sj->pos;
    size_t cn = close - sj->pos;
    char *v = arena_alloc(cn + 1);
    bool all_space = true;
    for (size_t k = 0; k < cn; k++) {
        v[k] = c[k] == '\n' ? ' ' : c[k];
        if (v[k] != ' ') all_space = false;
    }
    v[cn] = '\0';
    char *vs = v;
    if (cn >= 2 && !all_space && v[0] == ' ' && v[cn - 1] == ' ') {
        vs++;
        cn -= 2;
    }
    inl *x = mk(I_CODE);
    x->s = vs;
    x->n = cn;
    append(&sj->root, x);
    sj->pos = close + len;
}

static uint32_t cp_before(const subject *sj, size_t pos) {
    if (pos == 0) return '\n';
    if ((unsigned char)sj->s[pos - 1] < 0x80) return (unsigned char)sj->s[pos - 1];
    size_t k = pos - 1;
    while (k > 0 && ((unsigned char)sj->s[k] & 0xC0) == 0x80 && pos - k < 4) k--;
    int l;
    return utf8_decode((const unsigned char *)sj->s + k, sj->n - k, &l);
}

static uint32_t cp_at(const subject *sj, size_t pos) {
    if (pos >= sj->n) return '\n';
    if ((unsigned char)sj->s[pos] < 0x80) return (unsigned char)sj->s[pos];
    int l;
    return utf8_decode((const unsigned char *)sj->s + pos, sj->n - pos, &l);
}

static void handle_delim(subject *sj, char c) {
    size_t st = sj->pos;
    uint32_t before = cp_before(sj, st);
    while (sj->pos < sj->n && sj->s[sj->pos] == c) sj->pos++;
    size_t num = sj->pos - st;
    uint32_t after = cp_at(sj, sj->pos);
    bool left = !is_uspace(after) && (!is_upunct(after) || is_uspace(before) || is_upunct(before));
    bool right = !is_uspace(before) && (!is_upunct(before) || is_uspace(after) || is_upunct(after));
    bool can_open, can_close;
    if (c == '_') {
        can_open = left && (!right || is_upunct(before));
        can_close = right && (!left || is_upunct(after));
    } else {
        can_open = left;
        can_close = right;
    }
    inl *t = mktext(sj->s + st, num);
    append(&sj->root, t);
    if (can_open || can_close) {
        delim *d = arena_alloc(sizeof *d);
        memset(d, 0, sizeof *d);
        d->node = t;
        d->c = c;
        d->orig = num;
        d->pos = sj->pos;
        d->can_open = can_open;
        d->can_close = can_close;
        d->prev = sj->last_delim;
        if (sj->last_delim) sj->last_delim->next = d;
        sj->last_delim = d;
    }
}

static void remove_delim(subject *sj, delim *d) {
    if (d->next) {
        d->next->prev = d->prev;
    } else {
        sj->last_delim = d->prev;
    }
    if (d->prev) d->prev->next = d->next;
}

static delim *insert_emph(subject *sj, delim *opener, delim *closer) {
    inl *oi = opener->node, *ci = closer->node;
    size_t use = (ci->n >= 2 && oi->n >= 2) ? 2 : 1;
    oi->n -= use;
    ci->n -= use;
    /* The used delimiters are the last of the opener run and the first of the closer run. */
    ci->s += use;
    for (delim *d = closer->prev; d != NULL && d != opener;) {
        delim *pv = d->prev;
        remove_delim(sj, d);
        d = pv;
    }
    inl *emph = mk(use == 1 ? I_EMPH : I_STRONG);
    for (inl *t = oi->next; t != NULL && t != ci;) {
        inl *nx = t->next;
        unlink_inl(t);
        append(emph, t);
        t = nx;
    }
    insert_after(oi, emph);
    if (oi->n == 0) {
        unlink_inl(oi);
        remove_delim(sj, opener);
    }
    if (ci->n == 0) {
        unlink_inl(ci);
        delim *nx = closer->next;
        remove_delim(sj, closer);
        closer = nx;
    }
    return closer;
}

static void process_emphasis(subject *sj, size_t stack_bottom) {
    size_t bottom[2][6];
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 6; b++) bottom[a][b] = stack_bottom;
    }
    delim *closer = NULL;
    for (delim *c = sj->last_delim; c != NULL && c->pos >= stack_bottom; c = c->prev) closer = c;
    while (closer != NULL) {
        if (!closer->can_close) {
            closer = closer->next;
            continue;
        }
        int ci = closer->c == '*' ? 0 : 1;
        int bi = (closer->can_open ? 3 : 0) + (int)(closer->orig % 3);
        delim *opener = closer->prev;
        bool found = false;
        while (opener != NULL && opener->pos >= stack_bottom && opener->pos >= bottom[ci][bi]) {
            if (opener->can_open && opener->c == closer->c) {
                if (!(closer->can_open || opener->can_close) || closer->orig % 3 == 0 ||
                    (opener->orig + closer->orig) % 3 != 0) {
                    found = true;
                    break;
                }
            }
            opener = opener->prev;
        }
        delim *old = closer;
        if (found) {
            closer = insert_emph(sj, opener, closer);
        } else {
            closer = closer->next;
            bottom[ci][bi] = old->pos;
            if (!old->can_open) remove_delim(sj, old);
        }
    }
    while (sj->last_delim != NULL && sj->last_delim->pos >= stack_bottom) remove_delim(sj, sj->last_delim);
}

static void pop_bracket(subject *sj) {
    if (sj->last_bracket) sj->last_bracket = sj->last_bracket->prev;
}

static void push_bracket(subject *sj, bool image, inl *node) {
    bracket *b = arena_alloc(sizeof *b);
    memset(b, 0, sizeof *b);
    if (sj->last_bracket) sj->last_bracket->bracket_after = true;
    b->prev = sj->last_bracket;
    b->node = node;
    b->pos = sj->pos;
    b->image = image;
    b->active = true;
    sj->last_bracket = b;
}

static void handle_close_bracket(subject *sj) {
    size_t initial = sj->pos; /* at ']' */
    sj->pos++;
    bracket *opener = sj->last_bracket;
    if (opener == NULL) {
        append(&sj->root, mktext("]", 1));
        return;
    }
    if (!opener->active) {
        pop_bracket(sj);
        append(&sj->root, mktext("]", 1));
        return;
    }
    bool image = opener->image;
    size_t after = sj->pos;
    const char *url = NULL, *title = NULL;
    bool matched = false;
    if (after < sj->n && sj->s[after] == '(') {
        size_t k = skip_spacechars(sj->s, sj->n, after + 1);
        size_t ds = k, de = k;
        size_t dend;
        if (k < sj->n && sj->s[k] == '<') {
            dend = scan_dest(sj->s, sj->n, k, &ds, &de);
        } else {
            dend = de = scan_paragraph_dest(sj, k);
        }
        if (dend != SIZE_MAX) {
            size_t ts = skip_spacechars(sj->s, sj->n, dend);
            size_t te = ts;
            if (ts != dend) {
                size_t r = scan_title(sj->s, sj->n, ts, sj->title_fail);
                if (r != SIZE_MAX) te = r;
            }
            size_t endall = skip_spacechars(sj->s, sj->n, te);
            if (endall < sj->n && sj->s[endall] == ')') {
                url = unescape_dup(sj->s + ds, de - ds);
                title = te > ts ? unescape_dup(sj->s + ts + 1, te - ts - 2) : NULL;
                sj->pos = endall + 1;
                matched = true;
            }
        }
    }
    if (!matched) {
        const char *label = NULL;
        size_t label_len = 0;
        bool found = false;
        size_t le = scan_label(sj->s, sj->n, after);
        if (le != 0) {
            label = sj->s + after + 1;
            label_len = le - after - 2;
            found = true;
            sj->pos = le;
        }
        if ((!found || label_len == 0) && !opener->bracket_after) {
            label = sj->s + opener->pos;
            label_len = initial - opener->pos;
            found = true;
        }
        const refdef *d = found ? refmap_get(sj->refs, label, label_len) : NULL;
        if (d != NULL) {
            url = d->url;
            title = d->title;
            matched = true;
        } else {
            sj->pos = after;
        }
    }
    if (!matched) {
        pop_bracket(sj);
        append(&sj->root, mktext("]", 1));
        return;
    }
    inl *link = mk(image ? I_IMAGE : I_LINK);
    link->url = url;
    link->title = title;
    insert_before(opener->node, link);
    for (inl *t = opener->node->next; t != NULL;) {
        inl *nx = t->next;
        unlink_inl(t);
        append(link, t);
        t = nx;
    }
    unlink_inl(opener->node);
    process_emphasis(sj, opener->pos);
    pop_bracket(sj);
    if (!image) {
        /* Links may not contain links: deactivate the earlier link openers. */
        for (bracket *b = sj->last_bracket; b != NULL; b = b->prev) {
            if (!b->image) {
                if (!b->active) break;
                b->active = false;
            }
        }
    }
}

static bool scheme_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '.' ||
           c == '-';
}

static bool email_local_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

static bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* Autolink at '<'; returns true and appends a link node if there is one. */
static bool handle_autolink(subject *sj) {
    const char *s = sj->s;
    size_t n = sj->n, k = sj->pos + 1;
    /* URI: scheme ":" then no spaces, '<', '>' or controls. */
    size_t st = k;
    if (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z'))) {
        while (k < n && scheme_char(s[k]) && k - st <= 32) k++;
        if (k - st >= 2 && k - st <= 32 && k < n && s[k] == ':') {
            k++;
            while (k < n && (unsigned char)s[k] > 0x20 && s[k] != '<' && s[k] != '>' && s[k] != 0x7F) k++;
            if (k < n && s[k] == '>') {
                inl *l = mk(I_LINK);
                l->url = arena_strndup(s + st, k - st);
                append(l, mktext(s + st, k - st));
                append(&sj->root, l);
                sj->pos = k + 1;
                return true;
            }
        }
    }
    /* Email. */
    k = st;
    while (k < n && email_local_char(s[k])) k++;
    if (k == st || k >= n || s[k] != '@') return false;
    k++;
    for (;;) {
        size_t ls = k;
        if (k >= n || !alnum(s[k])) return false;
        while (k < n && (alnum(s[k]) || s[k] == '-') && k - ls < 63) k++;
        if (s[k - 1] == '-') return false;
        if (k < n && s[k] == '.') {
            k++;
            continue;
        }
        break;
    }
    if (k >= n || s[k] != '>') return false;
    inl *l = mk(I_LINK);
    l->url = sfmt("mailto:%S", s + st, k - st);
    append(l, mktext(s + st, k - st));
    append(&sj->root, l);
    sj->pos = k + 1;
    return true;
}

/* The bytes that end a run of plain text. */
static const bool SPECIAL[256] = {
    ['\n'] = true, ['\\'] = true, ['`'] = true, ['&'] = true, ['*'] = true,
    ['_'] = true,  ['['] = true,  [']'] = true, ['!'] = true, ['<'] = true,
};

static void parse_inlines(subject *sj) {
    while (sj->pos < sj->n) {
        char c = sj->s[sj->pos];
        switch (c) {
        case '\n': {
            size_t nl = sj->pos;
            sj->pos++;
            while (sj->pos < sj->n && (sj->s[sj->pos] == ' ' || sj->s[sj->pos] == '\t')) sj->pos++;
            bool hard = nl >= 2 && sj->s[nl - 1] == ' ' && sj->s[nl - 2] == ' ';
            append(&sj->root, mk(hard ? I_HARD : I_SOFT));
            break;
        }
        case '\\':
            if (sj->pos + 1 < sj->n && sj->s[sj->pos + 1] == '\n') {
                sj->pos += 2;
                while (sj->pos < sj->n && (sj->s[sj->pos] == ' ' || sj->s[sj->pos] == '\t')) sj->pos++;
                append(&sj->root, mk(I_HARD));
            } else if (sj->pos + 1 < sj->n && is_ascii_punct((unsigned char)sj->s[sj->pos + 1])) {
                append(&sj->root, mktext(sj->s + sj->pos + 1, 1));
                sj->pos += 2;
            } else {
                append(&sj->root, mktext("\\", 1));
                sj->pos++;
            }
            break;
        case '`': handle_backticks(sj); break;
        case '&': {
            uint32_t cp;
            size_t l = scan_entity(sj->s + sj->pos, sj->n - sj->pos, &cp);
            if (l) {
                char *t = arena_alloc(4);
                append(&sj->root, mktext(t, put_utf8(t, cp)));
                sj->pos += l;
            } else {
                append(&sj->root, mktext("&", 1));
                sj->pos++;
            }
            break;
        }
        case '*':
        case '_': handle_delim(sj, c); break;
        case '[': {
            inl *t = mktext("[", 1);
            append(&sj->root, t);
            sj->pos++;
            push_bracket(sj, false, t);
            break;
        }
        case '!':
            if (sj->pos + 1 < sj->n && sj->s[sj->pos + 1] == '[') {
                inl *t = mktext("![", 2);
                append(&sj->root, t);
                sj->pos += 2;
                push_bracket(sj, true, t);
            } else {
                append(&sj->root, mktext("!", 1));
                sj->pos++;
            }
            break;
        case ']': handle_close_bracket(sj); break;
        case '<':
            if (!handle_autolink(sj)) {
                append(&sj->root, mktext("<", 1));
                sj->pos++;
            }
            break;
        default: {
            size_t st = sj->pos;
            while (sj->pos < sj->n && !SPECIAL[(unsigned char)sj->s[sj->pos]]) sj->pos++;
            size_t e = sj->pos;
            if (sj->pos < sj->n && sj->s[sj->pos] == '\n') {
                while (e > st && is_ws_char(sj->s[e - 1])) e--;
            }
            if (e > st) append(&sj->root, mktext(sj->s + st, e - st));
        }
        }
    }
    process_emphasis(sj, 0);
}

/* ---- mdast output ----------------------------------------------------- */

#define PUT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)

/* True if emphasis, strong, links and images nest more than MD_MAX_INLINE_DEPTH deep under x. */
static bool too_deep(const inl *x, int depth) {
    for (const inl *c = x->first; c; c = c->next) {
        if (c->t == I_EMPH || c->t == I_STRONG || c->t == I_LINK || c->t == I_IMAGE) {
            if (depth + 1 > MD_MAX_INLINE_DEPTH || too_deep(c, depth + 1)) return true;
        }
    }
    return false;
}

/* An image's alt: the plain text of its content, escaped. */
static void put_plain_text(buf_t *out, const inl *x) {
    for (const inl *c = x->first; c; c = c->next) {
        switch (c->t) {
        case I_TEXT:
        case I_CODE: json_write_chars(out, c->s, c->n); break;
        case I_SOFT:
        case I_HARD: PUT(out, "\\n"); break;
        default: put_plain_text(out, c);
        }
    }
}

static void put_title_and_url(buf_t *out, const inl *c, const char *type) {
    PUT(out, ",\"title\":");
    if (c->title) {
        json_write_string(out, c->title, strlen(c->title));
    } else {
        PUT(out, "null");
    }
    PUT(out, ",\"type\":\"");
    buf_puts(out, type);
    PUT(out, "\",\"url\":");
    json_write_string(out, c->url, strlen(c->url));
    buf_putc(out, '}');
}

/* The children of parent as a JSON array; adjacent text and soft breaks make one text node. */
static void put_children(buf_t *out, const inl *parent) {
    buf_putc(out, '[');
    bool first = true;
    for (const inl *c = parent->first; c;) {
        if (c->t == I_TEXT || c->t == I_SOFT) {
            const inl *end = c;
            size_t len = 0;
            for (; end && (end->t == I_TEXT || end->t == I_SOFT); end = end->next) len += end->t == I_SOFT ? 1 : end->n;
            if (len > 0) {
                if (!first) buf_putc(out, ',');
                first = false;
                PUT(out, "{\"type\":\"text\",\"value\":\"");
                for (; c != end; c = c->next) {
                    if (c->t == I_SOFT) {
                        PUT(out, "\\n");
                    } else {
                        json_write_chars(out, c->s, c->n);
                    }
                }
                PUT(out, "\"}");
            }
            c = end;
            continue;
        }
        if (!first) buf_putc(out, ',');
        first = false;
        switch (c->t) {
        case I_HARD: PUT(out, "{\"type\":\"break\"}"); break;
        case I_CODE:
            PUT(out, "{\"type\":\"inlineCode\",\"value\":");
            json_write_string(out, c->s, c->n);
            buf_putc(out, '}');
            break;
        case I_EMPH:
        case I_STRONG:
            PUT(out, "{\"children\":");
            put_children(out, c);
            if (c->t == I_EMPH) {
                PUT(out, ",\"type\":\"emphasis\"}");
            } else {
                PUT(out, ",\"type\":\"strong\"}");
            }
            break;
        case I_LINK:
            PUT(out, "{\"children\":");
            put_children(out, c);
            put_title_and_url(out, c, "link");
            break;
        case I_IMAGE:
            PUT(out, "{\"alt\":\"");
            put_plain_text(out, c);
            buf_putc(out, '"');
            put_title_and_url(out, c, "image");
            break;
        default: break;
        }
        c = c->next;
    }
    buf_putc(out, ']');
}

bool md_write_inlines(buf_t *out, const char *text, size_t n, const refmap *refs) {
    /* Final spaces are stripped before inline parsing. */
    while (n > 0 && is_ws_char(text[n - 1])) n--;
    subject sj;
    memset(&sj, 0, sizeof sj);
    sj.s = text;
    sj.n = n;
    sj.refs = refs;
    for (int k = 0; k < 3; k++) sj.title_fail[k] = SIZE_MAX;
    parse_inlines(&sj);
    if (too_deep(&sj.root, 0)) return false;
    put_children(out, &sj.root);
    return true;
}
