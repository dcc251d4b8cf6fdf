/*
 * Markdown block structure: a single-pass line parser after cmark's
 * (CommonMark reference implementation) algorithm: match open containers,
 * open new blocks, add the rest of the line to the tip. No raw HTML blocks:
 * HTML lines are paragraph text.
 *
 * Output is mdast (the syntax tree of the remark/micromark ecosystem).
 */
#include <stdlib.h>
#include <string.h>

#include "md_internal.h"

#define TAB_STOP 4
#define CODE_INDENT 4

typedef struct {
    const char *s; /* current line, without the line ending */
    int len;
    int line;      /* 1-based body line number */
    int offset;    /* byte offset */
    int column;    /* visual column (tabs expanded to stops of 4) */
    bool partially_consumed_tab;
    int first_nonspace;
    int first_nonspace_column;
    int indent;
    bool blank;
    block *root, *tip;
    refmap *refs;
    bool too_deep;
    int too_deep_line;
    /* The text store, sized for the body up front (see md_parse_blocks). */
    char *store;
    size_t store_len, store_cap;
} bparser;

static char peek_at(const bparser *p, int pos) { return pos < p->len ? p->s[pos] : '\n'; }
static bool is_line_end(char c) { return c == '\n'; }
static bool space_or_tab(char c) { return c == ' ' || c == '\t'; }

static void find_first_nonspace(bparser *p) {
    int chars_to_tab = TAB_STOP - (p->column % TAB_STOP);
    p->first_nonspace = p->offset;
    p->first_nonspace_column = p->column;
    for (;;) {
        char c = peek_at(p, p->first_nonspace);
        if (c == ' ') {
            p->first_nonspace++;
            p->first_nonspace_column++;
            if (--chars_to_tab == 0) chars_to_tab = TAB_STOP;
        } else if (c == '\t') {
            p->first_nonspace++;
            p->first_nonspace_column += chars_to_tab;
            chars_to_tab = TAB_STOP;
        } else {
            break;
        }
    }
    p->indent = p->first_nonspace_column - p->column;
    p->blank = is_line_end(peek_at(p, p->first_nonspace));
}

static void advance_offset(bparser *p, int count, bool columns) {
    while (count > 0 && p->offset < p->len) {
        char c = p->s[p->offset];
        if (c == '\t') {
            int chars_to_tab = TAB_STOP - (p->column % TAB_STOP);
            if (columns) {
                p->partially_consumed_tab = chars_to_tab > count;
                int adv = chars_to_tab < count ? chars_to_tab : count;
                p->column += adv;
                p->offset += p->partially_consumed_tab ? 0 : 1;
                count -= adv;
            } else {
                p->partially_consumed_tab = false;
                p->column += chars_to_tab;
                p->offset += 1;
                count -= 1;
            }
        } else {
            p->partially_consumed_tab = false;
            p->offset += 1;
            p->column += 1;
            count -= 1;
        }
    }
}

static block *make_block(btype t, int line) {
    block *b = arena_alloc(sizeof *b);
    memset(b, 0, sizeof *b);
    b->t = (uint8_t)t;
    b->start_line = b->end_line = line;
    b->open = true;
    return b;
}

static bool can_contain(btype parent, btype child) {
    if (parent == B_ROOT || parent == B_QUOTE || parent == B_ITEM) return child != B_ITEM;
    if (parent == B_LIST) return child == B_ITEM;
    return false;
}

static bool accepts_lines(btype t) { return t == B_PARA || t == B_HEADING || t == B_CODE; }

/* Appends to the text store; the caller checks that the text being extended ends the store. */
static void store_put(bparser *p, const char *s, size_t n) {
    if (p->store_cap - p->store_len < n) die("internal error: markdown text store overflow");
    memcpy(p->store + p->store_len, s, n);
    p->store_len += n;
}

static void add_line(bparser *p, block *b) {
    if (b->text == NULL) {
        b->text = p->store + p->store_len;
    } else if (b->text + b->text_len != p->store + p->store_len) {
        die("internal error: text added to a block that is not the tip");
    }
    size_t before = p->store_len;
    if (p->partially_consumed_tab) {
        p->offset += 1; /* skip the tab */
        int chars_to_tab = TAB_STOP - (p->column % TAB_STOP);
        store_put(p, "    ", (size_t)chars_to_tab);
    }
    if (p->offset < p->len) store_put(p, p->s + p->offset, (size_t)(p->len - p->offset));
    store_put(p, "\n", 1);
    b->text_len += (uint32_t)(p->store_len - before);
    b->end_line = p->line;
}

