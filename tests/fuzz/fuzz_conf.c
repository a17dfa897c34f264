/* libFuzzer target: the service map parser. Arbitrary bytes go through
 * conf_parse; a refusal must be a 400 naming the source and a line, an
 * acceptance must hold a complete conf_t; conf_destroy frees either (ASan
 * checks the leaks and the bounds).
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_conf. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_err_t e = {0};
    conf_t *c = conf_parse((const char *)data, size, "fuzz.yaml", &e);
    if (!c) {
        REQUIRE(e.st == 400 || e.st == 500);
        if (e.st == 400) {
            REQUIRE(strcmp(e.code, "bad_conf") == 0);
            REQUIRE(strncmp(e.msg, "fuzz.yaml:", 10) == 0);
            REQUIRE(e.msg[10] >= '1' && e.msg[10] <= '9'); /* a line number */
        }
        return 0;
    }
    REQUIRE(e.st == 0);
    REQUIRE(c->source && strcmp(c->source, "fuzz.yaml") == 0);
    REQUIRE(c->endpoint && c->events && c->worker_endpoint && c->state_dir &&
            c->plugin_dir && c->auth);
    REQUIRE(c->max_frame > 0 && c->max_queue > 0 && c->default_ttl_ms > 0 &&
            c->max_ttl_ms > 0 && c->heartbeat_ms > 0 && c->liveness > 0);
    for (size_t i = 0; i < c->nservices; i++) {
        const conf_service_t *s = &c->services[i];
        REQUIRE(s->name && s->name[0] && strcmp(s->name, "sys") != 0);
        REQUIRE(s->plugin && s->plugin[0]);
        REQUIRE(s->mode == CONF_INPROC || s->mode == CONF_PROCESS ||
                s->mode == CONF_REMOTE);
        REQUIRE(s->line >= 1);
        for (size_t j = 0; j < s->nsettings; j++) REQUIRE(s->keys[j] && s->vals[j]);
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(c->services[j].name, s->name) != 0);
    }
    conf_destroy(&c);
    REQUIRE(c == NULL);
    return 0;
}
