/*
 * http.c: the sans-IO HTTP/1.1 parser (see http.h); the server connection
 * built on it is in http_conn.c.
 *
 * Strategy: the parser is a loop over states; line-oriented states scan for
 * LF from `pos` (so each byte is looked at once however the input is split)
 * and then hand the complete line to a small function per line kind. Body
 * states copy or move bytes. Every function that can fail records an HTTP
 * status and a static reason and moves the parser to HTTP_STATE_ERROR, which
 * is sticky.
 *
 * Accepted syntax (RFC 9112), deliberately strict where leniency has been
 * used for request smuggling:
 *   - lines end in CRLF or a bare LF; a CR anywhere else is an error;
 *   - request line: method SP target SP HTTP/1.x, single spaces;
 *   - empty lines before a request line are skipped (RFC 9112 section 2.2);
 *   - field lines: token ":" OWS value OWS; no space before the colon, no
 *     obsolete line folding, no control characters in values;
 *   - Content-Length: digits; repeated or listed values must agree;
 *   - Transfer-Encoding: only "chunked" (501 otherwise), never together with
 *     Content-Length and never in an HTTP/1.0 request (400);
 *   - HTTP/1.1 requests need exactly one Host field.
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

/* A chunk-size line (size and extensions) longer than this is refused. */
#define HTTP_MAX_CHUNK_LINE 4096

/* ------------------------------------------------------------------ */
/* Character classes and small helpers                                  */
/* ------------------------------------------------------------------ */

/*
 * Character classes, one table lookup per byte (the header bytes of every
 * request go through these): CHAR_TCHAR for token characters (RFC 9110
 * section 5.6.2: ALPHA, DIGIT and !#$%&'*+-.^_`|~), CHAR_VALUE for what a
 * field value may contain (field-vchar, obs-text, SP and HTAB).
 */
enum { CHAR_TCHAR = 1, CHAR_VALUE = 2 };

static const uint8_t CHAR_CLASS[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static bool is_tchar(uint8_t c)
{
    return (CHAR_CLASS[c] & CHAR_TCHAR) != 0;
}

static bool is_field_value_char(uint8_t c)
{
    return (CHAR_CLASS[c] & CHAR_VALUE) != 0;
}

/*
 * True if every byte of s[0, n) may appear in a field value. Header values
 * are most of a request's bytes, so they are checked 8 at a time: a word
 * without a byte below 0x20 or equal to 0x7f (DEL) is valid as a whole
 * (the classic "has a zero byte" test, on x - 0x20.. and on x ^ 0x7f..);
 * only a word that may hold one (an HTAB, say) is looked at byte by byte.
 */
static bool all_field_value_chars(const uint8_t *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x, del;
        memcpy(&x, s + i, 8);
        del = x ^ (0x7f * ones);
        if ((((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs) {
            for (size_t k = i; k < i + 8; k++) {
                if (!is_field_value_char(s[k]))
                    return false;
            }
        }
    }
    for (; i < n; i++) {
        if (!is_field_value_char(s[i]))
            return false;
    }
    return true;
}

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* Case-insensitive comparison of s[0, n) with a lower-case literal. */
static bool equals_nocase(const uint8_t *s, size_t n, const char *lower)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (lower[i] == '\0' || ascii_lower(s[i]) != (uint8_t)lower[i])
            return false;
    }
    return lower[i] == '\0';
}

static bool has_prefix_nocase(const uint8_t *s, size_t n, const char *lower)
{
    size_t k = strlen(lower);
    return n >= k && equals_nocase(s, k, lower);
}

/* Trims OWS from both ends of s[*start, *end). */
static void trim_ows(const uint8_t *s, size_t *start, size_t *end)
{
    while (*start < *end && is_ows(s[*start]))
        (*start)++;
    while (*end > *start && is_ows(s[*end - 1]))
        (*end)--;
}

/*
 * Iterates over the comma-separated elements of a list-valued field
 * (RFC 9110 section 5.6.1), skipping empty elements. Returns false when done.
 */
static bool next_list_element(const uint8_t *v, size_t n, size_t *cursor,
                              size_t *elem_start, size_t *elem_end)
{
    while (*cursor < n) {
        size_t start = *cursor;
        const uint8_t *comma = memchr(v + start, ',', n - start);
        size_t end = comma ? (size_t)(comma - v) : n;
        *cursor = comma ? end + 1 : n;
        trim_ows(v, &start, &end);
        if (end > start) {
            *elem_start = start;
            *elem_end = end;
            return true;
        }
    }
    return false;
}

size_t http_format_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

bool http_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* ------------------------------------------------------------------ */
/* Parser                                                               */
/* ------------------------------------------------------------------ */

void http_parser_init(struct http_parser *p, enum http_parse_mode mode,
                      const struct http_limits *limits)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->limits = *limits;
    p->state = HTTP_STATE_START_LINE;
}

