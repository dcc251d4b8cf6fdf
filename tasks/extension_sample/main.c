/*
 * extension-sample ("seo-lint"): the reference third-party extension.
 *
 * stdin:  {"extension":{"name":"seo-lint","version":...},"compiled":<markdown-compile output>,
 *          "parameters":{"max_title_length":60,"max_description_length":160}}
 * stdout: {"findings":[{"code","field","message","severity"}...],"resource":{apiVersion,kind,metadata}}
 *
 * Findings are sorted by field, then code, then body line, then message (findings_json).
 */
#include "gitstore.h"

#define EXTENSION_NAME "seo-lint"

/* Integer parameter with a default and bounds; records an error otherwise. */
static int64_t int_param(const jval *params, const char *key, int64_t def, int64_t lo, int64_t hi) {
    const jval *v = jobj_get(params, key);
    if (v == NULL || v->t == J_NULL) return def;
    const char *field = sfmt("parameters.%s", key);
    if (v->t != J_INT) {
        errs_add(field, "type", sfmt("%s must be an integer", field));
        return def;
    }
    if (v->i < lo || v->i > hi) {
        errs_add(field, v->i < lo ? "minimum" : "maximum", sfmt("%s must be between %D and %D", field, lo, hi));
        return def;
    }
    return v->i;
}

typedef struct {
    int64_t headings, h1s;
} walkstate;

static int64_t start_line(const jval *node, int64_t fallback) {
    const jval *pos = jobj_get(node, "position");
    const jval *line = jobj_get(jobj_get(pos, "start"), "line");
    return line != NULL && line->t == J_INT ? line->i : fallback;
}

static void walk(const jval *v, int64_t line, walkstate *st) {
    if (v->t == J_ARR) {
        for (size_t k = 0; k < v->n; k++) walk(v->u.a[k], line, st);
        return;
    }
    if (v->t != J_OBJ) return;
    line = start_line(v, line);
    const jval *type = jobj_get(v, "type");
    if (jstr_eq(type, "heading")) {
        const jval *depth = jobj_get(v, "depth");
        int64_t d = depth != NULL && depth->t == J_INT ? depth->i : 0;
        if (st->headings == 0 && d != 1) {
            finding_add("first-heading-not-h1", "body", "warning", line,
                sfmt("line %D: the first heading is level %D; start the body with a level-1 heading", line, d));
        }
        if (d == 1 && ++st->h1s > 1) {
            finding_add("multiple-h1", "body", "warning", line,
                sfmt("line %D: another level-1 heading; a page should have exactly one", line));
        }
        st->headings++;
    } else if (jstr_eq(type, "image")) {
        const jval *alt = jobj_get(v, "alt");
        const jval *url = jobj_get(v, "url");
        bool empty = alt == NULL || alt->t != J_STR;
        if (!empty) {
            empty = true;
            for (size_t k = 0; k < alt->n; k++) {
                char c = alt->u.s[k];
                if (c != ' ' && c != '\t' && c != '\n') empty = false;
            }
        }
        if (empty) {
            const char *u = url != NULL && url->t == J_STR ? url->u.s : "";
            size_t un = url != NULL && url->t == J_STR ? url->n : 0;
            finding_add("image-alt-missing", "body", "warning", line,
                sfmt("line %D: image %S has no alt text", line, u, un));
        }
    }
    const jval *children = jobj_get(v, "children");
    if (children != NULL) walk(children, line, st);
}

int main(void) {
    g_task_name = "extension-sample";
    jval *input = read_input_object();
    const jval *ext = jobj_get(input, "extension");
    if (ext == NULL || ext->t != J_OBJ) {
        errs_add("extension", ext == NULL ? "required" : "type", "extension must be an object {name, version}");
    } else {
        const jval *name = jobj_get(ext, "name");
        const jval *version = jobj_get(ext, "version");
        if (name == NULL || name->t != J_STR) {
            errs_add("extension.name", name == NULL ? "required" : "type", "extension.name must be a string");
        } else if (!jstr_eq(name, EXTENSION_NAME)) {
            errs_add("extension.name", "enum", "this module implements the extension \"" EXTENSION_NAME "\"");
        }
        if (version == NULL || version->t != J_STR) {
            errs_add("extension.version", version == NULL ? "required" : "type", "extension.version must be a string");
        }
    }
    const jval *params = jobj_get(input, "parameters");
    if (params != NULL && params->t != J_OBJ && params->t != J_NULL) {
        errs_add("parameters", "type", "parameters must be an object");
        params = NULL;
    }
    int64_t max_title = int_param(params, "max_title_length", 60, 1, 1000);
    int64_t max_desc = int_param(params, "max_description_length", 160, 1, 10000);
    compiled_doc d;
    compiled_load(input, &d);
    if (errs_count() > 0) errs_emit_exit(d.file_path);

    const jval *title = jobj_get(d.spec, "title");
    if (title == NULL || title->t != J_STR || title->n == 0) {
        finding_add("title-missing", "spec.title", "warning", 0,
            "spec.title is missing; search results will fall back to the resource name");
    } else {
        size_t len = utf8_count(title->u.s, title->n);
        if ((int64_t)len > max_title) {
            finding_add("title-too-long", "spec.title", "warning", 0,
                sfmt("spec.title is %z characters long; search results truncate titles after about %D", len,
                     max_title));
        }
    }
    const jval *desc = jobj_get(d.spec, "description");
    if (desc == NULL || desc->t != J_STR || desc->n == 0) {
        finding_add("description-missing", "spec.description", "warning", 0,
            "spec.description is missing; search engines will pick a snippet from the body instead");
    } else {
        size_t len = utf8_count(desc->u.s, desc->n);
        if ((int64_t)len > max_desc) {
            finding_add("description-too-long", "spec.description", "info", 0,
                sfmt("spec.description is %z characters long; snippets are cut after about %D", len, max_desc));
        }
    }
    walkstate st = {0, 0};
    walk(d.body, 0, &st);
    if (st.headings == 0) {
        finding_add("heading-missing", "body", "info", 0, "the body has no heading; add a level-1 heading");
    }

    jval *out = jobj();
    jobj_put(out, "findings", findings_json());
    jobj_put(out, "resource", resource_identity(&d));
    emit_output(out);
}
