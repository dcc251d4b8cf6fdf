/*
 * Markdown body to mdast JSON: block tree, then inlines per paragraph and
 * heading, written straight to the output in canonical form (keys in sorted
 * order) instead of building a JSON tree first. Each paragraph's inline
 * nodes live in the arena only while it is written.
 */
#include <string.h>

#include "md_internal.h"

typedef struct {
    buf_t *out;
    const refmap *refs;
    int line_offset;
    bool too_deep;
    int too_deep_line;
} mdconv;

#define PUT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)

static void put_position(mdconv *cv, const block *b) {
    PUT(cv->out, "\"position\":{\"end\":{\"line\":");
    buf_putint(cv->out, b->end_line + cv->line_offset);
    PUT(cv->out, "},\"start\":{\"line\":");
    buf_putint(cv->out, b->start_line + cv->line_offset);
    PUT(cv->out, "}}");
}

static void put_bool(buf_t *out, bool v) {
    if (v) {
        PUT(out, "true");
    } else {
        PUT(out, "false");
    }
}

static void write_block(mdconv *cv, const block *b);

static void put_children(mdconv *cv, const block *b) {
    PUT(cv->out, "\"children\":[");
    for (const block *c = b->first; c != NULL && !cv->too_deep; c = c->next) {
        if (c != b->first) buf_putc(cv->out, ',');
        write_block(cv, c);
    }
    buf_putc(cv->out, ']');
}

static void put_inlines(mdconv *cv, const block *b) {
    PUT(cv->out, "\"children\":");
    arena_pos scratch = arena_mark();
    bool ok = md_write_inlines(cv->out, b->text ? b->text : "", b->text_len, cv->refs);
    arena_release(scratch);
    if (!ok) {
        if (!cv->too_deep) {
            cv->too_deep = true;
            cv->too_deep_line = b->start_line + cv->line_offset;
        }
        PUT(cv->out, "[]");
    }
}

static void write_block(mdconv *cv, const block *b) {
    buf_t *out = cv->out;
    buf_putc(out, '{');
    switch ((btype)b->t) {
    case B_ROOT:
    case B_QUOTE:
    case B_PARA:
        if (b->t == B_PARA) {
            put_inlines(cv, b);
        } else {
            put_children(cv, b);
        }
        buf_putc(out, ',');
        put_position(cv, b);
        if (b->t == B_ROOT) {
            PUT(out, ",\"type\":\"root\"}");
        } else if (b->t == B_QUOTE) {
            PUT(out, ",\"type\":\"blockquote\"}");
        } else {
            PUT(out, ",\"type\":\"paragraph\"}");
        }
        break;
    case B_LIST:
        put_children(cv, b);
        PUT(out, ",\"ordered\":");
        put_bool(out, b->ordered);
        buf_putc(out, ',');
        put_position(cv, b);
        PUT(out, ",\"spread\":");
        put_bool(out, b->loose);
        PUT(out, ",\"start\":");
        if (b->ordered) {
            buf_putint(out, b->start);
        } else {
            PUT(out, "null");
        }
        PUT(out, ",\"type\":\"list\"}");
        break;
    case B_ITEM:
        /* As in mdast-util-from-markdown, an item is spread exactly when its list is. */
        put_children(cv, b);
        buf_putc(out, ',');
        put_position(cv, b);
        PUT(out, ",\"spread\":");
        put_bool(out, b->parent->loose);
        PUT(out, ",\"type\":\"listItem\"}");
        break;
    case B_HEADING:
        put_inlines(cv, b);
        PUT(out, ",\"depth\":");
        buf_putint(out, b->level);
        buf_putc(out, ',');
        put_position(cv, b);
        PUT(out, ",\"type\":\"heading\"}");
        break;
    case B_HR:
        put_position(cv, b);
        PUT(out, ",\"type\":\"thematicBreak\"}");
        break;
    case B_CODE: {
        arena_pos scratch = arena_mark();
        size_t n;
        const char *info = md_unescape(b->info ? b->info : "", b->info_len, &n);
        size_t k = 0;
        while (k < n && info[k] != ' ' && info[k] != '\t') k++;
        size_t m = k;
        while (m < n && (info[m] == ' ' || info[m] == '\t')) m++;
        PUT(out, "\"lang\":");
        if (k > 0) {
            json_write_string(out, info, k);
        } else {
            PUT(out, "null");
        }
        PUT(out, ",\"meta\":");
        if (m < n) {
            json_write_string(out, info + m, n - m);
        } else {
            PUT(out, "null");
        }
        arena_release(scratch);
        buf_putc(out, ',');
        put_position(cv, b);
        PUT(out, ",\"type\":\"code\",\"value\":");
        size_t len = b->text_len;
        if (len > 0 && b->text[len - 1] == '\n') len--;
        json_write_string(out, b->text ? b->text : "", len);
        buf_putc(out, '}');
        break;
    }
    }
}

bool md_compile(buf_t *out, const char *text, size_t n, int first_line) {
    refmap refs;
    refmap_init(&refs);
    int deep_line = 0;
    block *root = md_parse_blocks(text, n, &refs, &deep_line);
    if (root == NULL) {
        errs_add("body", "max_depth",
                 sfmt("line %d: block quotes and list items nested deeper than %d levels", deep_line + first_line - 1,
                      MD_MAX_CONTAINER_DEPTH));
        return false;
    }
    mdconv cv = {out, &refs, first_line - 1, false, 0};
    write_block(&cv, root);
    if (cv.too_deep) {
        errs_add("body", "max_depth",
                 sfmt("line %d: emphasis and links nested deeper than %d levels", cv.too_deep_line,
                      MD_MAX_INLINE_DEPTH));
        return false;
    }
    return true;
}
