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

/* Exit code for "the input was rejected"; stdout holds the errors document. */
#define EXIT_REJECTED 65
/* Deepest JSON nesting accepted on stdin (objects and arrays both count). */
#define JSON_MAX_DEPTH 128
/* Largest stdin accepted, in bytes (the 64 MiB sandbox leaves room for ~10x working memory). */
#define MAX_INPUT_BYTES (4u * 1024u * 1024u)
/* Errors beyond this many are dropped (the first ones are kept). */
#define MAX_ERRORS 100
/* Largest integer emitted as a JSON number (2^53 - 1, exact in every language). */
#define MAX_SAFE_INT INT64_C(9007199254740991)

/* ---- process ---------------------------------------------------------- */

/* Writes "<task>: <msg>" to stderr and exits 1. */
_Noreturn void die(const char *msg);
/* The task name used as the stderr prefix (set once by main). */
extern const char *g_task_name;
/* Reads all of stdin; exits 65 (max_length) beyond MAX_INPUT_BYTES. */
char *read_stdin(size_t *len);
/* Writes bytes to stdout and exits with code (flushes; dies on write errors). */
_Noreturn void emit_and_exit(const char *p, size_t n, int code);

/* ---- memory ----------------------------------------------------------- */

void *arena_alloc(size_t n);
char *arena_strndup(const char *s, size_t n); /* NUL-terminated copy */
void *xrealloc(void *p, size_t n);

/* ---- growable buffer ---------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

/* Buffers hold bytes with a length; they are not NUL-terminated. */
void buf_reserve(buf_t *b, size_t extra);
void buf_put(buf_t *b, const void *s, size_t n);
static inline void buf_putc(buf_t *b, char c) {
    if (b->cap - b->len < 1) buf_reserve(b, 1);
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

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
int utf8_valid_seq(const unsigned char *s, size_t n);
/* Decodes one code point of already-validated UTF-8; *len receives its size. */
uint32_t utf8_decode(const unsigned char *s, size_t n, int *len);
/* Number of code points in validated UTF-8. */
size_t utf8_count(const char *s, size_t n);

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
jval *jstrz(const char *s);          /* copies */
jval *jlit(const char *s);           /* does not copy: for string literals */
jval *jarr(void);
jval *jobj(void);
void jarr_push(jval *a, jval *v);
/* Appends a member; the caller guarantees the key is not present yet. */
void jobj_put(jval *o, const char *key, jval *v);
void jobj_putn(jval *o, const char *key, size_t klen, jval *v);
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
 */
json_parse_result json_parse(const char *s, size_t n);

/*
 * Canonical JSON: keys sorted by their UTF-8 bytes, no whitespace, minimal
 * string escapes. Sorts object members in place. Returns false (and writes
 * nothing useful) if the tree holds a J_NUM, which has no canonical form.
 */
bool json_write(buf_t *b, jval *v);
void json_write_string(buf_t *b, const char *s, size_t n);
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
