/* Process, memory, buffer, formatting, UTF-8 and validation-error helpers. */
#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *g_task_name = "task";

/* ---- process ---------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            _Exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

_Noreturn void die(const char *msg) {
    write_all(2, g_task_name, strlen(g_task_name));
    write_all(2, ": ", 2);
    write_all(2, msg, strlen(msg));
    write_all(2, "\n", 1);
    _Exit(1);
}

_Noreturn void emit_and_exit(const char *p, size_t n, int code) {
    write_all(1, p, n);
    _Exit(code);
}

char *read_stdin(size_t *len) {
    /* Grow to at most MAX_INPUT_BYTES + 1: reading that extra byte proves the input is too large. */
    size_t cap = 64 * 1024, n = 0;
    char *p = xrealloc(NULL, cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap > MAX_INPUT_BYTES) {
                errs_add("", "max_length", sfmt("input is larger than %z bytes", (size_t)MAX_INPUT_BYTES));
                errs_emit_exit("");
            }
            cap = cap * 2 > MAX_INPUT_BYTES + 1 ? MAX_INPUT_BYTES + 1 : cap * 2;
            p = xrealloc(p, cap + 1);
        }
        ssize_t r = read(0, p + n, cap - n);
        if (r < 0) {
            die("cannot read stdin");
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (n > MAX_INPUT_BYTES) {
        errs_add("", "max_length", sfmt("input is larger than %z bytes", (size_t)MAX_INPUT_BYTES));
        errs_emit_exit("");
    }
    p[n] = '\0';
    *len = n;
    return p;
}

/* ---- memory ----------------------------------------------------------- */

static char *arena_cur, *arena_end;

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        die("out of memory");
    }
    return q;
}

void *arena_alloc(size_t n) {
    n = (n + 7u) & ~(size_t)7u;
    if ((size_t)(arena_end - arena_cur) < n) {
        size_t chunk = n > 60 * 1024 ? n : 60 * 1024;
        arena_cur = xrealloc(NULL, chunk);
        arena_end = arena_cur + chunk;
    }
    void *r = arena_cur;
    arena_cur += n;
    return r;
}

char *arena_strndup(const char *s, size_t n) {
    char *r = arena_alloc(n + 1);
    if (n) {
        memcpy(r, s, n);
    }
    r[n] = '\0';
    return r;
}

/* ---- buffer ----------------------------------------------------------- */

void buf_reserve(buf_t *b, size_t extra) {
    if (b->cap - b->len >= extra && b->p != NULL) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            die("buffer too large");
        }
        cap *= 2;
    }
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void buf_put(buf_t *b, const void *s, size_t n) {
    buf_reserve(b, n);
    if (n) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
}

void buf_puts(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_putint(buf_t *b, int64_t v) {
    char tmp[24];
    int i = 24;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        tmp[--i] = '-';
    }
    buf_put(b, tmp + i, (size_t)(24 - i));
}

void buf_pututf8(buf_t *b, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_put(b, t, n);
}

static void buf_vfmt(buf_t *b, const char *fmt, va_list ap) {
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            buf_putc(b, *f);
            continue;
        }
        f++;
        switch (*f) {
        case 's': buf_puts(b, va_arg(ap, const char *)); break;
        case 'S': {
            const char *s = va_arg(ap, const char *);
            size_t n = va_arg(ap, size_t);
            buf_put(b, s, n);
            break;
        }
        case 'd': buf_putint(b, va_arg(ap, int)); break;
        case 'D': buf_putint(b, va_arg(ap, int64_t)); break;
        case 'z': buf_putint(b, (int64_t)va_arg(ap, size_t)); break;
        case 'c': buf_putc(b, (char)va_arg(ap, int)); break;
        case '%': buf_putc(b, '%'); break;
        default: die("bad format string");
        }
    }
}

void buf_fmt(buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vfmt(b, fmt, ap);
    va_end(ap);
}

char *sfmt(const char *fmt, ...) {
    buf_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    buf_vfmt(&b, fmt, ap);
    va_end(ap);
    char *r = arena_strndup(b.p ? b.p : "", b.len);
    free(b.p);
    return r;
}

/* ---- UTF-8 ------------------------------------------------------------ */

int utf8_valid_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) {
            return 0;
        }
        if (c == 0xE0 && s[1] < 0xA0) {
            return 0; /* overlong */
        }
        if (c == 0xED && s[1] >= 0xA0) {
            return 0; /* surrogate */
        }
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) {
            return 0;
        }
        if (c == 0xF0 && s[1] < 0x90) {
            return 0; /* overlong */
        }
        if (c == 0xF4 && s[1] >= 0x90) {
            return 0; /* > U+10FFFF */
        }
        return 4;
    }
    return 0;
}

uint32_t utf8_decode(const unsigned char *s, size_t n, int *len) {
    unsigned c = s[0];
    if (c < 0x80 || n < 2) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    }
    if (c < 0xF0 || n < 4) {
        *len = n < 3 ? 1 : 3;
        return n < 3 ? c : ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    }
    *len = 4;
    return ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
}

size_t utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    return c;
}

/* ---- validation errors ------------------------------------------------ */

typedef struct {
    const char *field, *constraint, *message;
} verr;

static verr g_errs[MAX_ERRORS];
static size_t g_nerrs;

void errs_add(const char *field, const char *constraint, const char *message) {
    if (g_nerrs == MAX_ERRORS) {
        return;
    }
    g_errs[g_nerrs].field = arena_strndup(field, strlen(field));
    g_errs[g_nerrs].constraint = arena_strndup(constraint, strlen(constraint));
    g_errs[g_nerrs].message = arena_strndup(message, strlen(message));
    g_nerrs++;
}

size_t errs_count(void) { return g_nerrs; }

_Noreturn void errs_emit_exit(const char *file_path) {
    /* Stable insertion sort by field bytes: at most MAX_ERRORS entries. */
    for (size_t i = 1; i < g_nerrs; i++) {
        verr e = g_errs[i];
        size_t j = i;
        while (j > 0 && strcmp(g_errs[j - 1].field, e.field) > 0) {
            g_errs[j] = g_errs[j - 1];
            j--;
        }
        g_errs[j] = e;
    }
    jval *list = jarr();
    for (size_t i = 0; i < g_nerrs; i++) {
        jval *o = jobj();
        jobj_put(o, "constraint", jstrz(g_errs[i].constraint));
        jobj_put(o, "field", jstrz(g_errs[i].field));
        jobj_put(o, "file_path", jstrz(file_path));
        jobj_put(o, "message", jstrz(g_errs[i].message));
        jarr_push(list, o);
    }
    jval *doc = jobj();
    jobj_put(doc, "errors", list);
    buf_t out = {0};
    json_write(&out, doc);
    emit_and_exit(out.p, out.len, EXIT_REJECTED);
}

static bool is_simple_key(const char *k, size_t n) {
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

void path_key(buf_t *b, const char *key, size_t klen) {
    if (is_simple_key(key, klen)) {
        if (b->len) {
            buf_putc(b, '.');
        }
        buf_put(b, key, klen);
    } else {
        buf_putc(b, '[');
        buf_put(b, key, klen);
        buf_putc(b, ']');
    }
}

void path_index(buf_t *b, size_t i) {
    buf_putc(b, '[');
    buf_putint(b, (int64_t)i);
    buf_putc(b, ']');
}

char *path_str(const buf_t *b) { return arena_strndup(b->p ? b->p : "", b->len); }
