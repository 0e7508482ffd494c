/*
 * test_http.c: native tests of the sans-IO HTTP core (http.c, http_conn.c,
 * http_app.c).
 *
 *   cd netmods/common && gcc -std=gnu11 -Wall -Wextra -O1 -g \
 *       -fsanitize=address,undefined -o /tmp/test_http test_http.c http.c \
 *       http_conn.c http_app.c && /tmp/test_http
 *
 * (netmods/build.py --test does exactly this; TEST_HTTP_MUTATIONS=N runs N
 * mutated inputs instead of 3000.) Each input is fed to a real
 * http_conn in many split sizes, down to one byte at a time, with partial
 * writes; every split must give byte-identical output and the same final
 * state. Exit status 0 means every check passed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_app.h"

static int g_checks;
static int g_failures;

#define CHECK(cond, ...) check((cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

static void check(int ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    g_checks++;
    if (ok)
        return;
    g_failures++;
    fprintf(stderr, "%s:%d: FAILED %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* A scripted driver for one http_conn                                  */
/* ------------------------------------------------------------------ */

struct script_result {
    char *out;                   /* everything the server sent */
    size_t out_len;
    int shutdowns;               /* HTTP_WANT_SHUTDOWN seen */
    int drained;                 /* reads done while draining */
    enum http_conn_phase phase;  /* where the connection ended up */
    bool closed;                 /* the connection asked to be closed */
};

static void result_free(struct script_result *r)
{
    free(r->out);
    memset(r, 0, sizeof *r);
}

static void out_append(struct script_result *r, const uint8_t *p, size_t n)
{
    char *o = realloc(r->out, r->out_len + n + 1);
    if (o == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memcpy(o + r->out_len, p, n);
    r->out = o;
    r->out_len += n;
    r->out[r->out_len] = '\0';
}

static struct http_server_config g_cfg;
static struct http_server_stats g_stats;

/*
 * Feeds `in` in pieces of at most `rstep` bytes, sends output in pieces of at
 * most `wstep` bytes, then (if eof) signals end of stream. Stops when the
 * connection wants to close, or wants input that the script does not have.
 */
static struct script_result run_script(const char *in, size_t in_len, size_t rstep,
                                       size_t wstep, bool eof)
{
    struct script_result r = {0};
    struct http_conn c;
    size_t fed = 0;
    bool eof_sent = false;
    int guard = 0;

    http_conn_init(&c, &g_cfg, &g_stats);
    while (guard++ < 50000000) {
        enum http_conn_want want = http_conn_want(&c);
        if (want == HTTP_WANT_READ) {
            size_t avail, n;
            uint8_t *space;
            if (fed == in_len) {
                if (!eof || eof_sent)
                    break;
                eof_sent = true;
                http_conn_on_read(&c, 0);
                continue;
            }
            space = http_conn_read_space(&c, &avail);
            if (space == NULL) {
                fprintf(stderr, "read space unavailable\n");
                break;
            }
            n = in_len - fed;
            if (n > rstep)
                n = rstep;
            if (n > avail)
                n = avail;
            memcpy(space, in + fed, n);
            fed += n;
            if (c.phase == HTTP_CONN_DRAINING)
                r.drained++;
            http_conn_on_read(&c, n);
        } else if (want == HTTP_WANT_WRITE) {
            struct http_iov iov[2];
            size_t count = http_conn_output(&c, iov);
            size_t budget = wstep, done = 0;
            for (size_t i = 0; i < count && budget > 0; i++) {
                size_t n = iov[i].len < budget ? iov[i].len : budget;
                out_append(&r, iov[i].base, n);
                budget -= n;
                done += n;
            }
            http_conn_on_written(&c, done);
        } else if (want == HTTP_WANT_SHUTDOWN) {
            r.shutdowns++;
            http_conn_on_shutdown(&c);
        } else {
            r.closed = true;
            break;
        }
    }
    r.phase = c.phase;
    if (r.out == NULL)
        out_append(&r, (const uint8_t *)"", 0);
    http_conn_free(&c);
    return r;
}

static const size_t SPLITS[] = {1, 2, 3, 5, 7, 13, 64, 1000, 1u << 30};
#define NSPLITS (sizeof SPLITS / sizeof SPLITS[0])

/*
 * Runs the script with every read split and a few write splits; checks all
 * runs agree, and returns the (common) result of the last one. Stats are
 * reset before each run so /stats bodies agree too.
 */
static struct script_result run_all_splits(const char *in, size_t in_len, bool eof)
{
    struct script_result first = {0}, r = {0};
    static const size_t wsteps[] = {1, 9, 1u << 30};

    for (size_t i = 0; i < NSPLITS; i++) {
        for (size_t w = 0; w < 3; w++) {
            memset(&g_stats, 0, sizeof g_stats);
            r = run_script(in, in_len, SPLITS[i], wsteps[w], eof);
            if (i == 0 && w == 0) {
                first = r;
                continue;
            }
            CHECK(r.out_len == first.out_len && memcmp(r.out, first.out, r.out_len) == 0,
                  "split %zu/%zu changed the output:\n--- 1/1:\n%s\n--- now:\n%s", SPLITS[i],
                  wsteps[w], first.out, r.out);
            CHECK(r.phase == first.phase && r.shutdowns == first.shutdowns,
                  "split %zu/%zu changed the end state (%d/%d vs %d/%d)", SPLITS[i], wsteps[w],
                  (int)r.phase, r.shutdowns, (int)first.phase, first.shutdowns);
            result_free(&r);
        }
    }
    return first;
}

static struct script_result run_str(const char *in, bool eof)
{
    return run_all_splits(in, strlen(in), eof);
}

/* Counts non-overlapping occurrences of needle in hay. */
static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + k, needle))
        n++;
    return n;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------------ */