static bool ends_with_blank_line(const block *b) {
    while (b != NULL) {
        if (b->last_line_blank) return true;
        b = (b->t == B_LIST || b->t == B_ITEM) ? b->last : NULL;
    }
    return false;
}

static bool is_blank_text(const char *s, size_t n) {
    for (size_t k = 0; k < n; k++) {
        if (s[k] != ' ' && s[k] != '\t' && s[k] != '\n') return false;
    }
    return true;
}

static void unlink_block(block *b) {
    block *parent = b->parent;
    if (b->prev) {
        b->prev->next = b->next;
    } else {
        parent->first = b->next;
    }
    if (b->next) {
        b->next->prev = b->prev;
    } else {
        parent->last = b->prev;
    }
}

/*
 * Strips link reference definitions off the start of a paragraph (the text
 * keeps its end, so an open paragraph stays the end of the store). Returns
 * true if text remains.
 */
static bool resolve_refdefs(bparser *p, block *b) {
    size_t pos = 0;
    while (pos < b->text_len && b->text[pos] == '[') {
        size_t used = md_parse_refdef(b->text + pos, b->text_len - pos, p->refs);
        if (used == 0) break;
        pos += used;
    }
    b->text += pos;
    b->text_len -= (uint32_t)pos;
    return !is_blank_text(b->text, b->text_len);
}

static block *finalize(bparser *p, block *b) {
    block *parent = b->parent;
    b->open = false;
    switch (b->t) {
    case B_PARA:
        if (!resolve_refdefs(p, b)) unlink_block(b);
        break;
    case B_CODE:
        if (!b->fenced) {
            /* Drop trailing blank lines of indented code. */
            size_t n = b->text_len;
            while (n > 0) {
                size_t ls = n - 1; /* index of the '\n' ending the last line */
                size_t k = ls;
                while (k > 0 && b->text[k - 1] != '\n') k--;
                if (!is_blank_text(b->text + k, ls - k)) break;
                n = k;
            }
            b->text_len = (uint32_t)n;
        }
        break;
    case B_LIST: {
        bool tight = true;
        for (block *item = b->first; item != NULL && tight; item = item->next) {
            if (item->last_line_blank && item->next) {
                tight = false;
                break;
            }
            for (block *sub = item->first; sub != NULL; sub = sub->next) {
                if ((item->next || sub->next) && ends_with_blank_line(sub)) {
                    tight = false;
                    break;
                }
            }
        }
        b->loose = !tight;
        break;
    }
    default: break;
    }
    return parent;
}

static block *add_child(bparser *p, block *parent, btype t) {
    while (!can_contain(parent->t, t)) parent = finalize(p, parent);
    block *c = make_block(t, p->line);
    c->parent = parent;
    c->prev = parent->last;
    if (parent->last) {
        parent->last->next = c;
    } else {
        parent->first = c;
    }
    parent->last = c;
    c->depth = (uint8_t)(parent->depth + (t == B_QUOTE || t == B_ITEM ? 1 : 0));
    if (c->depth > MD_MAX_CONTAINER_DEPTH && !p->too_deep) {
        p->too_deep = true;
        p->too_deep_line = p->line;
    }
    return c;
}

/* ---- line scanners ---------------------------------------------------- */

static int scan_atx_start(const bparser *p, int pos, int *level) {
    int k = pos, n = 0;
    while (peek_at(p, k) == '#' && n < 7) {
        k++;
        n++;
    }
    if (n < 1 || n > 6) return 0;
    char c = peek_at(p, k);
    if (!space_or_tab(c) && !is_line_end(c)) return 0;
    while (space_or_tab(peek_at(p, k))) k++;
    *level = n;
    return k - pos;
}

static int scan_open_fence(const bparser *p, int pos) {
    char f = peek_at(p, pos);
    if (f != '`' && f != '~') return 0;
    int k = pos;
    while (peek_at(p, k) == f) k++;
    int n = k - pos;
    if (n < 3) return 0;
    if (f == '`') {
        for (int q = k; q < p->len; q++) {
            if (p->s[q] == '`') return 0;
        }
    }
    return n;
}

