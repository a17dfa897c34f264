/* scorer_tool: the scorer's model library from the command line, for
 * integration/test_scorer_model.py; never installed.
 *
 *   scorer_tool [--margin] MODEL CSV
 *
 * MODEL: a model file or folder (scorer_model_load). CSV: rows of floats,
 * no header, an empty field or "nan" missing. Prints each row's
 * predictions (or margins) on a line, comma-separated, with 17 significant
 * digits (each float32's exact value); on failure the error's status, code and
 * sentence on stderr, exit status 1. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int s_fail(const cairn_err_t *err)
{
    fprintf(stderr, "scorer_tool: %d %s: %s\n", err->st, err->code, err->msg);
    return 1;
}

/* One CSV line into row (at most cap floats); the count, -1 past cap. */
static long s_row(char *line, float *row, size_t cap)
{
    size_t k = 0;
    char *p = line;
    for (;;) {
        char *end = p + strcspn(p, ",\r\n");
        char sep = *end;
        *end = '\0';
        if (k == cap) return -1;
        row[k++] = (*p == '\0' || strcmp(p, "nan") == 0) ? NAN : strtof(p, NULL);
        if (sep != ',') break;
        p = end + 1;
    }
    return (long)k;
}

int main(int argc, char **argv)
{
    int a = 1;
    int margin = argc > 1 && strcmp(argv[1], "--margin") == 0;
    a += margin;
    if (argc - a != 2) {
        fprintf(stderr, "usage: scorer_tool [--margin] MODEL CSV\n");
        return 2;
    }
    cairn_err_t err = {0};
    scorer_model_t *m = NULL;
    if (scorer_model_load(argv[a], &m, &err) != 0) return s_fail(&err);
    FILE *f = fopen(argv[a + 1], "r");
    if (!f) {
        perror(argv[a + 1]);
        scorer_model_destroy(&m);
        return 1;
    }
    size_t nf = scorer_model_features(m);
    size_t nout = margin ? scorer_model_groups(m) : scorer_model_outputs(m);
    float *row = calloc(nf + 64, sizeof *row), *out = calloc(nout, sizeof *out);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        long k = s_row(line, row, nf + 64);
        if (k < 0) {
            fprintf(stderr, "scorer_tool: a row has too many fields\n");
            rc = 1;
            break;
        }
        int r = margin ? scorer_model_margin(m, row, 1, (size_t)k, out, &err)
                       : scorer_model_predict(m, row, 1, (size_t)k, out, &err);
        if (r != 0) {
            rc = s_fail(&err);
            break;
        }
        for (size_t i = 0; i < nout; i++)
            printf(i ? ",%.17g" : "%.17g", (double)out[i]);
        printf("\n");
    }
    free(line);
    free(row);
    free(out);
    fclose(f);
    scorer_model_destroy(&m);
    return rc;
}
