/* Shared input handling of the tasks that consume markdown-compile output. */
#include "catalog.h"

static const jval *need(const jval *parent, const char *key, const char *field, jtype_t t, const char *what) {
    const jval *v = jobj_get(parent, key);
    if (v == NULL || v->t == J_NULL) {
        errs_add(field, "required", sfmt("%s is required", field));
        return NULL;
    }
    if (v->t != t) {
        errs_add(field, "type", sfmt("%s must be %s", field, what));
        return NULL;
    }
    return v;
}

bool compiled_load(const jval *input, compiled_doc *d) {
    size_t before = errs_count();
    d->file_path = "";
    d->compiled = (jval *)need(input, "compiled", "compiled", J_OBJ, "an object (markdown-compile output)");
    if (d->compiled == NULL) return false;
    const jval *source = jobj_get(d->compiled, "source");
    const jval *path = jobj_get(source, "path");
    if (path != NULL && path->t == J_STR) d->file_path = arena_strndup(path->u.s, path->n);
    d->resource = need(d->compiled, "resource", "compiled.resource", J_OBJ, "an object");
    d->body = need(d->compiled, "body", "compiled.body", J_OBJ, "an mdast root node");
    if (d->body != NULL && !jstr_eq(jobj_get(d->body, "type"), "root")) {
        errs_add("compiled.body.type", "enum", "compiled.body must be an mdast node of type root");
    }
    if (d->resource != NULL) {
        need(d->resource, "apiVersion", "compiled.resource.apiVersion", J_STR, "a string");
        need(d->resource, "kind", "compiled.resource.kind", J_STR, "a string");
        d->metadata = need(d->resource, "metadata", "compiled.resource.metadata", J_OBJ, "an object");
        d->spec = need(d->resource, "spec", "compiled.resource.spec", J_OBJ, "an object");
        if (d->metadata != NULL) {
            need(d->metadata, "name", "compiled.resource.metadata.name", J_STR, "a string");
            need(d->metadata, "namespace", "compiled.resource.metadata.namespace", J_STR, "a string");
        }
    }
    return errs_count() == before;
}

jval *resource_identity(const compiled_doc *d) {
    jval *r = jobj();
    jobj_put(r, "apiVersion", jobj_get(d->resource, "apiVersion"));
    jobj_put(r, "kind", jobj_get(d->resource, "kind"));
    jobj_put(r, "metadata", (jval *)d->metadata);
    return r;
}

jval *read_input_object(void) {
    size_t len;
    char *in = read_stdin(&len);
    json_parse_result pr = json_parse(in, len);
    if (pr.value == NULL) {
        errs_add("", pr.constraint, pr.message);
        errs_emit_exit("");
    }
    if (pr.value->t != J_OBJ) {
        errs_add("", "type", "input must be a JSON object");
        errs_emit_exit("");
    }
    return pr.value;
}

_Noreturn void emit_output(jval *v) {
    buf_t b = {0};
    if (!json_write(&b, v)) die("internal error: non-integer number in output");
    emit_and_exit(b.p, b.len, 0);
}
