/* Internal interface of the markdown-compile task. */
#ifndef GS_MDC_H
#define GS_MDC_H

#include "common.h"

/* Deepest YAML nesting (block and flow collections) in the frontmatter. */
#define YAML_MAX_DEPTH 32
/* Deepest markdown container nesting (block quotes and list items). */
#define MD_MAX_CONTAINER_DEPTH 16
/* Deepest inline nesting (emphasis, strong, link). */
#define MD_MAX_INLINE_DEPTH 16

/*
 * Parses the YAML-subset frontmatter `text` (the lines between the two
 * `---` markers; `first_line` is the file line number of its first line).
 * Returns the value (NULL for an empty document) or sets *ok = false after
 * recording `syntax`/`max_depth` errors (field "frontmatter").
 */
jval *yaml_parse(const char *text, size_t n, int first_line, bool *ok);

/*
 * Compiles a markdown body to its mdast root node, written to out as
 * canonical JSON. `first_line` is the file line number of the body's first
 * line. Records `max_depth` errors (field "body") and returns false when
 * nesting exceeds the caps (out then holds a partial document).
 */
bool md_compile(buf_t *out, const char *text, size_t n, int first_line);

#endif
