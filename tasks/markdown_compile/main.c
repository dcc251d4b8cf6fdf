/*
 * markdown-compile: a GitStore catalog markdown file to its resource and mdast body.
 *
 * stdin:  {"path":"products/widget.md","content":"<file text>","parameters":{}}
 * stdout: {"body":<mdast root>,"resource":{apiVersion,kind,metadata,spec},"source":{"path":...}}
 * exit 65 with GitStore validation errors when the file is not a valid resource.
 */
#include <string.h>

#include "mdc.h"

#define API_VERSION "catalog.gitstore.dev/v1beta1"
#define MAX_NAME 63

static const char *const KINDS[] = {"Product", "Variant", "Category", "Collection"};

static bool valid_name(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t k = 0; k < n; k++) {
        char c = s[k];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && k > 0 && k + 1 < n)) return false;
    }
    return true;
}

/* Checks a DNS-label style name; returns true if it is usable. */
static bool check_name(const jval *v, const char *field, bool required) {
    if (v == NULL || v->t == J_NULL) {
        if (required) errs_add(field, "required", sfmt("%s is required", field));
        return false;
    }
    if (v->t != J_STR) {
        errs_add(field, "type", sfmt("%s must be a string", field));
        return false;
    }
    bool ok = true;
    if (v->n > MAX_NAME) {
        errs_add(field, "max_length", sfmt("%s must be at most %d characters (got %z)", field, MAX_NAME, v->n));
        ok = false;
    }
    if (!valid_name(v->u.s, v->n)) {
        errs_add(field, "pattern",
                 sfmt("%s must consist of lower-case letters, digits and '-', and start and end with a letter or "
                      "digit (^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)",
                      field));
        ok = false;
    }
    return ok;
}

/* Labels and annotations: a mapping of strings, or absent. */
static jval *check_string_map(const jval *v, const char *field) {
    if (v == NULL || v->t == J_NULL) return jobj();
    if (v->t != J_OBJ) {
        errs_add(field, "type", sfmt("%s must be a mapping of strings", field));
        return NULL;
    }
    buf_t path = {0};
    for (size_t k = 0; k < v->n; k++) {
        if (v->u.o[k].val->t != J_STR) {
            path.len = 0;
            buf_puts(&path, field);
            path_key(&path, v->u.o[k].key, v->u.o[k].klen);
            errs_add(path_str(&path), "type", sfmt("%s must be a string (quote it)", path_str(&path)));
        }
    }
    return (jval *)v;
}

static jval *validate(const jval *doc) {
    jval *res = jobj();
    if (doc != NULL && doc->t != J_OBJ) {
        errs_add("frontmatter", "type", "frontmatter must be a mapping");
        return NULL;
    }
    if (jobj_get(doc, "status") != NULL) {
        errs_add("status", "forbidden",
                 "status is written by the control plane; files and agents propose spec only");
    }
    const jval *api = jobj_get(doc, "apiVersion");
    if (api == NULL || api->t == J_NULL) {
        errs_add("apiVersion", "required", "apiVersion is required (" API_VERSION ")");
    } else if (api->t != J_STR) {
        errs_add("apiVersion", "type", "apiVersion must be a string");
    } else if (!jstr_eq(api, API_VERSION)) {
        errs_add("apiVersion", "enum", "apiVersion must be " API_VERSION);
    }
    const jval *kind = jobj_get(doc, "kind");
    if (kind == NULL || kind->t == J_NULL) {
        errs_add("kind", "required", "kind is required (Product, Variant, Category or Collection)");
    } else if (kind->t != J_STR) {
        errs_add("kind", "type", "kind must be a string");
    } else {
        bool known = false;
        for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) known = known || jstr_eq(kind, KINDS[k]);
        if (!known) errs_add("kind", "enum", "kind must be one of Product, Variant, Category, Collection");
    }
    const jval *meta = jobj_get(doc, "metadata");
    jval *m = jobj();
    if (meta == NULL || meta->t == J_NULL) {
        errs_add("metadata", "required", "metadata is required");
    } else if (meta->t != J_OBJ) {
        errs_add("metadata", "type", "metadata must be a mapping");
    } else {
        const jval *name = jobj_get(meta, "name");
        if (check_name(name, "metadata.name", true)) jobj_put(m, "name", (jval *)name);
        const jval *ns = jobj_get(meta, "namespace");
        if (ns == NULL || ns->t == J_NULL) {
            jobj_put(m, "namespace", jstrz("default"));
        } else if (check_name(ns, "metadata.namespace", false)) {
            jobj_put(m, "namespace", (jval *)ns);
        }
        jval *labels = check_string_map(jobj_get(meta, "labels"), "metadata.labels");
        jval *ann = check_string_map(jobj_get(meta, "annotations"), "metadata.annotations");
        if (labels) jobj_put(m, "labels", labels);
        if (ann) jobj_put(m, "annotations", ann);
    }
    const jval *spec = jobj_get(doc, "spec");
    if (spec == NULL || spec->t == J_NULL) {
        errs_add("spec", "required", "spec is required (use spec: {} when there is nothing to say)");
    } else if (spec->t != J_OBJ) {
        errs_add("spec", "type", "spec must be a mapping");
    }
    if (errs_count() > 0) return NULL;
    jobj_put(res, "apiVersion", (jval *)api);
    jobj_put(res, "kind", (jval *)kind);
    jobj_put(res, "metadata", m);
    jobj_put(res, "spec", (jval *)spec);
    return res;
}

