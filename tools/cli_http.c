/* cli_http.c — the one HTTP request the CLI makes itself: `cairn endpoint
 * invoke` POSTs a body to a scoring URI (http://HOST:PORT/PATH; the scorer
 * listens on loopback). HTTP/1.1 with Connection: close, so the answer is
 * whatever arrives until the server closes; bounded in bytes and time. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define ANSWER_MAX (256u << 20)

/* http://HOST:PORT/PATH into its parts; EXIT_USAGE when it is not one. */
static int s_split_uri(const char *uri, char *host, size_t hlen, char *port,
                       size_t plen, const char **path, fail_t *f)
{
    const char *p = strncmp(uri, "http://", 7) ? NULL : uri + 7;
    const char *slash = p ? strchr(p, '/') : NULL;
    const char *colon = p ? memchr(p, ':', (size_t)(slash ? slash - p : 0)) : NULL;
    if (!slash || !colon || colon == p || (size_t)(colon - p) >= hlen ||
        (size_t)(slash - colon - 1) >= plen || slash == colon + 1)
        return cli_fail(f, EXIT_INTERNAL,
                        "the scoring URI %.200s is not http://HOST:PORT/PATH", uri);
    snprintf(host, hlen, "%.*s", (int)(colon - p), p);
    snprintf(port, plen, "%.*s", (int)(slash - colon - 1), colon + 1);
    *path = slash;
    return EXIT_OK;
}

static int s_connect(const char *host, const char *port, fail_t *f)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return -cli_fail(f, EXIT_UNREACHABLE, "%s:%s: %s", host, port,
                         gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return -cli_fail(f, EXIT_UNREACHABLE, "cannot connect to %s:%s: %s", host, port,
                         strerror(errno));
    return fd;
}

static bool s_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Everything until the server closes, within timeout_ms. */
static int s_read_all(int fd, int timeout_ms, char **out, size_t *len, fail_t *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (!buf) return cli_oom(f);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent =
            (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (spent >= timeout_ms || poll(&p, 1, (int)(timeout_ms - spent)) == 0) {
            free(buf);
            return cli_fail(f, EXIT_UNREACHABLE, "no answer within %d ms", timeout_ms);
        }
        if (n + 1 == cap) {
            if (cap >= ANSWER_MAX) {
                free(buf);
                return cli_fail(f, EXIT_INTERNAL, "the answer is over %u bytes",
                                ANSWER_MAX);
            }
            char *b = realloc(buf, cap * 2);
            if (!b) free(buf);
            buf = b;
            cap *= 2;
            continue;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(buf);
            return cli_fail(f, EXIT_UNREACHABLE, "reading the answer: %s",
                            strerror(errno));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return EXIT_OK;
}

/* The status and body of a raw answer (the body moved to its start). */
static int s_parse(char *raw, size_t len, int *status, size_t *body_off, fail_t *f)
{
    char *end = strstr(raw, "\r\n\r\n");
    if (strncmp(raw, "HTTP/1.", 7) || len < 12 || !end)
        return cli_fail(f, EXIT_INTERNAL, "the server's answer is not HTTP");
    *status = atoi(raw + 9);
    *body_off = (size_t)(end + 4 - raw);
    return EXIT_OK;
}

int cli_http_post(const char *uri, const char *const *headers, const char *body,
                  size_t len, int timeout_ms, int *status, char **answer, size_t *alen,
                  fail_t *f)
{
    char host[256], port[16];
    const char *path = "/";
    int rc = s_split_uri(uri, host, sizeof host, port, sizeof port, &path, f);
    if (rc != EXIT_OK) return rc;
    int fd = s_connect(host, port, f);
    if (fd < 0) return -fd;
    char *head = NULL;
    size_t hn = 0;
    FILE *h = open_memstream(&head, &hn);
    if (!h) {
        close(fd);
        return cli_oom(f);
    }
    fprintf(h,
            "POST %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n"
            "Content-Length: %zu\r\n",
            path, host, port, len);
    for (int i = 0; headers && headers[i]; i++) fprintf(h, "%s\r\n", headers[i]);
    fputs("\r\n", h);
    if (fclose(h) != 0) {
        close(fd);
        free(head);
        return cli_oom(f);
    }
    bool sent = s_send_all(fd, head, hn) && s_send_all(fd, body, len);
    free(head);
    char *raw = NULL;
    size_t n = 0, off = 0;
    rc = sent
             ? s_read_all(fd, timeout_ms, &raw, &n, f)
             : cli_fail(f, EXIT_UNREACHABLE, "sending to %s: %s", uri, strerror(errno));
    close(fd);
    if (rc == EXIT_OK && (rc = s_parse(raw, n, status, &off, f)) == EXIT_OK) {
        memmove(raw, raw + off, n - off + 1);
        *answer = raw;
        *alen = n - off;
        return EXIT_OK;
    }
    free(raw);
    return rc;
}
