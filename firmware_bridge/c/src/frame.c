/* Header encoding and the streaming frame decoder (docs/protocol.md 1-2). */
#include <string.h>

#include "bridge_codec.h"

void bridge_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void bridge_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void bridge_put_u64(uint8_t *p, uint64_t v)
{
    bridge_put_u32(p, (uint32_t)v);
    bridge_put_u32(p + 4, (uint32_t)(v >> 32));
}

uint16_t bridge_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t bridge_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

uint64_t bridge_get_u64(const uint8_t *p)
{
    return (uint64_t)bridge_get_u32(p) | ((uint64_t)bridge_get_u32(p + 4) << 32);
}

void bridge_header_encode(const bridge_header_t *h, uint8_t out[BRIDGE_HEADER_SIZE])
{
    out[0] = h->version;
    out[1] = h->flags;
    out[2] = h->channel;
    out[3] = h->type;
    bridge_put_u16(out + 4, h->seq);
    bridge_put_u16(out + 6, h->ack);
    bridge_put_u32(out + 8, h->id);
}

int bridge_header_parse(const uint8_t *in, size_t len, bridge_header_t *h)
{
    if (len < BRIDGE_HEADER_SIZE) {
        return -1;
    }
    h->version = in[0];
    h->flags = in[1];
    h->channel = in[2];
    h->type = in[3];
    h->seq = bridge_get_u16(in + 4);
    h->ack = bridge_get_u16(in + 6);
    h->id = bridge_get_u32(in + 8);
    return 0;
}

size_t bridge_frame_seal(uint8_t *body, size_t len, uint8_t *out, size_t cap)
{
    size_t n;
    bridge_put_u32(body + len, bridge_crc32(0, body, len));
    if (cap < 2) {
        return 0;
    }
    n = bridge_cobs_encode(body, len + BRIDGE_CRC_SIZE, out, cap - 1);
    if (n == 0) {
        return 0;
    }
    out[n] = 0;
    return n + 1;
}

size_t bridge_frame_encode(const bridge_header_t *h, const uint8_t *payload, size_t n,
                           const uint8_t *trailer, size_t trailer_len, uint8_t *scratch,
                           size_t scratch_cap, uint8_t *out, size_t cap)
{
    size_t len;
    if (scratch_cap < BRIDGE_MIN_BODY || n > scratch_cap || trailer_len > scratch_cap) {
        return 0;
    }
    len = BRIDGE_HEADER_SIZE + n + trailer_len;
    if (len > scratch_cap - BRIDGE_CRC_SIZE) {
        return 0;
    }
    bridge_header_encode(h, scratch);
    if (n > 0) {
        memcpy(scratch + BRIDGE_HEADER_SIZE, payload, n);
    }
    if (trailer_len > 0) {
        memcpy(scratch + BRIDGE_HEADER_SIZE + n, trailer, trailer_len);
    }
    return bridge_frame_seal(scratch, len, out, cap);
}

static size_t clamp_limit(size_t limit)
{
    if (limit < BRIDGE_MIN_BODY) {
        return BRIDGE_MIN_BODY;
    }
    if (limit > BRIDGE_FRAME_MAX) {
        return BRIDGE_FRAME_MAX;
    }
    return limit;
}

void bridge_decoder_init(bridge_decoder_t *d, size_t limit, bridge_frame_fn on_frame,
                         bridge_console_fn on_console, void *ctx)
{
    memset(d, 0, sizeof(*d));
    d->limit = clamp_limit(limit);
    d->printable = 1;
    d->on_frame = on_frame;
    d->on_console = on_console;
    d->ctx = ctx;
}

void bridge_decoder_set_limit(bridge_decoder_t *d, size_t limit)
{
    d->limit = clamp_limit(limit);
}

void bridge_decoder_reset(bridge_decoder_t *d)
{
    d->len = 0;
    d->skipping = 0;
    d->printable = 1;
}

static int is_printable(uint8_t c)
{
    return (c >= 0x20u && c <= 0x7Eu) || c == '\t' || c == '\r' || c == '\n';
}

static void finish_segment(bridge_decoder_t *d)
{
    size_t body_len = 0;
    bridge_header_t h;
    uint32_t crc;

    if (bridge_cobs_decode(d->buf, d->len, d->buf, sizeof(d->buf), &body_len) != 0) {
        d->stats.cobs_errors++;
        return;
    }
    if (body_len < BRIDGE_MIN_BODY) {
        d->stats.short_frames++;
        return;
    }
    if (body_len > d->limit) {
        /* Fits the encoded bound but decodes to more than the limit. */
        d->stats.oversize++;
        return;
    }
    crc = bridge_crc32(0, d->buf, body_len - BRIDGE_CRC_SIZE);
    if (crc != bridge_get_u32(d->buf + body_len - BRIDGE_CRC_SIZE)) {
        d->stats.crc_errors++;
        return;
    }
    (void)bridge_header_parse(d->buf, body_len, &h);
    if (h.version != BRIDGE_VERSION) {
        d->stats.bad_version++;
        return;
    }
    d->stats.frames++;
    if (d->on_frame != NULL) {
        d->on_frame(d->ctx, &h, d->buf, body_len - BRIDGE_CRC_SIZE);
    }
}

void bridge_decoder_feed(bridge_decoder_t *d, const uint8_t *data, size_t len)
{
    size_t i = 0;
    const size_t max_encoded = BRIDGE_ENCODED_MAX(d->limit);

    while (i < len) {
        uint8_t c;
        if (d->skipping || !d->printable) {
            /* Binary frame or a segment being dropped: jump to the next delimiter. */
            const uint8_t *z = (const uint8_t *)memchr(data + i, 0, len - i);
            size_t end = z != NULL ? (size_t)(z - data) : len;
            if (d->skipping) {
                if (z == NULL) {
                    return;
                }
                i = end; /* the byte-wise step below consumes the delimiter */
            } else if (end > i && d->len < max_encoded) {
                size_t span = end - i;
                if (span > max_encoded - d->len) {
                    span = max_encoded - d->len;
                }
                memcpy(d->buf + d->len, data + i, span);
                d->len += span;
                i += span;
                continue;
            }
        }
        c = data[i++];
        if (c == 0) {
            if (!d->skipping && d->len > 0) {
                finish_segment(d);
            }
            bridge_decoder_reset(d);
            continue;
        }
        if (d->skipping) {
            continue;
        }
        if (d->len >= max_encoded) {
            d->stats.oversize++;
            d->len = 0;
            d->printable = 1;
            d->skipping = 1;
            continue;
        }
        d->buf[d->len++] = c;
        if (!is_printable(c)) {
            d->printable = 0;
        } else if (c == '\n' && d->printable) {
            d->stats.console_lines++;
            if (d->on_console != NULL) {
                d->on_console(d->ctx, d->buf, d->len);
            }
            d->len = 0;
        }
    }
}
