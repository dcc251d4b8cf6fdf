/*
 * Shared runtime of the reference WASI task modules.
 *
 * Everything a task needs to honour the module contract (tasks/README.md):
 * a bump arena, a growable byte buffer, a tiny formatter (no printf: it
 * would drag float formatting into every module), a bounded JSON parser to
 * a tree, the canonical JSON writer and GitStore's validation-error document.
 *
 * Memory is never freed: a task runs once and exits. Allocation failure is
 * reported on stderr with exit code 1, never as a trap.
 */
#ifndef GS_COMMON_H
#define GS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Exit code for "the input was rejected"; stdout holds the errors document. */
#define EXIT_REJECTED 65
/* Deepest JSON nesting accepted on stdin (objects and arrays both count). */
#define JSON_MAX_DEPTH 128
/* Largest stdin accepted, in bytes (markdown-compile needs at most ~15x that: bench/fuel.py). */
#define MAX_INPUT_BYTES (8u * 1024u * 1024u)
/* Errors beyond this many are dropped (the first ones are kept). */
#define MAX_ERRORS 100
/* Largest integer emitted as a JSON number (2^53 - 1, exact in every language). */
#define MAX_SAFE_INT INT64_C(9007199254740991)

/* ---- process ---------------------------------------------------------- */

/* Writes "<task>: <msg>" to stderr and exits 1. */
_Noreturn void die(const char *msg);
/* The task name used as the stderr prefix (set once by main). */
extern const char *g_task_name;
/*
 * Reads all of stdin into memory of its own (NUL-terminated, writable: the
 * JSON parser decodes strings in place); exits 65 (max_length) beyond
 * MAX_INPUT_BYTES.
 */
char *read_stdin(size_t *len);
/* Writes bytes to stdout and exits with code (flushes; dies on write errors). */
_Noreturn void emit_and_exit(const char *p, size_t n, int code);

/* ---- memory ----------------------------------------------------------- */

/*
 * The bump arena: 8-byte aligned blocks, freed all at once. arena_mark /
 * arena_release free everything allocated since the mark (scratch memory
 * of one step, e.g. the inlines of one paragraph).
 */
void *arena_alloc_slow(size_t n);
/* The arena's free space (exposed only for arena_alloc's inline fast path). */
extern char *g_arena_cur, *g_arena_end;
static inline void *arena_alloc(size_t n) {
    n = (n + 7u) & ~(size_t)7u;
    if (n > 1024 || (size_t)(g_arena_end - g_arena_cur) < n) return arena_alloc_slow(n);
    void *r = g_arena_cur;
    g_arena_cur += n;
    return r;
}
char *arena_strndup(const char *s, size_t n); /* NUL-terminated copy */
typedef struct {
    void *chunk, *big;
    char *cur;
} arena_pos;
arena_pos arena_mark(void);
void arena_release(arena_pos mark);

/* malloc/realloc that die on failure; xrealloc grows by copying (see common.c). */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
/* Fresh linear memory for one large region that lives until exit (never freed). */
void *page_alloc(size_t n);

/* ---- growable buffer ---------------------------------------------------- */

typedef struct bufpage bufpage;

typedef struct {
    char *p;
    size_t len, cap;
    bufpage *pages; /* paged buffers only (buf_paged): the filled pages before p */
} buf_t;

/* Buffers hold bytes with a length; they are not NUL-terminated. */
void buf_grow(buf_t *b, size_t extra); /* the slow path of buf_reserve */
static inline void buf_reserve(buf_t *b, size_t extra) {
    if (b->cap - b->len < extra || b->p == NULL) buf_grow(b, extra);
}
/*
 * Makes the empty buffer b paged: when full it moves on to a fresh page
 * instead of growing by copying, so it never holds more than its bytes plus
 * one page. Only appends are possible (p addresses the current page); write
 * it with buf_emit_and_exit, never free it.
 */
void buf_paged(buf_t *b);
/* Writes the whole buffer (paged or not) to stdout and exits with code. */
_Noreturn void buf_emit_and_exit(const buf_t *b, int code);
static inline void buf_put(buf_t *b, const void *s, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
}
static inline void buf_putc(buf_t *b, char c) {
    if (b->cap - b->len < 1) buf_grow(b, 1);
    b->p[b->len++] = c;
}
void buf_puts(buf_t *b, const char *s);
void buf_putint(buf_t *b, int64_t v);
void buf_pututf8(buf_t *b, uint32_t cp);
/*
 * Minimal formatter: %s (C string), %S (const char *, size_t), %d (int),
 * %D (int64_t), %z (size_t), %c (int as byte), %% .
 */
void buf_fmt(buf_t *b, const char *fmt, ...);
/* Arena copy of the formatted text, NUL-terminated. */
char *sfmt(const char *fmt, ...);

/* ---- word-at-a-time byte tests ------------------------------------------ */

/*
 * Fuel is charged per instruction, so hot scans test eight bytes at a time:
 * load a word with memcpy (one unaligned i64.load), test it with these.
 */
