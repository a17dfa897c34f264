/* libFuzzer target: a train job's trainer keys (plugins/trainer/config.h),
 * read from a spec a user submits.
 *
 * The first byte picks the form: 0 the rest is YAML (sdk/yamlmp.h, as
 * cairn-train reads a YAML spec), else msgpack (the map submitted). A spec
 * that is read must hold what the reader promises: strings within their
 * bounds and NUL-terminated, a task and an algorithm, a split in (0, 1) or
 * folds in 2..20, hyperparameters within TRAINER_HP_MAX, each found again
 * by its name; a refusal is a 400 whose sentence is set.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds:
 * corpus/fuzz_trainer_config (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "cairn/msg.h"
#include "config.h"
#include "yamlmp.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(const trainer_config_t *c)
{
    REQUIRE(memchr(c->data, '\0', sizeof c->data) && c->data[0]);
    REQUIRE(memchr(c->target, '\0', sizeof c->target) && c->target[0]);
    REQUIRE(memchr(c->register_model, '\0', sizeof c->register_model));
    REQUIRE(c->task == TRAINER_CLASSIFICATION || c->task == TRAINER_REGRESSION);
    REQUIRE(c->algo == TRAINER_XGBOOST || c->algo == TRAINER_LINEAR);
    if (c->folds)
        REQUIRE(c->folds >= 2 && c->folds <= TRAINER_FOLDS_MAX);
    else
        REQUIRE(c->split > 0 && c->split < 1);
    REQUIRE(c->n_hp <= TRAINER_HP_MAX && c->n_metrics <= TRAINER_METRICS_MAX);
    REQUIRE(c->rounds >= 1 && c->rounds <= TRAINER_ROUNDS_MAX);
    for (size_t i = 0; i < c->n_hp; i++)
        REQUIRE(trainer_config_hparam(c, c->hp[i].name) == c->hp[i].value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_err_t err = {0};
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] == 0) {
        if (cairn_yaml_to_msgpack(p, n, &sb, &err) != 0) goto done;
        p = sb.data;
        n = sb.size;
    }
    /* As cairn-train does: the shape checked before msgpack-c allocates. */
    if (cairn_msgpack_check(p, n, NULL) != 0) goto done;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, p, n, NULL) == MSGPACK_UNPACK_SUCCESS) {
        trainer_config_t c;
        if (trainer_config_read(&u.data, &c, &err) == 0)
            s_check(&c);
        else
            REQUIRE(err.st == 400 && err.msg[0]);
    }
    msgpack_unpacked_destroy(&u);
done:
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
