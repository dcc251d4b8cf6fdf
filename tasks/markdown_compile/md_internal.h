/* Internal interface between the markdown block parser, inline parser and AST writer. */
#ifndef GS_MD_INTERNAL_H
#define GS_MD_INTERNAL_H

#include "mdc.h"

typedef enum { B_ROOT, B_QUOTE, B_LIST, B_ITEM, B_PARA, B_HEADING, B_HR, B_CODE } btype;

/*
 * One block. Text (paragraph, heading and code content, a fence's info
 * string) lives in the body's text store: only the open leaf block (the
 * tip) ever receives text, so its text is always the end of the store.
 */
typedef struct block block;
struct block {
    block *parent, *first, *last, *next, *prev;
    int start_line, end_line; /* 1-based body lines */
    /* paragraph, heading, code text; code info string */
    char *text;
    uint32_t text_len;
    const char *info;
    uint32_t info_len;
    int start;             /* ordered list: first number */
    int fence_len;         /* fenced code */
    int last_content_line; /* indented code: last non-blank line */
    uint8_t t;             /* btype */
    uint8_t depth;         /* block quotes and list items enclosing this block, itself included */
    bool open, last_line_blank;
    /* list and item */
    bool ordered, loose;
    char marker;
    uint8_t marker_offset, padding;
    /* code */
    bool fenced;
    char fence_char;
    uint8_t fence_offset;
    /* heading */
    uint8_t level;
    bool setext;
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

/*
 * Writes the inline children (an mdast JSON array) of a paragraph or
 * heading text to out. Returns false, writing nothing, when emphasis and
 * links nest deeper than MD_MAX_INLINE_DEPTH. Allocates in the arena: the
 * caller releases it afterwards.
 */
bool md_write_inlines(buf_t *out, const char *text, size_t n, const refmap *refs);

/* Arena copy of s with backslash escapes and entities resolved (never longer than s); *len gets its length. */
const char *md_unescape(const char *s, size_t n, size_t *len);

#endif
