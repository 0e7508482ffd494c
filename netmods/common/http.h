/*
 * http.h: a sans-IO HTTP/1.1 core shared by the netmods guests.
 *
 * Two layers, neither of which performs I/O:
 *
 *   http_parser  (http.c) an incremental state machine that parses one
 *                message (a request, or for the client a response) out of a
 *                byte buffer owned by the caller. It can be fed any number of
 *                bytes at a time, down to one.
 *   http_conn    (http_conn.c) one server-side connection: the receive
 *                buffer, the parser, the response being sent, keep-alive and
 *                close decisions. A driver (blocking or poll based) moves
 *                bytes between the socket and the connection and asks it what
 *                it wants next.
 *
 * Rules the parser keeps (checked by test_http.c):
 *   - Everything it reports is an offset into the caller's buffer, never a
 *     pointer, so the caller may grow (realloc) the buffer between calls.
 *   - Each call resumes at `pos`, so feeding one byte at a time stays linear
 *     (a line is scanned for its end once, then checked once when complete).
 *   - The bytes [0, msg_end) belong to the parsed message; whatever follows is
 *     the start of the next (pipelined) message; it is never altered (chunked
 *     decoding may move it down in the buffer).
 *   - A chunked body is decoded in place: the chunk data is moved down so the
 *     body is contiguous, and the framing bytes are cut out of the buffer as
 *     they are consumed (the buffer length shrinks). So the bytes held for one
 *     message never exceed head + body + one partial chunk-size line.
 *   - Limits are enforced while bytes arrive, never after the fact.
 *
 * Sources: RFC 9112 (HTTP/1.1 message syntax), RFC 9110 (semantics).
 */
#ifndef NETMODS_HTTP_H
#define NETMODS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Parser                                                               */
/* ------------------------------------------------------------------ */

enum http_parse_mode {
    HTTP_PARSE_REQUEST,
    HTTP_PARSE_RESPONSE,
};

struct http_limits {
    size_t max_head_bytes;    /* start line + header fields (+ trailers) */
    size_t max_body_bytes;    /* decoded body */
    uint32_t max_header_count;
};

/* A piece of the caller's buffer: [off, off + len). */
struct http_span {
    size_t off;
    size_t len;
};

struct http_message {
    /* Request fields (HTTP_PARSE_REQUEST). */
    struct http_span method;
    struct http_span target;     /* as sent */
    struct http_span path;       /* target without query (and without scheme://authority) */
    /* Response fields (HTTP_PARSE_RESPONSE). */
    int status;
    /* Both. */
    int version_minor;           /* HTTP/1.<minor>; 1.2+ is treated as 1.1 */
    bool keep_alive;             /* after this message the connection may be reused */
    bool expect_continue;        /* request carried "Expect: 100-continue" */
    bool chunked;
    bool has_content_length;
    uint64_t content_length;
    struct http_span body;       /* decoded body, valid once the message is complete */
};

enum http_parse_status {
    HTTP_PARSE_NEED_MORE,        /* all bytes consumed; call again with more */
    HTTP_PARSE_DONE,             /* a message is complete; see msg and msg_end */
    HTTP_PARSE_ERROR,            /* see error_status and error_reason */
    HTTP_PARSE_EOF,              /* clean end of stream between messages */
    HTTP_PARSE_TRUNCATED,        /* the stream ended inside a message */
};

enum http_parse_state {
    HTTP_STATE_START_LINE,
    HTTP_STATE_HEADER_LINE,
    HTTP_STATE_BODY_LENGTH,
    HTTP_STATE_CHUNK_SIZE,
    HTTP_STATE_CHUNK_DATA,
    HTTP_STATE_CHUNK_DATA_END,
    HTTP_STATE_TRAILER_LINE,
    HTTP_STATE_BODY_UNTIL_EOF,
    HTTP_STATE_DONE,
    HTTP_STATE_ERROR,
};

struct http_parser {
    enum http_parse_mode mode;
    struct http_limits limits;
    bool response_to_head;       /* response mode: the request was HEAD, so no body */

    enum http_parse_state state;
    size_t pos;                  /* next byte to examine */
    size_t line_start;           /* first byte of the line being scanned */
    size_t head_bytes;           /* bytes of start line, headers and trailers so far */
    uint64_t remaining;          /* body bytes still due (Content-Length or current chunk) */
    size_t body_end;             /* end of the decoded body written so far */
    uint32_t header_count;
    uint32_t host_count;
    bool saw_transfer_encoding;
    bool connection_close;
    bool connection_keep_alive;

    struct http_message msg;
    size_t msg_end;              /* when DONE: where the next message starts */

    int error_status;            /* when ERROR: the HTTP status to answer with */
    const char *error_reason;    /* when ERROR: a short, static explanation */
};

void http_parser_init(struct http_parser *p, enum http_parse_mode mode,
                      const struct http_limits *limits);

