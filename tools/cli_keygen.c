/* cairn keygen — a CurveZMQ key pair (docs/TRANSPORT.md).
 *
 *   cairn keygen                 prints "public: KEY" and "secret: KEY"
 *   cairn keygen --out PREFIX    writes PREFIX.key (the secret key, mode
 *                                0600) and PREFIX.pub, prints the public key
 *
 * Keys are Z85 text, 40 characters, one per file with a newline. Neither
 * file is overwritten: a key pair in use is not lost to a typo. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"

/* Write "key\n" to a new file of mode `mode`; EXIT_USAGE saying why. */
static int s_write_new(const char *path, const char *key, mode_t mode, fail_t *f)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return cli_fail(f, EXIT_USAGE, "cannot create %s: %s%s", path, strerror(errno),
                        errno == EEXIST ? " (keygen overwrites no key: remove it, or "
                                          "choose another --out)"
                                        : "");
    char line[CAIRN_KEY_Z85_LEN + 2];
    int n = snprintf(line, sizeof line, "%s\n", key);
    bool ok =
        fchmod(fd, mode) == 0 && write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    sodium_memzero(line, sizeof line);
    if (close(fd) != 0) ok = false;
    if (ok) return EXIT_OK;
    unlink(path);
    return cli_fail(f, EXIT_INTERNAL, "cannot write %s: %s", path, strerror(saved));
}

static int s_write_pair(const char *prefix, const char *pub, const char *sec, fail_t *f)
{
    char *key_path = NULL, *pub_path = NULL;
    if (asprintf(&key_path, "%s.key", prefix) < 0) key_path = NULL;
    if (asprintf(&pub_path, "%s.pub", prefix) < 0) pub_path = NULL;
    int rc = key_path && pub_path ? EXIT_OK : cli_oom(f);
    if (rc == EXIT_OK) rc = s_write_new(key_path, sec, 0600, f);
    if (rc == EXIT_OK) {
        rc = s_write_new(pub_path, pub, 0644, f);
        if (rc != EXIT_OK) unlink(key_path); /* a secret without its public half */
    }
    if (rc == EXIT_OK) printf("%s\n", pub);
    free(key_path);
    free(pub_path);
    return rc;
}

int cli_keygen(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    (void)c;
    char pub[CAIRN_KEY_Z85_LEN + 1], sec[CAIRN_KEY_Z85_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return cli_fail(f, EXIT_INTERNAL,
                        "cannot make a key pair: %s (is libzmq built "
                        "with CURVE?)",
                        zmq_strerror(errno));
    int rc = EXIT_OK;
    if (o->out)
        rc = s_write_pair(o->out, pub, sec, f);
    else
        printf("public: %s\nsecret: %s\n", pub, sec);
    sodium_memzero(sec, sizeof sec);
    return rc;
}
