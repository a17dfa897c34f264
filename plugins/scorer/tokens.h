/* plugins/scorer/tokens.h — auth_mode token: whether a Cairn token may
 * score an endpoint, asked of the kernel and cached (tokens.c says how).
 * Apart from scorer.h: it is a client of the kernel (cairn/client.h),
 * which a plugin's own header may not be. */
#ifndef CAIRN_SCORER_TOKENS_H
#define CAIRN_SCORER_TOKENS_H

#include "cairn/err.h"

typedef struct token_cache token_cache_t;

/* kernel_endpoint: where the checks go (the kernel's frontend). */
token_cache_t *token_cache_new(const char *kernel_endpoint);
void token_cache_free(token_cache_t **self_p);
/* Whether token may score endpoint (of workspace ws): 0, or -1 with err
 * (401 a bad token, 403 not allowed, 503 the kernel cannot be reached). */
int token_check(token_cache_t *t, const char *ws, const char *endpoint,
                const char *token, cairn_err_t *err);
/* Forget every yes (the auth service said something changed). */
void token_cache_forget(token_cache_t *t);

#endif