/*
 * Parse what is in buf[0, *len). `eof` says the peer will send nothing more.
 * May shrink *len (chunk framing is cut out of the buffer). After DONE, the
 * caller handles the message, then calls http_parser_next() to drop it.
 */
enum http_parse_status http_parse(struct http_parser *p, uint8_t *buf, size_t *len, bool eof);

/* Drop the completed message from the buffer and get ready for the next. */
void http_parser_next(struct http_parser *p, uint8_t *buf, size_t *len);

/* True while the parser waits for body bytes of a message whose head is complete. */
bool http_parser_in_body(const struct http_parser *p);

/* ------------------------------------------------------------------ */
/* Server connection                                                    */
/* ------------------------------------------------------------------ */

/* Counters served by GET /stats; owned by the server, shared by its connections. */
struct http_server_stats {
    uint64_t requests;           /* responses sent to complete requests */
    uint64_t connections;        /* connections accepted */
    uint64_t active;             /* connections open now */
    uint64_t bad_requests;       /* connections ended by a protocol error */
};

struct http_server_config {
    struct http_limits limits;
    uint32_t idle_timeout_ms;    /* waiting for (the rest of) a request */
    uint32_t drain_timeout_ms;   /* lingering close after an error */
};

/* Defaults: 64 KiB head, 1 MiB body, 100 header fields, 15 s idle, 2 s drain. */
void http_server_config_default(struct http_server_config *cfg);

enum http_conn_want {
    HTTP_WANT_READ,              /* call http_conn_read_space, receive, http_conn_on_read */
    HTTP_WANT_WRITE,             /* call http_conn_output, send, http_conn_on_written */
    HTTP_WANT_SHUTDOWN,          /* shut down the write side, then http_conn_on_shutdown */
    HTTP_WANT_CLOSE,             /* close the socket and free the connection */
};

enum http_conn_phase {
    HTTP_CONN_READING,
    HTTP_CONN_WRITING,
    HTTP_CONN_SHUTDOWN,          /* response sent; write side must be shut */
    HTTP_CONN_DRAINING,          /* write side shut; discarding input until EOF */
    HTTP_CONN_CLOSED,
};

/* One contiguous piece of output. */
struct http_iov {
    const uint8_t *base;
    size_t len;
};

#define HTTP_CONN_HEAD_CAP 384
#define HTTP_CONN_SMALL_BODY_CAP 256

struct http_conn {
    const struct http_server_config *cfg;
    struct http_server_stats *stats;

    uint8_t *buf;                /* received bytes; NULL until the first read */
    size_t len;
    size_t cap;
    struct http_parser parser;

    enum http_conn_phase phase;
    bool peer_eof;
    bool close_after_write;      /* the response being written is the last one */
    bool linger;                 /* drain input after shutdown (unread data may follow) */
    bool continue_sent;          /* "100 Continue" already sent for this request */
    bool interim;                /* the output is a 1xx: the request is still being read */
    size_t drained;              /* bytes discarded while draining */

    /* Output: head, then body. */
    char head[HTTP_CONN_HEAD_CAP];
    size_t head_len;
    const uint8_t *body;         /* into buf, a static string, or small_body */
    size_t body_len;
    size_t sent;                 /* bytes of head + body already sent */
    char small_body[HTTP_CONN_SMALL_BODY_CAP];
};

void http_conn_init(struct http_conn *c, const struct http_server_config *cfg,
                    struct http_server_stats *stats);
void http_conn_free(struct http_conn *c);

enum http_conn_want http_conn_want(const struct http_conn *c);

/* How long to wait for the peer before giving up, for the current phase. */
uint32_t http_conn_timeout_ms(const struct http_conn *c);

/*
 * Where to receive into. Returns NULL (and *avail = 0) if memory ran out;
 * the driver should then close the connection.
 */
uint8_t *http_conn_read_space(struct http_conn *c, size_t *avail);

/* n bytes were received into the read space; n == 0 means end of stream. */
void http_conn_on_read(struct http_conn *c, size_t n);

/* Fill up to two pieces of pending output; returns how many. */
size_t http_conn_output(const struct http_conn *c, struct http_iov iov[2]);

/* n bytes of the pending output were sent. */
void http_conn_on_written(struct http_conn *c, size_t n);

/* The write side was shut down (or that failed: we close either way soon). */
void http_conn_on_shutdown(struct http_conn *c);

/* ------------------------------------------------------------------ */
/* Small helpers shared with the drivers                                */
/* ------------------------------------------------------------------ */

/* Writes the decimal form of v to out (no NUL); returns the length (<= 20). */
size_t http_format_u64(char *out, uint64_t v);

/* Parses a decimal u32 in [min, max] from a NUL-terminated string; false if invalid. */
bool http_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

#endif /* NETMODS_HTTP_H */