static int scan_close_fence(const bparser *p, int pos, char f) {
    int k = pos;
    while (peek_at(p, k) == f) k++;
    int n = k - pos;
    if (n < 3) return 0;
    while (space_or_tab(peek_at(p, k))) k++;
    return is_line_end(peek_at(p, k)) ? n : 0;
}

static int scan_setext(const bparser *p, int pos) {
    char c = peek_at(p, pos);
    if (c != '=' && c != '-') return 0;
    int k = pos;
    while (peek_at(p, k) == c) k++;
    while (space_or_tab(peek_at(p, k))) k++;
    if (!is_line_end(peek_at(p, k))) return 0;
    return c == '=' ? 1 : 2;
}

static bool scan_thematic(const bparser *p, int pos) {
    char c = peek_at(p, pos);
    if (c != '*' && c != '-' && c != '_') return false;
    int n = 0;
    for (int k = pos; k < p->len; k++) {
        if (p->s[k] == c) {
            n++;
        } else if (!space_or_tab(p->s[k])) {
            return false;
        }
    }
    return n >= 3;
}

typedef struct {
    bool ordered;
    char marker; /* bullet char, or '.' / ')' */
    int start;
    int padding, marker_offset;
} listdata;

static int parse_list_marker(const bparser *p, int pos, bool interrupts_para, listdata *d) {
    int k = pos;
    char c = peek_at(p, k);
    memset(d, 0, sizeof *d);
    if (c == '*' || c == '-' || c == '+') {
        k++;
        if (!space_or_tab(peek_at(p, k)) && !is_line_end(peek_at(p, k))) return 0;
        if (interrupts_para) {
            int q = k;
            while (space_or_tab(peek_at(p, q))) q++;
            if (is_line_end(peek_at(p, q))) return 0;
        }
        d->marker = c;
    } else if (c >= '0' && c <= '9') {
        int start = 0, digits = 0;
        while (digits < 10 && peek_at(p, k) >= '0' && peek_at(p, k) <= '9') {
            start = start * 10 + (peek_at(p, k) - '0');
            k++;
            digits++;
        }
        if (digits > 9) return 0;
        char delim = peek_at(p, k);
        if (delim != '.' && delim != ')') return 0;
        k++;
        if (!space_or_tab(peek_at(p, k)) && !is_line_end(peek_at(p, k))) return 0;
        if (interrupts_para) {
            if (start != 1) return 0;
            int q = k;
            while (space_or_tab(peek_at(p, q))) q++;
            if (is_line_end(peek_at(p, q))) return 0;
        }
        d->ordered = true;
        d->start = start;
        d->marker = delim;
    } else {
        return 0;
    }
    return k - pos;
}

/* Trailing "###" of an ATX heading, and the spaces around it. */
static void chop_trailing_hashes(bparser *p) {
    int e = p->len;
    while (e > p->offset && space_or_tab(p->s[e - 1])) e--;
    int h = e;
    while (h > p->offset && p->s[h - 1] == '#') h--;
    if (h < e && (h == p->offset || space_or_tab(p->s[h - 1]))) {
        e = h;
        while (e > p->offset && space_or_tab(p->s[e - 1])) e--;
    }
    p->len = e;
}

/* ---- the line loop ---------------------------------------------------- */