/* Tests: the routes                                                    */
/* ------------------------------------------------------------------ */

static const char HELLO_RESPONSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 21\r\n"
    "\r\n"
    "hello from asyncwasm\n";

static void test_get_root(void)
{
    struct script_result r = run_str("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
    CHECK(strcmp(r.out, HELLO_RESPONSE) == 0, "got:\n%s", r.out);
    CHECK(r.phase == HTTP_CONN_READING, "keep-alive: still reading, phase %d", (int)r.phase);
    result_free(&r);

    /* A query string does not change the route; the client then closes. */
    r = run_str("GET /?name=value HTTP/1.1\r\nHost: x\r\n\r\n", true);
    CHECK(strcmp(r.out, HELLO_RESPONSE) == 0, "got:\n%s", r.out);
    CHECK(r.closed && r.shutdowns == 0, "closed on EOF without shutdown");
    result_free(&r);
}

static void test_head_root(void)
{
    struct script_result r = run_str("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", false);
    CHECK(strcmp(r.out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 21\r\n\r\n") == 0,
          "HEAD has the length but no body:\n%s", r.out);
    result_free(&r);
}

static void test_echo_content_length(void)
{
    struct script_result r =
        run_str("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", false);
    CHECK(strcmp(r.out, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: 11\r\n\r\nhello world") == 0,
          "got:\n%s", r.out);
    result_free(&r);

    r = run_str("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false);
    CHECK(strstr(r.out, "Content-Length: 0\r\n\r\n") != NULL && starts_with(r.out, "HTTP/1.1 200"),
          "empty echo:\n%s", r.out);
    result_free(&r);

    /* Binary bytes, including NUL and CR LF, come back unchanged. */
    {
        static const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"
                                  "a\0\r\n\xff" "b";
        r = run_all_splits(req, sizeof req - 1, false);
        CHECK(r.out_len >= 6 && memcmp(r.out + r.out_len - 6, "a\0\r\n\xff" "b", 6) == 0,
              "binary body echoed");
        result_free(&r);
    }
}

static void test_echo_chunked(void)
{
    struct script_result r = run_str("POST /echo HTTP/1.1\r\nHost: x\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\n"
                                     "1;ext=1;other\r\n \r\n"
                                     "A \r\n0123456789\r\n"
                                     "0\r\nTrailer-One: a\r\nTrailer-Two: b\r\n\r\n",
                                     false);
    CHECK(strcmp(r.out, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: 16\r\n\r\nhello 0123456789") == 0,
          "got:\n%s", r.out);
    result_free(&r);

    r = run_str("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
                false);
    CHECK(strstr(r.out, "Content-Length: 0\r\n\r\n") != NULL && starts_with(r.out, "HTTP/1.1 200"),
          "empty chunked body:\n%s", r.out);
    result_free(&r);
}

static void test_stats(void)
{
    struct script_result r =
        run_str("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\n\r\n", false);
    const char *body = strstr(r.out, "{");
    CHECK(body != NULL &&
              strcmp(body, "{\"requests\":2,\"connections\":0,\"active\":0,\"bad_requests\":0}\n") == 0,
          "stats body: %s", body ? body : r.out);
    CHECK(strstr(r.out, "Content-Type: application/json\r\nContent-Length: 59\r\n") != NULL,
          "stats headers:\n%s", r.out);
    result_free(&r);
}

static void test_not_found_and_method(void)
{
    struct script_result r = run_str("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", false);
    CHECK(starts_with(r.out, "HTTP/1.1 404 Not Found\r\n"), "404:\n%s", r.out);
    CHECK(r.phase == HTTP_CONN_READING, "404 keeps the connection");
    result_free(&r);

    r = run_str("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", false);
    CHECK(starts_with(r.out, "HTTP/1.1 405 Method Not Allowed\r\n") &&
              strstr(r.out, "\r\nAllow: POST\r\n") != NULL,
          "405 with Allow:\n%s", r.out);
    result_free(&r);

    r = run_str("DELETE / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false);
    CHECK(starts_with(r.out, "HTTP/1.1 405 ") && strstr(r.out, "\r\nAllow: GET, HEAD\r\n") != NULL,
          "405 on /:\n%s", r.out);
    CHECK(r.phase == HTTP_CONN_READING, "body consumed, connection kept");
    result_free(&r);

    /* Methods are case-sensitive: "get" is not GET. */
    r = run_str("get / HTTP/1.1\r\nHost: x\r\n\r\n", false);
    CHECK(starts_with(r.out, "HTTP/1.1 405 "), "lower-case method:\n%s", r.out);
    result_free(&r);
}

static void test_absolute_form(void)
{
    struct script_result r = run_str("POST http://example.com:8080/echo?x=1 HTTP/1.1\r\n"
                                     "Host: example.com\r\nContent-Length: 2\r\n\r\nok",
                                     false);
    CHECK(starts_with(r.out, "HTTP/1.1 200 ") && strstr(r.out, "\r\n\r\nok") != NULL,
          "absolute-form echo:\n%s", r.out);
    result_free(&r);

    r = run_str("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", false);
    CHECK(strcmp(r.out, HELLO_RESPONSE) == 0, "empty path means /:\n%s", r.out);
    result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Tests: connection management                                         */
/* ------------------------------------------------------------------ */

static void test_pipelined(void)
{
    struct script_result r = run_str(
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false);
    const char *p1 = strstr(r.out, "hello from asyncwasm\n");
    const char *p2 = strstr(r.out, "\r\n\r\nabc");
    const char *p3 = strstr(r.out, "\r\n\r\nde");
    const char *p4 = strstr(r.out, "{\"requests\":4,");
    const char *p5 = strstr(r.out, "HTTP/1.1 404");
    CHECK(count_occurrences(r.out, "HTTP/1.1 ") == 5, "five responses:\n%s", r.out);
    CHECK(p1 && p2 && p3 && p4 && p5 && p1 < p2 && p2 < p3 && p3 < p4 && p4 < p5,
          "responses in request order:\n%s", r.out);
    CHECK(count_occurrences(r.out, "Connection: close") == 1, "only the last closes");
    CHECK(r.shutdowns == 1 && r.closed, "shut down, then closed");
    result_free(&r);
}

static void test_keep_alive_rules(void)
{
    struct script_result r = run_str("GET / HTTP/1.0\r\n\r\n", false);
    CHECK(starts_with(r.out, "HTTP/1.1 200 ") && strstr(r.out, "Connection: close\r\n"),
          "HTTP/1.0 closes by default:\n%s", r.out);
    CHECK(r.shutdowns == 1 && r.closed && r.drained == 0, "closed without lingering");
    result_free(&r);

    r = run_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\n", false);
    CHECK(count_occurrences(r.out, "Connection: keep-alive\r\n") == 1 &&
              count_occurrences(r.out, "Connection: close\r\n") == 1,
          "HTTP/1.0 keep-alive, then close:\n%s", r.out);
    result_free(&r);

    r = run_str("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", false);
    CHECK(strstr(r.out, "Connection: close\r\n") != NULL && r.closed,
          "Connection: close honoured:\n%s", r.out);
    result_free(&r);

    /* Close requested with more requests behind it: they are not answered,
     * and the unread bytes are drained before the close. */
    r = run_str("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                true);
    CHECK(count_occurrences(r.out, "HTTP/1.1 ") == 1, "one response:\n%s", r.out);
    CHECK(r.closed && r.shutdowns == 1, "closed");
    result_free(&r);
}

static void test_disconnects(void)
{
    static const char *partials[] = {
        "",
        "GET / HT",
        "GET / HTTP/1.1\r\nHost: x\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
    };
    for (size_t i = 0; i < sizeof partials / sizeof partials[0]; i++) {
        struct script_result r = run_str(partials[i], true);
        CHECK(r.out_len == 0 && r.closed && r.shutdowns == 0,
              "disconnect %zu: silent close, got:\n%s", i, r.out);
        result_free(&r);
    }
    /* A complete request followed by a half-close is still answered. */
    {
        struct script_result r = run_str("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTT", true);
        CHECK(strcmp(r.out, HELLO_RESPONSE) == 0 && r.closed, "answered then closed:\n%s",
              r.out);
        result_free(&r);
    }
}

static void test_expect_continue(void)
{
    static const char head[] =
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    struct script_result r = run_str(head, false);
    CHECK(strcmp(r.out, "HTTP/1.1 100 Continue\r\n\r\n") == 0, "interim response:\n%s", r.out);
    CHECK(r.phase == HTTP_CONN_READING, "then reads the body");
    result_free(&r);

    /* Whether the 100 is sent depends on whether the body arrived with the
     * head (RFC 9110 section 10.1.1 lets a server skip it then). */
    for (size_t i = 0; i < NSPLITS; i++) {
        static const char full[] = "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                   "Content-Length: 4\r\n\r\nbody";
        /* The read that completes the head: does it also complete the body? */
        size_t head_len = sizeof full - 1 - 4;
        size_t read_end = (head_len + SPLITS[i] - 1) / SPLITS[i] * SPLITS[i];
        bool body_separate = read_end < sizeof full - 1;
        r = run_script(full, sizeof full - 1, SPLITS[i], 1u << 30, false);
        CHECK(count_occurrences(r.out, "HTTP/1.1 100 Continue\r\n\r\n") == (body_separate ? 1 : 0),
              "split %zu: 100 only when the body was incomplete:\n%s", SPLITS[i], r.out);
        CHECK(strstr(r.out, "\r\n\r\nbody") != NULL && count_occurrences(r.out, "HTTP/1.1 200 ") == 1,
              "split %zu: echo:\n%s", SPLITS[i], r.out);
        result_free(&r);
    }

    r = run_str("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 2000000\r\n\r\n",
                false);
    CHECK(starts_with(r.out, "HTTP/1.1 413 "), "too large: 413 instead of 100:\n%s", r.out);
    result_free(&r);

    r = run_str("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n", false);
    CHECK(starts_with(r.out, "HTTP/1.1 417 "), "unknown expectation:\n%s", r.out);
    result_free(&r);
}

static void test_leniency(void)
{
    struct script_result r = run_str("\r\n\r\nGET / HTTP/1.1\nHost: x\n\n", false);
    CHECK(strcmp(r.out, HELLO_RESPONSE) == 0, "leading CRLFs and bare LFs:\n%s", r.out);
    result_free(&r);

    r = run_str("GET / HTTP/1.1\r\nHOST:    x   \r\ncontent-LENGTH: 0\r\n\r\n", false);
    CHECK(strcmp(r.out, HELLO_RESPONSE) == 0, "case and OWS:\n%s", r.out);
    result_free(&r);

    r = run_str("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n"
                "\r\nhi",
                false);
    CHECK(starts_with(r.out, "HTTP/1.1 200 ") && strstr(r.out, "\r\n\r\nhi"),
          "agreeing Content-Length values:\n%s", r.out);
    result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Tests: malformed and oversized input                                 */
/* ------------------------------------------------------------------ */

struct bad_case {
    const char *request;
    const char *status_line;     /* expected prefix */
};

static void test_malformed(void)
{
    static const struct bad_case cases[] = {
        {"GET /\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {" GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / http/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.10\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 "},
        {"GET / HTTP/0.9\r\n\r\n", "HTTP/1.1 505 "},
        {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET nothing HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET http:/// HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},                       /* no Host */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nName : v\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n  folded\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nA: b\x01" "c\r\n\r\n", "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", "HTTP/1.1 400 "},
        /* Long values are checked 8 bytes at a time: a bad byte deep inside one. */
        {"GET / HTTP/1.1\r\nHost: x\r\nA: abcdefghijklmnop\x7f" "qrstuvwxyz\r\n\r\n",
         "HTTP/1.1 400 "},
        {"GET / HTTP/1.1\r\nHost: x\r\nA: abcdefgh\tij\x1f" "klmnop\xff\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         "HTTP/1.1 413 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", "HTTP/1.1 413 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
         "\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         "HTTP/1.1 501 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
         "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
         "0\r\nbad trailer\r\n\r\n", "HTTP/1.1 400 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "fffffffffffffffffffff\r\n", "HTTP/1.1 413 "},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n",
         "HTTP/1.1 413 "},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct script_result r = run_str(cases[i].request, true);
        CHECK(starts_with(r.out, cases[i].status_line),
              "case %zu: want %s, got:\n%s", i, cases[i].status_line, r.out);
        CHECK(strstr(r.out, "Connection: close\r\n") != NULL, "case %zu closes", i);
        CHECK(count_occurrences(r.out, "HTTP/1.1 ") == 1, "case %zu: one response", i);
        CHECK(r.closed && r.shutdowns == 1, "case %zu: shut down then closed", i);
        result_free(&r);
    }
}

/* An error leaves the connection draining until the peer closes. */
static void test_error_lingers(void)
{
    struct script_result r = run_str("BAD\r\nlots of junk that follows\r\n", false);
    CHECK(starts_with(r.out, "HTTP/1.1 400 "), "400:\n%s", r.out);
    CHECK(r.phase == HTTP_CONN_DRAINING && r.shutdowns == 1, "draining, phase %d",
          (int)r.phase);
    result_free(&r);
}

static char *repeat(const char *prefix, char fill, size_t count, const char *suffix, size_t *len)
{
    size_t a = strlen(prefix), c = strlen(suffix);
    char *s = malloc(a + count + c + 1);
    if (s == NULL)
        exit(2);
    memcpy(s, prefix, a);
    memset(s + a, fill, count);
    memcpy(s + a + count, suffix, c + 1);
    *len = a + count + c;
    return s;
}

static void test_oversize(void)
{
    size_t len;
    char *s = repeat("GET / HTTP/1.1\r\nHost: x\r\nBig: ", 'a', 70000, "\r\n\r\n", &len);
    struct script_result r = run_script(s, len, 1, 1u << 30, true);
    CHECK(starts_with(r.out, "HTTP/1.1 431 "), "huge header, byte at a time:\n%s", r.out);
    result_free(&r);
    r = run_script(s, len, 65536, 1u << 30, true);
    CHECK(starts_with(r.out, "HTTP/1.1 431 "), "huge header, big reads:\n%s", r.out);
    result_free(&r);
    free(s);

    s = repeat("GET /", 'a', 70000, " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
    r = run_script(s, len, 4096, 1u << 30, true);
    CHECK(starts_with(r.out, "HTTP/1.1 414 "), "huge request line:\n%s", r.out);
    result_free(&r);
    free(s);

    /* A head just under the limit is fine. */
    s = repeat("GET / HTTP/1.1\r\nHost: x\r\nBig: ", 'a', 65000, "\r\n\r\n", &len);
    r = run_script(s, len, 4096, 1u << 30, false);
    CHECK(strcmp(r.out, HELLO_RESPONSE) == 0, "large but allowed head");
    result_free(&r);
    free(s);

    /* 101 header fields: one too many. */
    {
        char buf[4096];
        size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < 101; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "H%d: v\r\n", i);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
        r = run_script(buf, n, 7, 1u << 30, true);
        CHECK(starts_with(r.out, "HTTP/1.1 431 "), "too many fields:\n%s", r.out);
        result_free(&r);
    }

    /* A chunk-size line padded with a huge extension. */
    s = repeat("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;e=", 'x',
               10000, "\r\n", &len);
    r = run_script(s, len, 100, 1u << 30, true);
    CHECK(starts_with(r.out, "HTTP/1.1 400 "), "long chunk line:\n%s", r.out);
    result_free(&r);
    free(s);
}

/* Exactly the body limit is accepted; one more byte is 413. */
static void test_body_limits(void)
{
    size_t max = g_cfg.limits.max_body_bytes, len;
    char head[128];
    char *s, *body_at;
    struct script_result r;

    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             max);
    s = repeat(head, 'z', max, "", &len);
    r = run_script(s, len, 65536, 1u << 30, false);
    body_at = strstr(r.out, "\r\n\r\n");
    CHECK(starts_with(r.out, "HTTP/1.1 200 ") && body_at != NULL &&
              (size_t)(r.out + r.out_len - (body_at + 4)) == max,
          "1 MiB echo");
    result_free(&r);
    free(s);

    /* Chunked: 1 MiB in 1-byte chunks is fine (framing is 5x the data). */
    {
        size_t cap = 128 + max * 6 + 16, n;
        char *in = malloc(cap);
        if (in == NULL)
            exit(2);
        n = (size_t)snprintf(in, cap,
                             "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (size_t i = 0; i < max; i++) {
            memcpy(in + n, "1\r\nq\r\n", 6);
            n += 6;
        }
        memcpy(in + n, "0\r\n\r\n", 5);
        n += 5;
        r = run_script(in, n, 65536, 1u << 30, false);
        CHECK(starts_with(r.out, "HTTP/1.1 200 ") && r.phase == HTTP_CONN_READING,
              "1 MiB in 1-byte chunks:\n%.200s", r.out);
        result_free(&r);

        /* One more chunk byte: 413. */
        n -= 5;
        memcpy(in + n, "1\r\nq\r\n0\r\n\r\n", 11);
        n += 11;
        r = run_script(in, n, 65536, 1u << 30, true);
        CHECK(starts_with(r.out, "HTTP/1.1 413 "), "over the limit by one:\n%.200s", r.out);
        result_free(&r);
        free(in);
    }
}

/* ------------------------------------------------------------------ */
/* Tests: the parser directly                                           */
/* ------------------------------------------------------------------ */

static const struct http_limits CLIENT_LIMITS = {65536, 1 << 20, 100};

static enum http_parse_status parse_response(const char *text, bool eof, bool head,
                                             struct http_parser *p, char *buf, size_t *len)
{
    http_parser_init(p, HTTP_PARSE_RESPONSE, &CLIENT_LIMITS);
    p->response_to_head = head;
    *len = strlen(text);
    memcpy(buf, text, *len);
    return http_parse(p, (uint8_t *)buf, len, eof);
}

static void test_response_parser(void)
{
    struct http_parser p;
    char buf[512];
    size_t len;
    enum http_parse_status st;

    st = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", false, false, &p,
                        buf, &len);
    CHECK(st == HTTP_PARSE_DONE && p.msg.status == 200 && p.msg.body.len == 5 &&
              memcmp(buf + p.msg.body.off, "hello", 5) == 0 && p.msg_end == len - 5,
          "content-length response (st %d)", (int)st);

    st = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
                        "2\r\nde\r\n0\r\n\r\n",
                        false, false, &p, buf, &len);
    CHECK(st == HTTP_PARSE_DONE && p.msg.body.len == 5 &&
              memcmp(buf + p.msg.body.off, "abcde", 5) == 0 && p.msg_end == len,
          "chunked response decoded in place (st %d, len %zu)", (int)st, len);

    st = parse_response("HTTP/1.0 200 OK\r\n\r\nuntil the end", false, false, &p, buf, &len);
    CHECK(st == HTTP_PARSE_NEED_MORE, "body until EOF needs EOF");
    st = http_parse(&p, (uint8_t *)buf, &len, true);
    CHECK(st == HTTP_PARSE_DONE && p.msg.body.len == 13 && !p.msg.keep_alive,
          "body until EOF (st %d)", (int)st);

    st = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false, true, &p, buf,
                        &len);
    CHECK(st == HTTP_PARSE_DONE && p.msg.body.len == 0, "HEAD response has no body");

    st = parse_response("HTTP/1.1 204 No Content\r\n\r\n", false, false, &p, buf, &len);
    CHECK(st == HTTP_PARSE_DONE && p.msg.status == 204, "204");

    st = parse_response("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n"
                        "Content-Length: 0\r\n\r\n",
                        false, false, &p, buf, &len);
    CHECK(st == HTTP_PARSE_DONE && p.msg.status == 100, "interim response first");
    http_parser_next(&p, (uint8_t *)buf, &len);
    st = http_parse(&p, (uint8_t *)buf, &len, false);
    CHECK(st == HTTP_PARSE_DONE && p.msg.status == 404, "then the final one");

    st = parse_response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, false, &p, buf, &len);
    CHECK(st == HTTP_PARSE_DONE && p.msg.status == 200, "no reason phrase");

    st = parse_response("HTTP/1.1 20x OK\r\n\r\n", false, false, &p, buf, &len);
    CHECK(st == HTTP_PARSE_ERROR, "bad status code");

    st = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", true, false, &p, buf,
                        &len);
    CHECK(st == HTTP_PARSE_TRUNCATED, "truncated body (st %d)", (int)st);
}

/* The decoded chunked body never keeps the framing bytes around. */
static void test_chunked_compaction(void)
{
    struct http_parser p;
    static uint8_t buf[1 << 16];
    size_t len = 0;
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    enum http_parse_status st;
    size_t head_len = strlen(head);

    http_parser_init(&p, HTTP_PARSE_REQUEST, &g_cfg.limits);
    memcpy(buf, head, head_len);
    len = head_len;
    st = http_parse(&p, buf, &len, false);
    CHECK(st == HTTP_PARSE_NEED_MORE, "head parsed");
    for (int i = 0; i < 5000; i++) {
        memcpy(buf + len, "1\r\nQ\r\n", 6);
        len += 6;
        st = http_parse(&p, buf, &len, false);
        if (st != HTTP_PARSE_NEED_MORE)
            break;
    }
    CHECK(st == HTTP_PARSE_NEED_MORE && len == head_len + 5000,
          "buffer holds only head + decoded body (len %zu)", len);
    memcpy(buf + len, "0\r\n\r\nNEXT", 9);
    len += 9;
    st = http_parse(&p, buf, &len, false);
    CHECK(st == HTTP_PARSE_DONE && p.msg.body.len == 5000 && len - p.msg_end == 4 &&
              memcmp(buf + p.msg_end, "NEXT", 4) == 0,
          "next message preserved after the body");
}

/* ------------------------------------------------------------------ */
/* Robustness: mutated requests never crash and get a sane answer        */
/* ------------------------------------------------------------------ */

static uint32_t g_rng = 12345;

static uint32_t rng(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/* Does out hold only complete, well-formed responses (checked with the parser itself)? */
static bool responses_well_formed(const char *out, size_t out_len, bool head)
{
    static const struct http_limits limits = {65536, 2 << 20, 100};
    struct http_parser p;
    uint8_t *buf = malloc(out_len + 1);
    size_t len = out_len;
    bool ok = true;

    if (buf == NULL)
        exit(2);
    memcpy(buf, out, out_len);
    http_parser_init(&p, HTTP_PARSE_RESPONSE, &limits);
    while (ok && len > 0) {
        p.response_to_head = head;
        ok = http_parse(&p, buf, &len, true) == HTTP_PARSE_DONE && p.msg.status >= 100 &&
             !p.msg.chunked && (p.msg.status < 200 || p.msg.has_content_length);
        if (ok)
            http_parser_next(&p, buf, &len);
    }
    free(buf);
    return ok;
}

static void test_mutations(void)
{
    static const char *seeds[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n"
        "0\r\nT: v\r\n\r\n",
        "GET /stats HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };
    static const char alphabet[] = "\r\n :;,0123456789aAfF/\x00\x7f\xff\tHTTP";
    int responses = 0, iterations = 3000;
    const char *env = getenv("TEST_HTTP_MUTATIONS"); /* longer runs on demand */

    if (env != NULL && atoi(env) > 0)
        iterations = atoi(env);
    for (int iter = 0; iter < iterations; iter++) {
        char in[512];
        const char *seed = seeds[(size_t)iter % (sizeof seeds / sizeof seeds[0])];
        size_t n = strlen(seed);
        int edits = 1 + (int)(rng() % 4);
        struct script_result r;

        memcpy(in, seed, n);
        for (int e = 0; e < edits; e++) {
            size_t at = rng() % (n + 1);
            char ch = alphabet[rng() % (sizeof alphabet - 1)];
            switch (rng() % 3) {
            case 0: /* replace */
                if (at < n)
                    in[at] = ch;
                break;
            case 1: /* insert */
                if (n < sizeof in - 1) {
                    memmove(in + at + 1, in + at, n - at);
                    in[at] = ch;
                    n++;
                }
                break;
            default: /* delete */
                if (at < n) {
                    memmove(in + at, in + at + 1, n - at - 1);
                    n--;
                }
                break;
            }
        }
        memset(&g_stats, 0, sizeof g_stats);
        r = run_script(in, n, 1 + rng() % 9, 1 + rng() % 50, (rng() & 1) != 0);
        /* Whatever was sent parses as a sequence of complete responses. */
        if (r.out_len > 0) {
            CHECK(responses_well_formed(r.out, r.out_len, starts_with(in, "HEAD ")),
                  "mutation %d: malformed output:\n%s", iter, r.out);
            responses++;
        }
        result_free(&r);
    }
    CHECK(responses > iterations / 3, "most mutations get an answer (%d)", responses);
}

static void test_format_helpers(void)
{
    char d[21];
    uint32_t v;
    d[http_format_u64(d, 0)] = '\0';
    CHECK(strcmp(d, "0") == 0, "0");
    d[http_format_u64(d, UINT64_MAX)] = '\0';
    CHECK(strcmp(d, "18446744073709551615") == 0, "u64 max");
    CHECK(http_parse_u32("3", 0, 10, &v) && v == 3, "parse 3");
    CHECK(!http_parse_u32("11", 0, 10, &v), "above max");
    CHECK(!http_parse_u32("", 0, 10, &v) && !http_parse_u32("1a", 0, 10, &v), "junk");
    CHECK(!http_parse_u32("99999999999999999999", 0, UINT32_MAX, &v), "overflow");
}

int main(void)
{
    http_server_config_default(&g_cfg);

    test_format_helpers();
    test_get_root();
    test_head_root();
    test_echo_content_length();
    test_echo_chunked();
    test_stats();
    test_not_found_and_method();
    test_absolute_form();
    test_pipelined();
    test_keep_alive_rules();
    test_disconnects();
    test_expect_continue();
    test_leniency();
    test_malformed();
    test_error_lingers();
    test_oversize();
    test_body_limits();
    test_response_parser();
    test_chunked_compaction();
    test_mutations();

    printf("test_http: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
