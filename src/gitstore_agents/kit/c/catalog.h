/* Reading a markdown-compile output ("compiled") handed to a downstream task. */
#ifndef GS_CATALOG_H
#define GS_CATALOG_H

#include "common.h"

typedef struct {
    jval *compiled;
    const jval *resource, *metadata, *spec, *body;
    const char *file_path; /* compiled.source.path, or "" */
} compiled_doc;

/*
 * Checks the shape of input.compiled (resource identity, spec mapping, mdast
 * root body) and records `required`/`type` errors with fields such as
 * "compiled.resource.metadata.name". Returns false if any error was found.
 */
bool compiled_load(const jval *input, compiled_doc *d);

/* {"apiVersion","kind","metadata"} of the compiled resource (shared, not copied). */
jval *resource_identity(const compiled_doc *d);

/* Reads stdin and parses it as a JSON object; exits 65 with errors otherwise. */
jval *read_input_object(void);

/* Serialises v canonically to stdout and exits 0. */
_Noreturn void emit_output(jval *v);

#endif
