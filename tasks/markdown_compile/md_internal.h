/* Internal interface between the markdown block parser, inline parser and AST writer. */
#ifndef GS_MD_INTERNAL_H
#define GS_MD_INTERNAL_H

#include "mdc.h"

typedef enum { B_ROOT, B_QUOTE, B_LIST, B_ITEM, B_PARA, B_HEADING, B_HR, B_CODE } btype;

typedef struct block block;
struct block {
    btype t;
    block *parent, *first, *last, *next, *prev;
    int start_line, end_line; /* 1-based body lines */
    bool open, last_line_blank;
    int depth; /* block quotes and list items enclosing this block, itself included */
    /* list and item */
    bool ordered, loose;
    char marker;
    int start, marker_offset, padding;
    /* code */
    bool fenced;
    char fence_char;
    int fence_len, fence_offset;
    int last_content_line; /* indented code: last non-blank line */
    buf_t info;
    /* heading */
    int level;
    bool setext;
    /* paragraph, heading, code text */
    buf_t content;
};

/* Link reference definitions, keyed by normalized label. */
typedef struct refdef refdef;
struct refdef {
    const char *label; /* normalized */
    size_t label_len;
    const char *url;
    const char *title; /* NULL if none */
    refdef *next;
};

typedef struct {
    refdef **slots;
    size_t nslots, count;
} refmap;

void refmap_init(refmap *m);
const refdef *refmap_get(const refmap *m, const char *raw_label, size_t n);

/*
 * Tries to parse one link reference definition at the start of s. On
 * success adds it (the first definition of a label wins) and returns the
 * number of bytes consumed (through the end of its line); 0 otherwise.
 */
size_t md_parse_refdef(const char *s, size_t n, refmap *m);

/* Block tree of a body; NULL (and *too_deep_line set) past the container cap. */
block *md_parse_blocks(const char *text, size_t n, refmap *refs, int *too_deep_line);

/* Inline children (an mdast JSON array) of a paragraph or heading text; NULL past the nesting cap. */
jval *md_parse_inlines(const char *text, size_t n, const refmap *refs);

/* Backslash escapes and entities resolved (for info strings, urls, titles). */
void md_unescape(buf_t *out, const char *s, size_t n);

#endif