static void process_line(bparser *p) {
    block *container = p->root;
    bool all_matched = true;
    p->offset = 0;
    p->column = 0;
    p->partially_consumed_tab = false;

    /* 1. Match the continuation prefixes of the open blocks. */
    while (container->last && container->last->open) {
        block *c = container->last;
        find_first_nonspace(p);
        bool matched = false;
        switch (c->t) {
        case B_QUOTE:
            if (p->indent <= 3 && peek_at(p, p->first_nonspace) == '>') {
                advance_offset(p, p->indent + 1, true);
                if (space_or_tab(peek_at(p, p->offset))) advance_offset(p, 1, true);
                matched = true;
            }
            break;
        case B_ITEM:
            if (p->indent >= c->marker_offset + c->padding) {
                advance_offset(p, c->marker_offset + c->padding, true);
                matched = true;
            } else if (p->blank && c->first != NULL) {
                advance_offset(p, p->first_nonspace - p->offset, false);
                matched = true;
            }
            break;
        case B_CODE:
            if (c->fenced) {
                if (p->indent <= 3 && peek_at(p, p->first_nonspace) == c->fence_char &&
                    scan_close_fence(p, p->first_nonspace, c->fence_char) >= c->fence_len) {
                    /* Closing fence: the line is consumed. */
                    c->end_line = p->line;
                    p->tip = finalize(p, c);
                    return;
                }
                for (int i = c->fence_offset; i > 0 && space_or_tab(peek_at(p, p->offset)); i--) {
                    advance_offset(p, 1, true);
                }
                matched = true;
            } else {
                if (p->indent >= CODE_INDENT) {
                    advance_offset(p, CODE_INDENT, true);
                    matched = true;
                } else if (p->blank) {
                    advance_offset(p, p->first_nonspace - p->offset, false);
                    matched = true;
                }
            }
            break;
        case B_PARA: matched = !p->blank; break;
        case B_LIST: matched = true; break;
        default: break;
        }
        if (!matched) {
            all_matched = false;
            break;
        }
        container = c;
    }
    block *last_matched = container;

    /* 2. Open new blocks. */
    bool maybe_lazy = p->tip->t == B_PARA;
    while (container->t != B_CODE) {
        find_first_nonspace(p);
        bool indented = p->indent >= CODE_INDENT;
        char c = peek_at(p, p->first_nonspace);
        int matched, level = 0;
        listdata d;
        if (!indented && c == '>') {
            advance_offset(p, p->first_nonspace + 1 - p->offset, false);
            if (space_or_tab(peek_at(p, p->offset))) advance_offset(p, 1, true);
            container = add_child(p, container, B_QUOTE);
        } else if (!indented && (matched = scan_atx_start(p, p->first_nonspace, &level)) != 0) {
            advance_offset(p, p->first_nonspace + matched - p->offset, false);
            container = add_child(p, container, B_HEADING);
            container->level = (uint8_t)level;
        } else if (!indented && (matched = scan_open_fence(p, p->first_nonspace)) != 0) {
            container = add_child(p, container, B_CODE);
            container->fenced = true;
            container->fence_char = c;
            container->fence_len = matched;
            container->fence_offset = (uint8_t)(p->first_nonspace - p->offset);
            advance_offset(p, p->first_nonspace + matched - p->offset, false);
            /* The rest of the line is the info string. */
            int a = p->offset, e = p->len;
            while (a < e && space_or_tab(p->s[a])) a++;
            while (e > a && space_or_tab(p->s[e - 1])) e--;
            container->info = p->store + p->store_len;
            container->info_len = (uint32_t)(e - a);
            store_put(p, p->s + a, (size_t)(e - a));
            advance_offset(p, p->len - p->offset, false);
        } else if (!indented && container->t == B_PARA && (level = scan_setext(p, p->first_nonspace)) != 0 &&
                   resolve_refdefs(p, container)) {
            container->t = B_HEADING;
            container->level = (uint8_t)level;
            container->setext = true;
            container->end_line = p->line;
            advance_offset(p, p->len - p->offset, false);
        } else if (!indented && !(container->t == B_PARA && !all_matched) && scan_thematic(p, p->first_nonspace)) {
            container = add_child(p, container, B_HR);
            advance_offset(p, p->len - p->offset, false);
        } else if ((!indented || container->t == B_LIST) && p->indent < 4 &&
                   (matched = parse_list_marker(p, p->first_nonspace, container->t == B_PARA, &d)) != 0) {
            advance_offset(p, p->first_nonspace + matched - p->offset, false);
            bool save_pct = p->partially_consumed_tab;
            int save_offset = p->offset, save_column = p->column;
            while (p->column - save_column <= 5 && space_or_tab(peek_at(p, p->offset))) {
                advance_offset(p, 1, true);
            }
            int i = p->column - save_column;
            if (i >= 5 || i < 1 || is_line_end(peek_at(p, p->offset))) {
                d.padding = matched + 1;
                p->offset = save_offset;
                p->column = save_column;
                p->partially_consumed_tab = save_pct;
                if (i > 0) advance_offset(p, 1, true);
            } else {
                d.padding = matched + i;
            }
            d.marker_offset = p->indent;
            if (container->t != B_LIST || container->ordered != d.ordered || container->marker != d.marker) {
                container = add_child(p, container, B_LIST);
                container->ordered = d.ordered;
                container->marker = d.marker;
                container->start = d.start;
            }
            container = add_child(p, container, B_ITEM);
            container->marker_offset = (uint8_t)d.marker_offset;
            container->padding = (uint8_t)d.padding;
        } else if (indented && !maybe_lazy && !p->blank) {
            advance_offset(p, CODE_INDENT, true);
            container = add_child(p, container, B_CODE);
        } else {
            break;
        }
        if (p->too_deep) return;
        if (accepts_lines(container->t)) break;
        maybe_lazy = false;
    }

    /* 3. Add the rest of the line to the right block. */
    find_first_nonspace(p);
    if (p->blank && container->last) container->last->last_line_blank = true;
    btype ct = (btype)container->t;
    container->last_line_blank = p->blank && ct != B_QUOTE && ct != B_HEADING && ct != B_HR &&
                                 !(ct == B_CODE && container->fenced) &&
                                 !(ct == B_ITEM && container->first == NULL && container->start_line == p->line);
    for (block *t = container; t->parent; t = t->parent) t->parent->last_line_blank = false;

    if (p->tip != last_matched && container == last_matched && !p->blank && p->tip->t == B_PARA) {
        add_line(p, p->tip); /* lazy continuation */
        return;
    }
    while (p->tip != last_matched) p->tip = finalize(p, p->tip);
    if (container->t == B_CODE) {
        if (!container->fenced || container->start_line != p->line) {
            add_line(p, container);
            if (!container->fenced && !p->blank) container->last_content_line = p->line;
        }
    } else if (p->blank) {
        /* nothing */
    } else if (accepts_lines(container->t)) {
        if (container->t == B_HEADING && !container->setext) chop_trailing_hashes(p);
        advance_offset(p, p->first_nonspace - p->offset, false);
        if (!(container->t == B_HEADING && container->setext)) add_line(p, container);
    } else {
        container = add_child(p, container, B_PARA);
        advance_offset(p, p->first_nonspace - p->offset, false);
        add_line(p, container);
    }
    p->tip = container;
}

