/*
 * catalog-enrich: deterministic enrichment of a compiled catalog resource.
 *
 * stdin:  {"compiled":<markdown-compile output>,"parameters":{}}
 * stdout: {"enrichment":{content_digest,links,price,slug,tags,word_count},
 *          "resource":{apiVersion,kind,metadata}}
 * exit 65 with validation errors (fields such as spec.price.amount).
 */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "../common/sha256.h"

/* ISO 4217 codes accepted, with their minor-unit exponents. */
static const struct {
    char code[4];
    int exponent;
} CURRENCIES[] = {
    {"AED", 2}, {"ARS", 2}, {"AUD", 2}, {"BGN", 2}, {"BHD", 3}, {"BRL", 2}, {"CAD", 2}, {"CHF", 2},
    {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"CZK", 2}, {"DKK", 2}, {"EGP", 2}, {"EUR", 2}, {"GBP", 2},
    {"HKD", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"ISK", 0}, {"JOD", 3}, {"JPY", 0},
    {"KRW", 0}, {"KWD", 3}, {"MAD", 2}, {"MXN", 2}, {"MYR", 2}, {"NGN", 2}, {"NOK", 2}, {"NZD", 2},
    {"OMR", 3}, {"PEN", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2}, {"QAR", 2}, {"RON", 2}, {"RSD", 2},
    {"SAR", 2}, {"SEK", 2}, {"SGD", 2}, {"THB", 2}, {"TND", 3}, {"TRY", 2}, {"TWD", 2}, {"UAH", 2},
    {"UGX", 0}, {"USD", 2}, {"UYU", 2}, {"VND", 0}, {"XAF", 0}, {"XOF", 0}, {"ZAR", 2},
};

/* ---- slug ------------------------------------------------------------- */

/* ASCII spelling of a Latin-1 / Latin Extended-A letter, or NULL. */
static const char *translit(uint32_t cp) {
    static const char *const LATIN1[64] = {
        /* C0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
        /* D0 */ "d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "ss",
        /* E0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
        /* F0 */ "d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "y",
    };
    if (cp >= 0xC0 && cp <= 0xFF) return LATIN1[cp - 0xC0];
    switch (cp) {
    case 0x152:
    case 0x153: return "oe";
    case 0x160:
    case 0x161: return "s";
    case 0x17D:
    case 0x17E: return "z";
    case 0x178: return "y";
    default: return NULL;
    }
}

/* Lower-case ASCII letters and digits, other runs collapsed to '-', trimmed. */
static void slugify(buf_t *out, const char *s, size_t n) {
    bool dash = false;
    for (size_t k = 0; k < n;) {
        int l;
        uint32_t cp = utf8_decode((const unsigned char *)s + k, n - k, &l);
        k += (size_t)l;
        const char *t = NULL;
        char one[2] = {0, 0};
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
            one[0] = (char)cp;
            t = one;
        } else if (cp >= 'A' && cp <= 'Z') {
            one[0] = (char)(cp + 32);
            t = one;
        } else {
            t = translit(cp);
        }
        if (t == NULL) {
            dash = out->len > 0;
            continue;
        }
        if (dash) buf_putc(out, '-');
        dash = false;
        buf_puts(out, t);
    }
}

/* ---- tags ------------------------------------------------------------- */

