/* An extension's findings: recorded in any order, emitted sorted. */
#include "gitstore.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *code, *field, *severity, *message;
    int64_t line; /* 0 when the finding is not about a body line */
} finding;

static finding *g_findings;
static size_t g_nfindings, g_capfindings;

void finding_add(const char *code, const char *field, const char *severity, int64_t line,
                 const char *message) {
    if (g_nfindings == g_capfindings) {
        g_capfindings = g_capfindings ? g_capfindings * 2 : 16;
        g_findings = xrealloc(g_findings, g_capfindings * sizeof(finding));
    }
    g_findings[g_nfindings++] = (finding){
        arena_strndup(code, strlen(code)),         arena_strndup(field, strlen(field)),
        arena_strndup(severity, strlen(severity)), arena_strndup(message, strlen(message)),
        line,
    };
}

size_t findings_count(void) { return g_nfindings; }

static int finding_cmp(const void *a, const void *b) {
    const finding *x = a, *y = b;
    int c = strcmp(x->field, y->field);
    if (c) return c;
    c = strcmp(x->code, y->code);
    if (c) return c;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return strcmp(x->message, y->message);
}

jval *findings_json(void) {
    if (g_nfindings > 1) qsort(g_findings, g_nfindings, sizeof(finding), finding_cmp);
    jval *list = jarr();
    for (size_t k = 0; k < g_nfindings; k++) {
        jval *f = jobj();
        jobj_put(f, "code", jstr_ref(g_findings[k].code, strlen(g_findings[k].code)));
        jobj_put(f, "field", jstr_ref(g_findings[k].field, strlen(g_findings[k].field)));
        jobj_put(f, "message", jstr_ref(g_findings[k].message, strlen(g_findings[k].message)));
        jobj_put(f, "severity", jstr_ref(g_findings[k].severity, strlen(g_findings[k].severity)));
        jarr_push(list, f);
    }
    return list;
}