/* Containers end where their last child ends. */
static void fix_end_lines(block *b, int depth) {
    if (depth > MD_MAX_CONTAINER_DEPTH * 2 + 4) return;
    for (block *c = b->first; c != NULL; c = c->next) fix_end_lines(c, depth + 1);
    if (b->t == B_CODE && !b->fenced && b->last_content_line) b->end_line = b->last_content_line;
    if (b->t == B_ROOT || b->t == B_QUOTE || b->t == B_LIST || b->t == B_ITEM) {
        if (b->last && b->last->end_line > b->end_line) b->end_line = b->last->end_line;
    }
}

/* Number of tabs in s[0, n). */
static size_t count_tabs(const char *s, size_t n) {
    size_t tabs = 0, k = 0;
    while (k < n) {
        if (n - k >= 8) {
            uint64_t w;
            memcpy(&w, s + k, 8);
            if (!WORD_HAS(w, '\t')) {
                k += 8;
                continue;
            }
        }
        tabs += s[k++] == '\t';
    }
    return tabs;
}

block *md_parse_blocks(const char *text, size_t n, refmap *refs, int *too_deep_line) {
    bparser p = {0};
    p.refs = refs;
    /*
     * Every body line goes to at most one block, with its line ending; a tab
     * split by a container prefix becomes up to 4 spaces; a fence line keeps
     * only its info string. So the text never outgrows the body plus a line
     * ending plus 3 bytes a tab, and the store is allocated once.
     */
    p.store_cap = n + 1 + 3 * count_tabs(text, n);
    p.store = page_alloc(p.store_cap);
    p.root = make_block(B_ROOT, 1);
    p.tip = p.root;
    int line = 0;
    /* Every '\n' ends a line; text after the last one is a line too. */
    for (size_t start = 0; start < n;) {
        size_t k = find_byte(text, start, n, '\n');
        p.s = text + start;
        p.len = (int)(k - start);
        p.line = ++line;
        process_line(&p);
        start = k + 1;
        if (p.too_deep) {
            *too_deep_line = p.too_deep_line;
            return NULL;
        }
    }
    while (p.tip != NULL) p.tip = finalize(&p, p.tip);
    p.root->end_line = line > 0 ? line : 1;
    fix_end_lines(p.root, 0);
    p.root->end_line = line > 0 ? line : 1;
    return p.root;
}