static void reset_for_next_message(struct http_parser *p)
{
    struct http_limits limits = p->limits;
    enum http_parse_mode mode = p->mode;
    http_parser_init(p, mode, &limits);
}

static enum http_parse_status fail(struct http_parser *p, int status, const char *reason)
{
    p->state = HTTP_STATE_ERROR;
    p->error_status = status;
    p->error_reason = reason;
    return HTTP_PARSE_ERROR;
}

bool http_parser_in_body(const struct http_parser *p)
{
    return p->state == HTTP_STATE_BODY_LENGTH || p->state == HTTP_STATE_CHUNK_SIZE ||
           p->state == HTTP_STATE_CHUNK_DATA || p->state == HTTP_STATE_CHUNK_DATA_END ||
           p->state == HTTP_STATE_TRAILER_LINE || p->state == HTTP_STATE_BODY_UNTIL_EOF;
}

static size_t decoded_body_len(const struct http_parser *p)
{
    return p->body_end - p->msg.body.off;
}

/* "HTTP/" DIGIT "." DIGIT, major 1 only. Returns 0 or an HTTP status. */
static int parse_version(const uint8_t *s, size_t n, int *minor)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' ||
        s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9')
        return 400;
    if (s[5] != '1')
        return 505;
    *minor = s[7] - '0' >= 1 ? 1 : 0;
    return 0;
}

/*
 * Finds the path inside a request target: origin-form "/p?q", absolute-form
 * "http://authority/p?q", or asterisk-form "*". False if the form is invalid.
 */
static bool split_target(const uint8_t *buf, struct http_span target, struct http_span *path)
{
    const uint8_t *t = buf + target.off;
    size_t n = target.len, start, end;

    if (t[0] == '/') {
        start = 0;
    } else if (n == 1 && t[0] == '*') {
        *path = target;
        return true;
    } else {
        size_t scheme_len;
        if (has_prefix_nocase(t, n, "http://"))
            scheme_len = 7;
        else if (has_prefix_nocase(t, n, "https://"))
            scheme_len = 8;
        else
            return false;
        start = scheme_len;
        while (start < n && t[start] != '/' && t[start] != '?')
            start++;
        if (start == scheme_len)
            return false; /* empty authority */
        if (start < n && t[start] == '?')
            start = n; /* "http://h?q": empty path */
    }
    end = start;
    while (end < n && t[end] != '?')
        end++;
    path->off = target.off + start;
    path->len = end - start;
    return true;
}

