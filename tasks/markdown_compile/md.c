/* Markdown body to mdast JSON: block tree, then inlines per paragraph and heading. */
#include <stdlib.h>
#include <string.h>

#include "md_internal.h"

typedef struct {
    const refmap *refs;
    int line_offset;
    bool too_deep;
    int too_deep_line;
} mdconv;

static jval *position(const mdconv *cv, const block *b) {
    jval *s = jobj(), *e = jobj(), *p = jobj();
    jobj_put(s, "line", jint(b->start_line + cv->line_offset));
    jobj_put(e, "line", jint(b->end_line + cv->line_offset));
    jobj_put(p, "end", e);
    jobj_put(p, "start", s);
    return p;
}

static jval *block_json(mdconv *cv, const block *b);

static jval *children(mdconv *cv, const block *b) {
    jval *a = jarr();
    for (const block *c = b->first; c != NULL && !cv->too_deep; c = c->next) {
        jval *v = block_json(cv, c);
        if (v != NULL) jarr_push(a, v);
    }
    return a;
}

static jval *inlines(mdconv *cv, const block *b) {
    jval *a = md_parse_inlines(b->content.p ? b->content.p : "", b->content.len, cv->refs);
    if (a == NULL) {
        if (!cv->too_deep) {
            cv->too_deep = true;
            cv->too_deep_line = b->start_line + cv->line_offset;
        }
        return jarr();
    }
    return a;
}

/* Keys are inserted in canonical (sorted) order so the writer need not sort. */
static jval *block_json(mdconv *cv, const block *b) {
    jval *o = jobj();
    switch (b->t) {
    case B_ROOT:
    case B_QUOTE:
    case B_PARA:
        jobj_put(o, "children", b->t == B_PARA ? inlines(cv, b) : children(cv, b));
        jobj_put(o, "position", position(cv, b));
        jobj_put(o, "type", jlit(b->t == B_ROOT ? "root" : b->t == B_QUOTE ? "blockquote" : "paragraph"));
        break;
    case B_LIST:
        jobj_put(o, "children", children(cv, b));
        jobj_put(o, "ordered", jbool(b->ordered));
        jobj_put(o, "position", position(cv, b));
        jobj_put(o, "spread", jbool(b->loose));
        jobj_put(o, "start", b->ordered ? jint(b->start) : jnull());
        jobj_put(o, "type", jlit("list"));
        break;
    case B_ITEM:
        /* As in mdast-util-from-markdown, an item is spread exactly when its list is. */
        jobj_put(o, "children", children(cv, b));
        jobj_put(o, "position", position(cv, b));
        jobj_put(o, "spread", jbool(b->parent->loose));
        jobj_put(o, "type", jlit("listItem"));
        break;
    case B_HEADING:
        jobj_put(o, "children", inlines(cv, b));
        jobj_put(o, "depth", jint(b->level));
        jobj_put(o, "position", position(cv, b));
        jobj_put(o, "type", jlit("heading"));
        break;
    case B_HR:
        jobj_put(o, "position", position(cv, b));
        jobj_put(o, "type", jlit("thematicBreak"));
        break;
    case B_CODE: {
        buf_t info = {0};
        md_unescape(&info, b->info.p ? b->info.p : "", b->info.len);
        size_t k = 0;
        while (k < info.len && info.p[k] != ' ' && info.p[k] != '\t') k++;
        size_t m = k;
        while (m < info.len && (info.p[m] == ' ' || info.p[m] == '\t')) m++;
        jobj_put(o, "lang", k > 0 ? jstr(info.p, k) : jnull());
        jobj_put(o, "meta", m < info.len ? jstr(info.p + m, info.len - m) : jnull());
        free(info.p);
        jobj_put(o, "position", position(cv, b));
        jobj_put(o, "type", jlit("code"));
        size_t n = b->content.len;
        if (n > 0 && b->content.p[n - 1] == '\n') n--;
        jobj_put(o, "value", jstr(b->content.p ? b->content.p : "", n));
        break;
    }
    }
    return o;
}

jval *md_parse(const char *text, size_t n, int first_line) {
    refmap refs;
    refmap_init(&refs);
    int deep_line = 0;
    block *root = md_parse_blocks(text, n, &refs, &deep_line);
    if (root == NULL) {
        errs_add("body", "max_depth",
                 sfmt("line %d: block quotes and list items nested deeper than %d levels", deep_line + first_line - 1,
                      MD_MAX_CONTAINER_DEPTH));
        return NULL;
    }
    mdconv cv = {&refs, first_line - 1, false, 0};
    jval *v = block_json(&cv, root);
    if (cv.too_deep) {
        errs_add("body", "max_depth",
                 sfmt("line %d: emphasis and links nested deeper than %d levels", cv.too_deep_line,
                      MD_MAX_INLINE_DEPTH));
        return NULL;
    }
    return v;
}