#define WORD_ONES UINT64_C(0x0101010101010101)
#define WORD_HIGHS UINT64_C(0x8080808080808080)
/* Nonzero if some byte of the 64-bit word w is below c (c <= 0x80). */
#define WORD_HAS_BELOW(w, c) (((w) - WORD_ONES * (c)) & ~(w) & WORD_HIGHS)
/* Nonzero if some byte of w equals c. */
#define WORD_HAS(w, c) WORD_HAS_BELOW((w) ^ (WORD_ONES * (uint8_t)(c)), 1)

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
int utf8_valid_seq(const unsigned char *s, size_t n);
/* Decodes one code point of already-validated UTF-8; *len receives its size. */
uint32_t utf8_decode(const unsigned char *s, size_t n, int *len);
/* Number of code points in validated UTF-8. */
size_t utf8_count(const char *s, size_t n);

/* ---- bytes ------------------------------------------------------------ */

/* Index of the first byte c at or after k in s[0, n), or n. */
size_t find_byte(const char *s, size_t k, size_t n, char c);
/* Byte order of two strings: as memcmp, then the shorter first. */
int bytes_cmp(const char *a, size_t an, const char *b, size_t bn);

/* ---- JSON values ------------------------------------------------------ */

typedef enum { J_NULL, J_FALSE, J_TRUE, J_INT, J_NUM, J_STR, J_ARR, J_OBJ } jtype_t;

typedef struct jval jval;
typedef struct {
    const char *key;
    size_t klen;
    jval *val;
} jmember;

struct jval {
    jtype_t t;
    size_t n;   /* J_STR/J_NUM: bytes; J_ARR/J_OBJ: element count */
    size_t cap; /* J_ARR/J_OBJ: allocated elements */
    int64_t i;  /* J_INT */
    union {
        const char *s; /* J_STR (not NUL-terminated in general), J_NUM raw text */
        jval **a;
        jmember *o;
    } u;
};

jval *jnull(void);
jval *jbool(bool b);
jval *jint(int64_t v);
jval *jstr(const char *s, size_t n); /* copies */
jval *jstr_ref(const char *s, size_t n); /* does not copy: s must outlive the value */
jval *jstrz(const char *s);          /* copies */
jval *jlit(const char *s);           /* does not copy: for string literals */
jval *jarr(void);
jval *jobj(void);
void jarr_push(jval *a, jval *v);
/* Appends a member; the caller guarantees the key is not present yet. */
void jobj_put(jval *o, const char *key, jval *v);
void jobj_putn(jval *o, const char *key, size_t klen, jval *v);
/* Sorts an object's members by their keys' bytes. */
void jobj_sort(jval *o);
jval *jobj_get(const jval *o, const char *key);
bool jstr_eq(const jval *v, const char *s);

/* Result of parsing untrusted JSON. On failure `constraint` and `message` say why. */
typedef struct {
    jval *value;
    const char *constraint; /* "syntax" or "max_depth" */
    const char *message;
} json_parse_result;

/*
 * Parses exactly one JSON document (RFC 8259) with at most JSON_MAX_DEPTH
 * nesting. Strings must be valid UTF-8 (lone surrogate escapes are rejected),
 * object keys must be unique. Integers that fit int64 become J_INT; any other
 * number is kept verbatim as J_NUM.
 *
 * Strings are decoded in place: string values and keys point into s, which
 * must stay alive (and unchanged) as long as the tree is used.
 */
json_parse_result json_parse(char *s, size_t n);

/*
 * Canonical JSON: keys sorted by their UTF-8 bytes, no whitespace, minimal
 * string escapes. Sorts object members in place. Returns false (and writes
 * nothing useful) if the tree holds a J_NUM, which has no canonical form.
 */
bool json_write(buf_t *b, jval *v);
void json_write_string(buf_t *b, const char *s, size_t n);
/* The escaped content of a JSON string, without the quotes (pieces concatenate). */
void json_write_chars(buf_t *b, const char *s, size_t n);
/* Index of the first byte at or after i in s[0, n) that is '"', '\\' or a control character. */
size_t json_plain_run(const char *s, size_t i, size_t n);
/* True if the tree contains no J_NUM; *path receives the first offender. */
bool json_all_integers(const jval *v, buf_t *path);

/* ---- validation errors ------------------------------------------------ */

/* Records one validation error (strings are copied). */
void errs_add(const char *field, const char *constraint, const char *message);
size_t errs_count(void);
/*
 * Writes {"errors":[...]} sorted by field (stable: same-field errors keep
 * the order they were found in) and exits 65.
 */
_Noreturn void errs_emit_exit(const char *file_path);

/* Appends ".key" or "[key]" (keys outside [A-Za-z0-9_-]) to a field path. */
void path_key(buf_t *b, const char *key, size_t klen);
void path_index(buf_t *b, size_t i);
/* NUL-terminated arena copy of a path buffer. */
char *path_str(const buf_t *b);

#endif
