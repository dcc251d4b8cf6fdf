/*
 * @NAME@: a GitStore catalog extension (docs/extensions.md).
 *
 * stdin:  {"compiled":<markdown-compile output>,"extension":{"name":"@NAME@","version":...},
 *          "parameters":{"min_title_length":10}}
 * stdout: {"findings":[{"code","field","message","severity"}...],"resource":{apiVersion,kind,metadata}}
 * exit 65 with {"errors":[...]} when the input is not what this extension reads.
 */
#include "gitstore.h"

#define EXTENSION_NAME "@NAME@"

int main(void) {
    g_task_name = EXTENSION_NAME;
    jval *input = read_input_object();

    const jval *name = jobj_get(jobj_get(input, "extension"), "name");
    if (!jstr_eq(name, EXTENSION_NAME)) {
        errs_add("extension.name", "enum", "this module implements the extension \"" EXTENSION_NAME "\"");
    }
    int64_t min_title = 10;
    const jval *min = jobj_get(jobj_get(input, "parameters"), "min_title_length");
    if (min != NULL && min->t != J_NULL) {
        if (min->t != J_INT || min->i < 1 || min->i > 1000) {
            errs_add("parameters.min_title_length", "type",
                     "parameters.min_title_length must be an integer from 1 to 1000");
        } else {
            min_title = min->i;
        }
    }
    compiled_doc doc;
    compiled_load(input, &doc);
    if (errs_count() > 0) errs_emit_exit(doc.file_path);

    const jval *title = jobj_get(doc.spec, "title");
    if (title == NULL || title->t != J_STR || title->n == 0) {
        finding_add("title-missing", "spec.title", "warning", 0, "spec.title is missing");
    } else if ((int64_t)utf8_count(title->u.s, title->n) < min_title) {
        finding_add("title-too-short", "spec.title", "warning", 0,
                    "spec.title is shorter than parameters.min_title_length");
    }

    jval *out = jobj();
    jobj_put(out, "findings", findings_json());
    jobj_put(out, "resource", resource_identity(&doc));
    emit_output(out);
}