/* Index of the first '\r' or NUL at or after k in s[0, n). */
static size_t find_cr_or_nul(const char *s, size_t k, size_t n) {
    while (n - k >= 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        if ((WORD_HAS(w, '\r') | WORD_HAS(w, '\0')) != 0) break;
        k += 8;
    }
    while (k < n && s[k] != '\r' && s[k] != '\0') k++;
    return k;
}

/*
 * CRLF and CR become LF, NUL becomes U+FFFD, a leading BOM is dropped.
 * In place (s is the decoded input, which nothing else reads) unless there
 * is a NUL, the one change that makes the text longer.
 */
static char *normalize(char *s, size_t n, size_t *out_n) {
    size_t k = 0;
    if (n >= 3 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) k = 3;
    size_t first = find_cr_or_nul(s, k, n);
    if (first == n) {
        *out_n = n - k;
        return s + k;
    }
    size_t nuls = 0;
    for (size_t j = first; j < n; j = find_cr_or_nul(s, j + 1, n)) nuls += s[j] == '\0';
    char *out = nuls ? arena_alloc(n + 2 * nuls) : s;
    size_t w = 0;
    while (k < n) {
        size_t run = find_cr_or_nul(s, k, n);
        if (run > k) {
            memmove(out + w, s + k, run - k);
            w += run - k;
            k = run;
            if (k == n) break;
        }
        if (s[k] == '\r') {
            out[w++] = '\n';
            if (k + 1 < n && s[k + 1] == '\n') k++;
        } else {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
        k++;
    }
    *out_n = w;
    return out;
}

/* True if line [s, s+n) is "---" followed only by spaces or tabs. */
static bool is_marker(const char *s, size_t n) {
    if (n < 3 || memcmp(s, "---", 3) != 0) return false;
    for (size_t k = 3; k < n; k++) {
        if (s[k] != ' ' && s[k] != '\t') return false;
    }
    return true;
}

int main(void) {
    g_task_name = "markdown-compile";
    size_t len;
    char *in = read_stdin(&len);
    json_parse_result pr = json_parse(in, len);
    if (pr.value == NULL) {
        errs_add("", pr.constraint, pr.message);
        errs_emit_exit("");
    }
    jval *input = pr.value;
    if (input->t != J_OBJ) {
        errs_add("", "type", "input must be a JSON object");
        errs_emit_exit("");
    }
    const jval *path = jobj_get(input, "path");
    const jval *content = jobj_get(input, "content");
    const char *file_path = "";
    if (path == NULL) {
        errs_add("path", "required", "path is required");
    } else if (path->t != J_STR) {
        errs_add("path", "type", "path must be a string");
    } else {
        file_path = arena_strndup(path->u.s, path->n);
    }
    if (content == NULL) {
        errs_add("content", "required", "content is required");
    } else if (content->t != J_STR) {
        errs_add("content", "type", "content must be a string");
    }
    if (errs_count() > 0) errs_emit_exit(file_path);

    size_t n;
    /* The content was decoded in place into the stdin buffer, which is writable. */
    const char *text = normalize((char *)content->u.s, content->n, &n);

    /* Frontmatter: a first line "---", up to the next "---" line. */
    size_t eol = find_byte(text, 0, n, '\n');
    if (!is_marker(text, eol)) {
        errs_add("frontmatter", "required",
                 "the file must start with a '---' line opening its YAML frontmatter (apiVersion, kind, metadata, spec)");
        errs_emit_exit(file_path);
    }
    size_t fm_start = eol < n ? eol + 1 : n, pos = fm_start, fm_end = SIZE_MAX, body_start = n;
    int line = 2;
    while (pos < n) {
        size_t e = find_byte(text, pos, n, '\n');
        if (is_marker(text + pos, e - pos)) {
            fm_end = pos;
            body_start = e < n ? e + 1 : n;
            break;
        }
        pos = e + 1;
        line++;
    }
    if (fm_end == SIZE_MAX) {
        errs_add("frontmatter", "syntax", "line 1: the frontmatter is not closed by a '---' line");
        errs_emit_exit(file_path);
    }
    bool yaml_ok;
    jval *doc = yaml_parse(text + fm_start, fm_end - fm_start, 2, &yaml_ok);
    int body_first_line = line + 1;
    /*
     * The output is written as it is made, keys in canonical order: the body
     * (mdast) first, then the resource and the source. It is only emitted if
     * nothing was rejected.
     */
    buf_t out = {0};
    buf_paged(&out);
    buf_puts(&out, "{\"body\":");
    bool body_ok = md_compile(&out, text + body_start, n - body_start, body_first_line);
    jval *resource = NULL;
    if (yaml_ok) {
        if (doc == NULL) doc = jobj();
        resource = validate(doc);
    }
    if (errs_count() > 0 || resource == NULL || !body_ok) {
        if (errs_count() == 0) die("internal error: no resource and no error");
        errs_emit_exit(file_path);
    }
    buf_puts(&out, ",\"resource\":");
    if (!json_write(&out, resource)) die("internal error: non-integer number in output");
    buf_puts(&out, ",\"source\":{\"path\":");
    json_write_string(&out, path->u.s, path->n);
    buf_puts(&out, "}}");
    buf_emit_and_exit(&out, 0);
}