static enum http_parse_status on_request_line(struct http_parser *p, const uint8_t *buf,
                                              size_t start, size_t end)
{
    const uint8_t *line = buf + start;
    size_t n = end - start;
    const uint8_t *sp1 = memchr(line, ' ', n);
    const uint8_t *sp2;
    size_t method_len, target_off, target_len;
    int status;

    if (sp1 == NULL)
        return fail(p, 400, "malformed request line");
    method_len = (size_t)(sp1 - line);
    target_off = method_len + 1;
    sp2 = memchr(line + target_off, ' ', n - target_off);
    if (sp2 == NULL || method_len == 0)
        return fail(p, 400, "malformed request line");
    target_len = (size_t)(sp2 - line) - target_off;
    if (target_len == 0)
        return fail(p, 400, "malformed request line");

    for (size_t i = 0; i < method_len; i++) {
        if (!is_tchar(line[i]))
            return fail(p, 400, "malformed request method");
    }
    for (size_t i = 0; i < target_len; i++) {
        uint8_t c = line[target_off + i];
        if (c < 0x21 || c > 0x7e)
            return fail(p, 400, "malformed request target");
    }
    status = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - line), &p->msg.version_minor);
    if (status != 0)
        return fail(p, status, status == 505 ? "HTTP version not supported"
                                             : "malformed HTTP version");

    p->msg.method = (struct http_span){start, method_len};
    p->msg.target = (struct http_span){start + target_off, target_len};
    if (!split_target(buf, p->msg.target, &p->msg.path))
        return fail(p, 400, "malformed request target");
    p->state = HTTP_STATE_HEADER_LINE;
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status on_status_line(struct http_parser *p, const uint8_t *buf,
                                             size_t start, size_t end)
{
    const uint8_t *line = buf + start;
    size_t n = end - start;
    int status = 0;

    if (n < 12 || line[8] != ' ' || parse_version(line, 8, &p->msg.version_minor) != 0)
        return fail(p, 400, "malformed status line");
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return fail(p, 400, "malformed status code");
        status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || (n > 12 && line[12] != ' '))
        return fail(p, 400, "malformed status code");
    for (size_t i = 13; i < n; i++) {
        if (!is_field_value_char(line[i]))
            return fail(p, 400, "malformed reason phrase");
    }
    p->msg.status = status;
    p->state = HTTP_STATE_HEADER_LINE;
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status on_content_length(struct http_parser *p, const uint8_t *v, size_t n)
{
    size_t cursor = 0, s, e;
    bool any = false;

    while (next_list_element(v, n, &cursor, &s, &e)) {
        uint64_t value = 0;
        for (size_t i = s; i < e; i++) {
            if (v[i] < '0' || v[i] > '9')
                return fail(p, 400, "malformed Content-Length");
            if (value > (UINT64_MAX - 9) / 10)
                return fail(p, 413, "body too large");
            value = value * 10 + (uint64_t)(v[i] - '0');
        }
        if (p->msg.has_content_length && value != p->msg.content_length)
            return fail(p, 400, "conflicting Content-Length values");
        p->msg.has_content_length = true;
        p->msg.content_length = value;
        any = true;
    }
    if (!any)
        return fail(p, 400, "malformed Content-Length");
    if (p->msg.content_length > p->limits.max_body_bytes)
        return fail(p, 413, "body too large");
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status on_transfer_encoding(struct http_parser *p, const uint8_t *v,
                                                   size_t n)
{
    size_t cursor = 0, s, e;

    while (next_list_element(v, n, &cursor, &s, &e)) {
        if (!equals_nocase(v + s, e - s, "chunked"))
            return fail(p, 501, "unsupported transfer coding");
        if (p->msg.chunked)
            return fail(p, 400, "chunked applied twice");
        p->msg.chunked = true;
    }
    p->saw_transfer_encoding = true;
    if (!p->msg.chunked)
        return fail(p, 400, "malformed Transfer-Encoding");
    return HTTP_PARSE_NEED_MORE;
}

static void on_connection(struct http_parser *p, const uint8_t *v, size_t n)
{
    size_t cursor = 0, s, e;
    while (next_list_element(v, n, &cursor, &s, &e)) {
        if (equals_nocase(v + s, e - s, "close"))
            p->connection_close = true;
        else if (equals_nocase(v + s, e - s, "keep-alive"))
            p->connection_keep_alive = true;
    }
}

/* Splits "name: value" and validates both; offsets are absolute in buf. */
static enum http_parse_status split_field_line(struct http_parser *p, const uint8_t *buf,
                                               size_t start, size_t end, size_t *name_end,
                                               size_t *value_start, size_t *value_end)
{
    const uint8_t *colon;

    if (is_ows(buf[start]))
        return fail(p, 400, "obsolete line folding");
    colon = memchr(buf + start, ':', end - start);
    if (colon == NULL || colon == buf + start)
        return fail(p, 400, "malformed header field");
    *name_end = (size_t)(colon - buf);
    for (size_t i = start; i < *name_end; i++) {
        if (!is_tchar(buf[i]))
            return fail(p, 400, "malformed header field name");
    }
    *value_start = *name_end + 1;
    *value_end = end;
    trim_ows(buf, value_start, value_end);
    if (!all_field_value_chars(buf + *value_start, *value_end - *value_start))
        return fail(p, 400, "malformed header field value");
    if (++p->header_count > p->limits.max_header_count)
        return fail(p, 431, "too many header fields");
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status on_header_line(struct http_parser *p, const uint8_t *buf,
                                             size_t start, size_t end)
{
    size_t name_end, vs, ve;
    const uint8_t *name = buf + start, *value;
    size_t name_len, value_len;
    enum http_parse_status st = split_field_line(p, buf, start, end, &name_end, &vs, &ve);

    if (st != HTTP_PARSE_NEED_MORE)
        return st;
    name_len = name_end - start;
    value = buf + vs;
    value_len = ve - vs;

    /* Most fields are none of these: the length rules them out with one compare. */
    switch (name_len) {
    case sizeof "content-length" - 1:
        if (equals_nocase(name, name_len, "content-length"))
            return on_content_length(p, value, value_len);
        break;
    case sizeof "transfer-encoding" - 1:
        if (equals_nocase(name, name_len, "transfer-encoding"))
            return on_transfer_encoding(p, value, value_len);
        break;
    case sizeof "connection" - 1:
        if (equals_nocase(name, name_len, "connection"))
            on_connection(p, value, value_len);
        break;
    case sizeof "host" - 1:
        if (p->mode == HTTP_PARSE_REQUEST && equals_nocase(name, name_len, "host"))
            p->host_count++;
        break;
    case sizeof "expect" - 1:
        if (p->mode == HTTP_PARSE_REQUEST && equals_nocase(name, name_len, "expect")) {
            if (!equals_nocase(value, value_len, "100-continue"))
                return fail(p, 417, "unsupported expectation");
            p->msg.expect_continue = true;
        }
        break;
    default:
        break;
    }
    return HTTP_PARSE_NEED_MORE;
}

static bool response_has_no_body(const struct http_parser *p)
{
    int s = p->msg.status;
    return p->response_to_head || (s >= 100 && s < 200) || s == 204 || s == 304;
}

/* The empty line after the header section: decide how the body is framed. */
static enum http_parse_status on_head_complete(struct http_parser *p)
{
    struct http_message *m = &p->msg;

    m->keep_alive = !p->connection_close &&
                    (m->version_minor >= 1 || p->connection_keep_alive);
    m->body.off = p->pos;
    p->body_end = p->pos;

    if (p->mode == HTTP_PARSE_REQUEST) {
        if (m->version_minor >= 1 && p->host_count == 0)
            return fail(p, 400, "missing Host header");
        if (p->host_count > 1)
            return fail(p, 400, "duplicate Host header");
        if (p->saw_transfer_encoding && m->version_minor == 0)
            return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
    } else if (response_has_no_body(p)) {
        p->state = HTTP_STATE_DONE;
        return HTTP_PARSE_NEED_MORE;
    }
    if (p->saw_transfer_encoding && m->has_content_length)
        return fail(p, 400, "both Content-Length and Transfer-Encoding");

    if (m->chunked) {
        p->state = HTTP_STATE_CHUNK_SIZE;
    } else if (m->has_content_length) {
        p->remaining = m->content_length;
        p->state = m->content_length == 0 ? HTTP_STATE_DONE : HTTP_STATE_BODY_LENGTH;
    } else if (p->mode == HTTP_PARSE_RESPONSE) {
        m->keep_alive = false; /* the body ends when the connection does */
        p->state = HTTP_STATE_BODY_UNTIL_EOF;
    } else {
        p->state = HTTP_STATE_DONE;
    }
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status on_chunk_size_line(struct http_parser *p, const uint8_t *buf,
                                                 size_t start, size_t end)
{
    uint64_t size = 0;
    size_t i = start;
    uint64_t room = p->limits.max_body_bytes - decoded_body_len(p);

    for (; i < end && hex_value(buf[i]) >= 0; i++) {
        if (size > (UINT64_MAX >> 4))
            return fail(p, 413, "body too large");
        size = (size << 4) | (uint64_t)hex_value(buf[i]);
    }
    if (i == start)
        return fail(p, 400, "bad chunk size");
    while (i < end && is_ows(buf[i]))
        i++;
    if (i < end) {
        if (buf[i] != ';')
            return fail(p, 400, "bad chunk size");
        for (; i < end; i++) {
            if (!is_field_value_char(buf[i]))
                return fail(p, 400, "bad chunk extension");
        }
    }
    if (size > room)
        return fail(p, 413, "body too large");
    if (size == 0) {
        p->state = HTTP_STATE_TRAILER_LINE;
    } else {
        p->remaining = size;
        p->state = HTTP_STATE_CHUNK_DATA;
    }
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status on_line(struct http_parser *p, const uint8_t *buf,
                                      size_t start, size_t end)
{
    size_t name_end, vs, ve;

    switch (p->state) {
    case HTTP_STATE_START_LINE:
        if (start == end)
            return HTTP_PARSE_NEED_MORE; /* empty line before the start line */
        if (p->mode == HTTP_PARSE_REQUEST)
            return on_request_line(p, buf, start, end);
        return on_status_line(p, buf, start, end);
    case HTTP_STATE_HEADER_LINE:
        if (start == end)
            return on_head_complete(p);
        return on_header_line(p, buf, start, end);
    case HTTP_STATE_CHUNK_SIZE:
        return on_chunk_size_line(p, buf, start, end);
    case HTTP_STATE_CHUNK_DATA_END:
        if (start != end)
            return fail(p, 400, "missing CRLF after chunk data");
        p->state = HTTP_STATE_CHUNK_SIZE;
        return HTTP_PARSE_NEED_MORE;
    case HTTP_STATE_TRAILER_LINE:
        if (start == end) {
            p->state = HTTP_STATE_DONE;
            return HTTP_PARSE_NEED_MORE;
        }
        /* Trailer fields are checked for syntax, then ignored. */
        return split_field_line(p, buf, start, end, &name_end, &vs, &ve);
    default:
        return fail(p, 500, "parser in an impossible state");
    }
}

static bool state_counts_as_head(enum http_parse_state s)
{
    return s == HTTP_STATE_START_LINE || s == HTTP_STATE_HEADER_LINE ||
           s == HTTP_STATE_TRAILER_LINE;
}

/* The error for a line that outgrew its limit. */
static enum http_parse_status fail_line_too_long(struct http_parser *p)
{
    switch (p->state) {
    case HTTP_STATE_START_LINE:
        if (p->mode == HTTP_PARSE_REQUEST)
            return fail(p, 414, "request line too long");
        return fail(p, 400, "status line too long");
    case HTTP_STATE_CHUNK_SIZE:
        return fail(p, 400, "chunk size line too long");
    case HTTP_STATE_CHUNK_DATA_END:
        return fail(p, 400, "missing CRLF after chunk data");
    default:
        return fail(p, 431, "header section too large");
    }
}

/* Would a line of line_len bytes (so far) exceed the state's limit? */
static bool line_over_limit(const struct http_parser *p, size_t line_len)
{
    if (state_counts_as_head(p->state))
        return p->head_bytes + line_len > p->limits.max_head_bytes;
    if (p->state == HTTP_STATE_CHUNK_DATA_END)
        return line_len > 2; /* at most CR LF */
    return line_len > HTTP_MAX_CHUNK_LINE;
}

/*
 * Scans for the end of the current line. Returns true with the line's content
 * in [*start, *end) (LF and one CR stripped) when it is complete.
 */
static bool take_line(struct http_parser *p, const uint8_t *buf, size_t len,
                      size_t *start, size_t *end)
{
    const uint8_t *lf = memchr(buf + p->pos, '\n', len - p->pos);
    if (lf == NULL) {
        p->pos = len;
        return false;
    }
    *start = p->line_start;
    *end = (size_t)(lf - buf);
    p->pos = *end + 1;
    if (*end > *start && buf[*end - 1] == '\r')
        (*end)--;
    return true;
}

/*
 * Chunked bodies are decoded in place: cut the consumed framing bytes
 * [body_end, keep_from) out of the buffer so only the decoded body and the
 * unconsumed bytes remain.
 */
static void compact_chunked(struct http_parser *p, uint8_t *buf, size_t *len)
{
    size_t keep_from, shift;

    if (!p->msg.chunked || p->state == HTTP_STATE_START_LINE ||
        p->state == HTTP_STATE_HEADER_LINE || p->state == HTTP_STATE_ERROR)
        return;
    keep_from = (p->state == HTTP_STATE_CHUNK_DATA || p->state == HTTP_STATE_DONE)
                    ? p->pos : p->line_start;
    if (keep_from <= p->body_end)
        return;
    shift = keep_from - p->body_end;
    memmove(buf + p->body_end, buf + keep_from, *len - keep_from);
    *len -= shift;
    p->pos -= shift;
    p->line_start = p->line_start >= shift ? p->line_start - shift : 0;
}

static void consume_length_body(struct http_parser *p, size_t len)
{
    size_t avail = len - p->pos;
    size_t take = p->remaining < avail ? (size_t)p->remaining : avail;
    p->pos += take;
    p->body_end = p->pos;
    p->remaining -= take;
    if (p->remaining == 0)
        p->state = HTTP_STATE_DONE;
}

static void consume_chunk_data(struct http_parser *p, uint8_t *buf, size_t len)
{
    size_t avail = len - p->pos;
    size_t take = p->remaining < avail ? (size_t)p->remaining : avail;
    if (p->body_end != p->pos)
        memmove(buf + p->body_end, buf + p->pos, take);
    p->body_end += take;
    p->pos += take;
    p->remaining -= take;
    if (p->remaining == 0) {
        p->state = HTTP_STATE_CHUNK_DATA_END;
        p->line_start = p->pos;
    }
}

static enum http_parse_status consume_until_eof(struct http_parser *p, size_t len)
{
    p->pos = len;
    p->body_end = len;
    if (decoded_body_len(p) > p->limits.max_body_bytes)
        return fail(p, 413, "body too large");
    return HTTP_PARSE_NEED_MORE;
}

static enum http_parse_status finish_message(struct http_parser *p)
{
    p->msg.body.len = decoded_body_len(p);
    p->msg_end = p->pos;
    return HTTP_PARSE_DONE;
}

static enum http_parse_status at_end_of_input(struct http_parser *p, bool eof)
{
    if (!eof)
        return HTTP_PARSE_NEED_MORE;
    if (p->state == HTTP_STATE_BODY_UNTIL_EOF) {
        p->state = HTTP_STATE_DONE;
        return finish_message(p);
    }
    if (p->state == HTTP_STATE_START_LINE && p->pos == p->line_start)
        return HTTP_PARSE_EOF;
    p->state = HTTP_STATE_ERROR;
    p->error_status = 400;
    p->error_reason = "connection closed inside a message";
    return HTTP_PARSE_TRUNCATED;
}

/* Runs the state machine until it needs input or reaches DONE/ERROR. */
static enum http_parse_status run(struct http_parser *p, uint8_t *buf, size_t len, bool eof)
{
    for (;;) {
        size_t start, end;
        enum http_parse_status st;

        switch (p->state) {
        case HTTP_STATE_DONE:
            return finish_message(p);
        case HTTP_STATE_ERROR:
            return HTTP_PARSE_ERROR;
        case HTTP_STATE_BODY_LENGTH:
            if (p->pos == len)
                return at_end_of_input(p, eof);
            consume_length_body(p, len);
            continue;
        case HTTP_STATE_CHUNK_DATA:
            if (p->pos == len)
                return at_end_of_input(p, eof);
            consume_chunk_data(p, buf, len);
            continue;
        case HTTP_STATE_BODY_UNTIL_EOF:
            st = consume_until_eof(p, len);
            if (st != HTTP_PARSE_NEED_MORE)
                return st;
            return at_end_of_input(p, eof);
        default:
            break;
        }

        /* Line-oriented states. */
        if (!take_line(p, buf, len, &start, &end)) {
            if (line_over_limit(p, len - p->line_start))
                return fail_line_too_long(p);
            return at_end_of_input(p, eof);
        }
        if (line_over_limit(p, p->pos - p->line_start))
            return fail_line_too_long(p);
        if (state_counts_as_head(p->state))
            p->head_bytes += p->pos - p->line_start;
        p->line_start = p->pos;
        st = on_line(p, buf, start, end);
        if (st != HTTP_PARSE_NEED_MORE)
            return st;
    }
}

enum http_parse_status http_parse(struct http_parser *p, uint8_t *buf, size_t *len, bool eof)
{
    enum http_parse_status st = run(p, buf, *len, eof);
    compact_chunked(p, buf, len);
    if (st == HTTP_PARSE_DONE)
        p->msg_end = p->pos; /* compaction may have moved it */
    return st;
}

void http_parser_next(struct http_parser *p, uint8_t *buf, size_t *len)
{
    size_t end = p->msg_end <= *len ? p->msg_end : *len;
    memmove(buf, buf + end, *len - end);
    *len -= end;
    reset_for_next_message(p);
}
