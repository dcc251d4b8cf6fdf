/* Process, memory, buffer, formatting, UTF-8 and validation-error helpers. */
#include "common.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
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
    /*
     * Read into linear memory grown for it: nothing else grows memory while
     * reading, so each new region follows the last and the buffer grows in
     * place, without copying. Reading one byte past MAX_INPUT_BYTES proves
     * the input is too large; one byte more holds the NUL.
     */
    const size_t step = 256 * 1024, limit = MAX_INPUT_BYTES + 2;
    size_t cap = 64 * 1024, n = 0;
    char *p = page_alloc(cap);
    for (;;) {
        if (cap - n < 2) {
            if (cap >= limit) break;
            size_t more = cap + step > limit ? limit - cap : step;
            char *q = page_alloc(more);
            if (q != p + cap) {
                /* Not adjacent after all: move to one region. */
                q = page_alloc(cap + more);
                memcpy(q, p, n);
                p = q;
            }
            cap += (more + 65535) / 65536 * 65536;
        }
        ssize_t r = read(0, p + n, cap - n - 1);
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

/*
 * The toolchain's malloc (zig's libc) rounds every block, plus 20 bytes of
 * header, up to a power of two and never splits or merges blocks; its
 * realloc copies byte by byte (about 15 fuel a byte). So buffers grow to
 * capacities of 2^k - 32 bytes (exactly filling a block) by malloc, memcpy
 * (one bulk copy) and free, and large regions that live until exit come
 * straight from memory.grow (page_alloc), without the rounding.
 */
#define BLOCK_OVERHEAD 32u
#define WASM_PAGE 65536u

void *xmalloc(size_t n) {
    void *q = malloc(n ? n : 1);
    if (q == NULL) {
        die("out of memory");
    }
    return q;
}

void *xrealloc(void *p, size_t n) {
    if (p == NULL) {
        return xmalloc(n);
    }
    size_t old = malloc_usable_size(p);
    if (n <= old) {
        return p;
    }
    void *q = xmalloc(n);
    memcpy(q, p, old);
    free(p);
    return q;
}

/* Smallest capacity 2^k - BLOCK_OVERHEAD (k >= 6) holding at least n bytes. */
static size_t block_capacity(size_t n) {
    size_t block = 64;
    while (block - BLOCK_OVERHEAD < n) {
        if (block > SIZE_MAX / 2) {
            die("buffer too large");
        }
        block *= 2;
    }
    return block - BLOCK_OVERHEAD;
}

void *page_alloc(size_t n) {
    size_t pages = n / WASM_PAGE + (n % WASM_PAGE != 0);
    size_t old = __builtin_wasm_memory_grow(0, pages ? pages : 1);
    if (old == SIZE_MAX) {
        die("out of memory");
    }
    return (void *)(old * WASM_PAGE);
}

/*
 * The arena: a chain of 64 KiB chunks (blocks the allocator reuses once
 * released), plus a chain of dedicated blocks for requests too large to
 * share a chunk.
 */
typedef struct arena_chunk arena_chunk;
struct arena_chunk {
    arena_chunk *prev;
    uint64_t pad; /* keeps the data 8-byte aligned */
};

#define ARENA_CHUNK (WASM_PAGE - BLOCK_OVERHEAD)
#define ARENA_BIG (ARENA_CHUNK / 4)

static arena_chunk *arena_chunks, *arena_bigs;
char *g_arena_cur, *g_arena_end;

void *arena_alloc_slow(size_t n) {
    n = (n + 7u) & ~(size_t)7u;
    if (n > ARENA_BIG) {
        arena_chunk *c = xmalloc(block_capacity(sizeof *c + n));
        c->prev = arena_bigs;
        arena_bigs = c;
        return c + 1;
    }
    if ((size_t)(g_arena_end - g_arena_cur) < n) {
        arena_chunk *c = xmalloc(ARENA_CHUNK);
        c->prev = arena_chunks;
        arena_chunks = c;
        g_arena_cur = (char *)(c + 1);
        g_arena_end = (char *)c + ARENA_CHUNK;
    }
    void *r = g_arena_cur;
    g_arena_cur += n;
    return r;
}

arena_pos arena_mark(void) { return (arena_pos){arena_chunks, arena_bigs, g_arena_cur}; }

void arena_release(arena_pos mark) {
    while (arena_chunks != mark.chunk) {
        arena_chunk *c = arena_chunks;
        arena_chunks = c->prev;
        free(c);
    }
    while (arena_bigs != mark.big) {
        arena_chunk *c = arena_bigs;
        arena_bigs = c->prev;
        free(c);
    }
    g_arena_cur = mark.cur;
    g_arena_end = arena_chunks ? (char *)arena_chunks + ARENA_CHUNK : NULL;
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

/* A filled page of a paged buffer. */
struct bufpage {
    bufpage *prev;
    const char *p;
    size_t len;
};

/* Pages start at 64 KiB and double up to 1 MiB: small outputs stay small. */
#define PAGE_MIN (64u * 1024u)
#define PAGE_MAX (1024u * 1024u)

/* The head of a paged buffer's page chain before its first page is filled. */
static bufpage no_pages;

void buf_paged(buf_t *b) {
    b->pages = &no_pages;
    b->p = page_alloc(PAGE_MIN);
    b->len = 0;
    b->cap = PAGE_MIN;
}

static void buf_next_page(buf_t *b, size_t extra) {
    /* Not in the arena: callers release their arena scratch while writing. */
    bufpage *done = xmalloc(sizeof *done);
    done->prev = b->pages;
    done->p = b->p;
    done->len = b->len;
    b->pages = done;
    size_t size = b->cap * 2 > PAGE_MAX ? PAGE_MAX : b->cap * 2;
    if (size < extra) {
        size = (extra + WASM_PAGE - 1) / WASM_PAGE * WASM_PAGE;
    }
    b->p = page_alloc(size);
    b->len = 0;
    b->cap = size;
}

void buf_grow(buf_t *b, size_t extra) {
    if (b->cap - b->len >= extra && b->p != NULL) {
        return;
    }
    if (b->pages != NULL) {
        buf_next_page(b, extra);
        return;
    }
    if (extra > SIZE_MAX / 2 - b->len) {
        die("buffer too large");
    }
    size_t cap = block_capacity(b->len + extra > b->cap * 2 ? b->len + extra : b->cap * 2);
    char *p = xmalloc(cap);
    if (b->len) {
        memcpy(p, b->p, b->len);
    }
    free(b->p);
    b->p = p;
    b->cap = cap;
}

_Noreturn void buf_emit_and_exit(const buf_t *b, int code) {
    if (b->pages == NULL) {
        emit_and_exit(b->p, b->len, code);
    }
    /* One writev of every page, so the host sees one write of the whole output. */
    size_t count = 1;
    for (const bufpage *g = b->pages; g != &no_pages; g = g->prev) count++;
    struct iovec *iov = arena_alloc(count * sizeof *iov);
    size_t k = count;
    iov[--k] = (struct iovec){.iov_base = b->p, .iov_len = b->len};
    for (const bufpage *g = b->pages; g != &no_pages; g = g->prev) {
        iov[--k] = (struct iovec){.iov_base = (void *)g->p, .iov_len = g->len};
    }
    while (k < count) {
        int batch = count - k > 1024 ? 1024 : (int)(count - k);
        ssize_t w = writev(1, iov + k, batch);
        if (w < 0) {
            _Exit(1);
        }
        /* Skip what was written; finish a partly written page with write_all. */
        size_t left = (size_t)w;
        while (k < count && left >= iov[k].iov_len) {
            left -= iov[k].iov_len;
            k++;
        }
        if (k < count && left > 0) {
            write_all(1, (const char *)iov[k].iov_base + left, iov[k].iov_len - left);
            k++;
        }
    }
    _Exit(code);
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

/* ---- bytes ------------------------------------------------------------ */

size_t find_byte(const char *s, size_t k, size_t n, char c) {
    while (n - k >= 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        if (WORD_HAS(w, c)) break;
        k += 8;
    }
    while (k < n && s[k] != c) k++;
    return k;
}

int bytes_cmp(const char *a, size_t an, const char *b, size_t bn) {
    size_t n = an < bn ? an : bn, k = 0;
    while (n - k >= 8) {
        uint64_t x, y;
        memcpy(&x, a + k, 8);
        memcpy(&y, b + k, 8);
        if (x != y) break;
        k += 8;
    }
    for (; k < n; k++) {
        if (a[k] != b[k]) return (unsigned char)a[k] < (unsigned char)b[k] ? -1 : 1;
    }
    return (an > bn) - (an < bn);
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
