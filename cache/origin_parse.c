/* origin_parse.c - the origin's response, parsed with libhttp-parser:
 * header lines into one arena (as offsets), the body into a buffer, 1xx
 * responses skipped, every byte capped by the origin's limits, and a body
 * over max_body turned into a stream when the fetch has stream ops (design
 * notes in origin_int.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "origin_int.h"
#include "xalloc.h"

static int on_message_begin(http_parser *p)
{
    struct origin_fetch *f = p->data;

    /* Also after a 1xx: forget its header lines. */
    f->arena_len = 0;
    f->nhdrs = 0;
    f->in_value = false;
    f->headers_done = false;
    f->body_len = 0;
    return 0;
}

static int arena_add(struct origin_fetch *f, const char *at, size_t len)
{
    if (len > f->o->lim.max_head - f->arena_len) {
        f->perr = -EPROTO;
        return -1;
    }
    if (f->arena_len + len > f->arena_cap) {
        size_t cap = f->arena_cap ? f->arena_cap : 1024;

        while (cap < f->arena_len + len)
            cap *= 2;
        if (cap > f->o->lim.max_head)
            cap = f->o->lim.max_head;
        f->arena = xrealloc(f->arena, cap);
        f->arena_cap = cap;
    }
    memcpy(f->arena + f->arena_len, at, len);
    f->arena_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct origin_fetch *f = p->data;

    if (f->headers_done)
        return 0;
    if (f->nhdrs == 0 || f->in_value) {
        /* A new line. */
        if (f->nhdrs >= f->o->lim.max_headers) {
            f->perr = -EPROTO;
            return -1;
        }
        if (f->nhdrs == f->hcap) {
            f->hcap = f->hcap ? f->hcap * 2 : 16;
            f->hoff = xrealloc(f->hoff, f->hcap * sizeof(*f->hoff));
        }
        f->hoff[f->nhdrs++] = (struct hdr_off){.name = f->arena_len};
        f->in_value = false;
    }
    f->hoff[f->nhdrs - 1].name_len += len;
    return arena_add(f, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct origin_fetch *f = p->data;
    struct hdr_off *h;

    if (f->headers_done)
        return 0;
    if (f->nhdrs == 0)
        return -1;
    h = &f->hoff[f->nhdrs - 1];
    if (!f->in_value) {
        h->value = f->arena_len;
        f->in_value = true;
    }
    h->value_len += len;
    return arena_add(f, at, len);
}

/* What a stream callback said, for the parser: -1 (perr -ECANCELED) stops
 * it; a pause is noted and honoured after this read (origin_io.c). */
static int stream_flow(struct origin_fetch *f, enum origin_flow fl)
{
    if (fl == ORIGIN_STOP) {
        f->perr = -ECANCELED;
        return -1;
    }
    if (fl == ORIGIN_PAUSE)
        f->paused = true;
    return 0;
}

/* The body will not fit: the fetch becomes a stream. ops->head gets the
 * head and the body held so far, which is then freed. */
static int stream_begin(struct origin_fetch *f, int64_t content_length)
{
    struct c9_hdr *h = origin_parse_headers(f);
    struct origin_result res = {
        .status = (int)f->p.status_code,
        .hdrs = h,
        .nhdrs = f->nhdrs,
        .body = f->body_len ? f->body : NULL,
        .body_len = f->body_len,
        .request_time = f->request_time,
        .response_time = f->response_time,
        .content_length = content_length,
    };
    enum origin_flow fl;

    f->streaming = true;
    f->o->ctr.streamed++;
    fl = f->ops->head(f->arg, &res);
    free(h);
    free(f->body);
    f->body = NULL;
    f->body_len = f->body_cap = 0;
    return stream_flow(f, fl);
}

static int on_headers_complete(http_parser *p)
{
    struct origin_fetch *f = p->data;

    f->headers_done = true;
    if (p->status_code == 101) {
        f->perr = -EPROTO; /* we never ask to switch protocols */
        return -1;
    }
    if (p->status_code >= 100 && p->status_code < 200)
        return 0;
    f->response_time = (int64_t)(clock_wall_ms() / 1000);
    if (f->head)
        return 1; /* no body whatever the head says */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > f->o->lim.max_body) {
        if (f->ops)
            return stream_begin(f, p->content_length > INT64_MAX ? INT64_MAX
                                                                 : (int64_t)p->content_length);
        f->perr = -E2BIG;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct origin_fetch *f = p->data;

    if (f->streaming)
        return stream_flow(f, f->ops->body(f->arg, at, len));
    if (len > f->o->lim.max_body - f->body_len) {
        if (!f->ops) {
            f->perr = -E2BIG;
            return -1;
        }
        if (stream_begin(f, -1))
            return -1;
        return stream_flow(f, f->ops->body(f->arg, at, len));
    }
    if (f->body_len + len > f->body_cap) {
        size_t cap = f->body_cap ? f->body_cap : 4096;

        if ((p->flags & F_CONTENTLENGTH) && f->body_cap == 0)
            cap = f->body_len + len + (size_t)p->content_length;
        while (cap < f->body_len + len)
            cap *= 2;
        if (cap > f->o->lim.max_body)
            cap = f->o->lim.max_body;
        f->body = xrealloc(f->body, cap);
        f->body_cap = cap;
    }
    memcpy(f->body + f->body_len, at, len);
    f->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct origin_fetch *f = p->data;

    if (p->status_code >= 100 && p->status_code < 200)
        return 0;
    f->complete = true;
    http_parser_pause(p, 1); /* whatever follows is not ours */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void origin_parse_reset(struct origin_fetch *f)
{
    http_parser_init(&f->p, HTTP_RESPONSE);
    f->p.data = f;
    f->perr = 0;
    f->complete = false;
    f->streaming = false;
    f->paused = false;
    f->got_byte = false;
    f->arena_len = 0;
    f->nhdrs = 0;
    f->body_len = 0;
    f->req_off = 0;
}

size_t origin_parse_execute(struct origin_fetch *f, const char *buf, size_t n)
{
    return http_parser_execute(&f->p, &parser_settings, buf, n);
}

struct c9_hdr *origin_parse_headers(const struct origin_fetch *f)
{
    struct c9_hdr *h = xcalloc(f->nhdrs ? f->nhdrs : 1, sizeof(*h));

    for (size_t i = 0; i < f->nhdrs; i++) {
        h[i].name = f->arena + f->hoff[i].name;
        h[i].name_len = f->hoff[i].name_len;
        h[i].value = f->arena + f->hoff[i].value;
        h[i].value_len = f->hoff[i].value_len;
    }
    return h;
}