static int str_cmp(const void *a, const void *b) {
    const jval *x = *(const jval *const *)a, *y = *(const jval *const *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->u.s, y->u.s, n);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* Sorts string values bytewise and drops duplicates. */
static jval *sorted_unique(jval *arr) {
    if (arr->n > 1) qsort(arr->u.a, arr->n, sizeof(jval *), str_cmp);
    jval *out = jarr();
    for (size_t k = 0; k < arr->n; k++) {
        if (k > 0 && str_cmp(&arr->u.a[k - 1], &arr->u.a[k]) == 0) continue;
        jarr_push(out, arr->u.a[k]);
    }
    return out;
}

/* Lower-cases ASCII and Latin-1 letters, trims ASCII white space. */
static jval *normalize_tag(const jval *v) {
    size_t a = 0, e = v->n;
    const char *s = v->u.s;
    while (a < e && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) a++;
    while (e > a && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r')) e--;
    buf_t b = {0};
    for (size_t k = a; k < e;) {
        int l;
        uint32_t cp = utf8_decode((const unsigned char *)s + k, e - k, &l);
        if (cp >= 'A' && cp <= 'Z') {
            buf_putc(&b, (char)(cp + 32));
        } else if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) {
            buf_pututf8(&b, cp + 32);
        } else {
            buf_put(&b, s + k, (size_t)l);
        }
        k += (size_t)l;
    }
    jval *r = jstr(b.p ? b.p : "", b.len);
    free(b.p);
    return r;
}

static jval *tags(const jval *spec) {
    const jval *t = jobj_get(spec, "tags");
    jval *all = jarr();
    if (t == NULL || t->t == J_NULL) return all;
    if (t->t != J_ARR) {
        errs_add("spec.tags", "type", "spec.tags must be a list of strings");
        return all;
    }
    for (size_t k = 0; k < t->n; k++) {
        const jval *v = t->u.a[k];
        if (v->t != J_STR) {
            errs_add(sfmt("spec.tags[%z]", k), "type", sfmt("spec.tags[%z] must be a string", k));
            continue;
        }
        jval *norm = normalize_tag(v);
        if (norm->n > 0) jarr_push(all, norm);
    }
    return sorted_unique(all);
}

/* ---- price ------------------------------------------------------------ */

static jval *price(const jval *spec) {
    const jval *p = jobj_get(spec, "price");
    if (p == NULL || p->t == J_NULL) return jnull();
    if (p->t != J_OBJ) {
        errs_add("spec.price", "type", "spec.price must be a mapping with amount and currency");
        return NULL;
    }
    const jval *cur = jobj_get(p, "currency");
    int exponent = -1;
    if (cur == NULL || cur->t == J_NULL) {
        errs_add("spec.price.currency", "required", "spec.price.currency is required (an ISO 4217 code such as EUR)");
    } else if (cur->t != J_STR) {
        errs_add("spec.price.currency", "type", "spec.price.currency must be a string");
    } else {
        for (size_t k = 0; k < sizeof CURRENCIES / sizeof CURRENCIES[0]; k++) {
            if (jstr_eq(cur, CURRENCIES[k].code)) exponent = CURRENCIES[k].exponent;
        }
        if (exponent < 0) {
            errs_add("spec.price.currency", "enum",
                     sfmt("spec.price.currency \"%S\" is not a supported ISO 4217 code (upper case, e.g. EUR)",
                          cur->u.s, cur->n));
        }
    }
    const jval *amt = jobj_get(p, "amount");
    const char *F = "spec.price.amount";
    int64_t major = 0;
    size_t frac_len = 0;
    const char *frac = NULL;
    if (amt == NULL || amt->t == J_NULL) {
        errs_add(F, "required", "spec.price.amount is required (a decimal string such as \"149.90\")");
        return NULL;
    }
    if (amt->t == J_INT) {
        if (amt->i < 0) {
            errs_add(F, "minimum", "spec.price.amount must not be negative");
            return NULL;
        }
        major = amt->i;
    } else if (amt->t == J_STR) {
        const char *s = amt->u.s;
        size_t n = amt->n, k = 0;
        if (n > 0 && s[0] == '-') {
            errs_add(F, "minimum", "spec.price.amount must not be negative");
            return NULL;
        }
        while (k < n && s[k] >= '0' && s[k] <= '9') k++;
        size_t int_len = k;
        if (k < n && s[k] == '.') {
            frac = s + k + 1;
            k++;
            while (k < n && s[k] >= '0' && s[k] <= '9') k++;
            frac_len = (size_t)(s + k - frac);
        }
        if (int_len == 0 || k != n || (frac != NULL && frac_len == 0)) {
            errs_add(F, "pattern", "spec.price.amount must be a decimal such as \"149.90\" (digits, optional '.' and fraction)");
            return NULL;
        }
        for (size_t d = 0; d < int_len; d++) {
            major = major * 10 + (s[d] - '0');
            if (major > MAX_SAFE_INT) {
                errs_add(F, "maximum", "spec.price.amount is too large");
                return NULL;
            }
        }
    } else {
        errs_add(F, "type", "spec.price.amount must be a decimal string (\"149.90\") or an integer");
        return NULL;
    }
    if (major > MAX_SAFE_INT) {
        errs_add(F, "maximum", "spec.price.amount is too large");
        return NULL;
    }
    if (exponent < 0) return NULL;
    if ((int)frac_len > exponent) {
        errs_add(F, "scale",
                 sfmt("spec.price.amount has %z fraction digits; %S allows at most %d", frac_len, cur->u.s, cur->n,
                      exponent));
        return NULL;
    }
    int64_t minor = major;
    for (int d = 0; d < exponent; d++) {
        int digit = (size_t)d < frac_len ? frac[d] - '0' : 0;
        if (minor > (MAX_SAFE_INT - digit) / 10) {
            errs_add(F, "maximum", "spec.price.amount in minor units exceeds 2^53-1");
            return NULL;
        }
        minor = minor * 10 + digit;
    }
    jval *o = jobj();
    jobj_put(o, "amount_minor", jint(minor));
    jobj_put(o, "currency", jstr(cur->u.s, cur->n));
    jobj_put(o, "exponent", jint(exponent));
    return o;
}

/* ---- body walk -------------------------------------------------------- */

static bool is_space_cp(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Letters and digits: ASCII alphanumerics and non-ASCII outside the punctuation blocks. */
static bool is_word_cp(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (c <= 0xBF || c == 0xD7 || c == 0xF7) return false;
    if (c >= 0x2000 && c <= 0x206F) return false;
    if (c >= 0x20A0 && c <= 0x20CF) return false;
    if (c >= 0x3000 && c <= 0x303F) return false;
    return true;
}

static int64_t count_words(const char *s, size_t n) {
    int64_t words = 0;
    bool in_run = false, has_word = false;
    for (size_t k = 0; k < n;) {
        int l;
        uint32_t cp = utf8_decode((const unsigned char *)s + k, n - k, &l);
        k += (size_t)l;
        if (is_space_cp(cp)) {
            if (in_run && has_word) words++;
            in_run = has_word = false;
        } else {
            in_run = true;
            has_word = has_word || is_word_cp(cp);
        }
    }
    if (in_run && has_word) words++;
    return words;
}

static void walk(const jval *v, int64_t *words, jval *links) {
    if (v->t == J_ARR) {
        for (size_t k = 0; k < v->n; k++) walk(v->u.a[k], words, links);
        return;
    }
    if (v->t != J_OBJ) return;
    const jval *type = jobj_get(v, "type");
    if (jstr_eq(type, "text") || jstr_eq(type, "inlineCode")) {
        const jval *val = jobj_get(v, "value");
        if (val != NULL && val->t == J_STR) *words += count_words(val->u.s, val->n);
    } else if (jstr_eq(type, "link") || jstr_eq(type, "image")) {
        const jval *url = jobj_get(v, "url");
        if (url != NULL && url->t == J_STR && url->n > 0) jarr_push(links, (jval *)url);
    }
    const jval *children = jobj_get(v, "children");
    if (children != NULL) walk(children, words, links);
}

int main(void) {
    g_task_name = "catalog-enrich";
    jval *input = read_input_object();
    compiled_doc d;
    if (!compiled_load(input, &d)) errs_emit_exit(d.file_path);

    /* The digest covers the compiled document exactly as the canonical writer emits it. */
    buf_t path = {0};
    buf_puts(&path, "compiled");
    if (!json_all_integers(d.compiled, &path)) {
        errs_add(path_str(&path), "type", sfmt("%s: non-integer numbers are not allowed in compiled output",
                                               path_str(&path)));
        errs_emit_exit(d.file_path);
    }
    buf_t canon = {0};
    json_write(&canon, d.compiled);
    char hex[65];
    sha256_hex(canon.p, canon.len, hex);

    jval *tag_list = tags(d.spec);
    jval *price_v = price(d.spec);

    const jval *title = jobj_get(d.spec, "title");
    buf_t slug = {0};
    if (title != NULL && title->t == J_STR) slugify(&slug, title->u.s, title->n);
    if (slug.len == 0) {
        const jval *name = jobj_get(d.metadata, "name");
        slugify(&slug, name->u.s, name->n);
    }

    int64_t words = 0;
    jval *links = jarr();
    walk(d.body, &words, links);

    if (errs_count() > 0) errs_emit_exit(d.file_path);

    jval *e = jobj();
    jobj_put(e, "content_digest", jstrz(sfmt("sha256:%s", hex)));
    jobj_put(e, "links", sorted_unique(links));
    jobj_put(e, "price", price_v);
    jobj_put(e, "slug", jstr(slug.p ? slug.p : "", slug.len));
    jobj_put(e, "tags", tag_list);
    jobj_put(e, "word_count", jint(words));
    jval *out = jobj();
    jobj_put(out, "enrichment", e);
    jobj_put(out, "resource", resource_identity(&d));
    emit_output(out);
}
