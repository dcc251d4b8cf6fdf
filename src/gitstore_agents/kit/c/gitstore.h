/*
 * The GitStore task helper library: the one header a module includes.
 *
 * A module is a WASI command: it reads one JSON document on stdin and either
 * prints its output in canonical JSON and exits 0, or rejects the input by
 * printing GitStore's validation-error document and exiting 65
 * (docs/extensions.md). The reference modules are built on this library too.
 *
 *   read_input_object()          stdin as a parsed JSON object (exits 65 otherwise)
 *   compiled_load(input, &doc)   the markdown-compile output an extension reads
 *   errs_add(...) + errs_emit_exit(path)   reject the input (exit 65)
 *   finding_add(...) + findings_json()     an extension's findings, sorted
 *   emit_output(value)           print value in canonical JSON, exit 0
 *
 * Memory is never freed: a task runs once and exits. Out of memory ends the
 * run with one line on stderr and exit 1, never a trap.
 */
#ifndef GS_GITSTORE_H
#define GS_GITSTORE_H

#include "catalog.h"

/* ---- findings ----------------------------------------------------------- */

/*
 * Records one finding. severity is "error", "warning" or "info"; field is a
 * field path ("spec.title", "body"); line is the body line it is about, or 0.
 * Strings are copied.
 */
void finding_add(const char *code, const char *field, const char *severity, int64_t line,
                 const char *message);
size_t findings_count(void);
/*
 * The findings as a JSON array of {"code","field","message","severity"},
 * sorted by field, then code, then line, then message (bytes): the same
 * findings in any order give the same output.
 */
jval *findings_json(void);

#endif
