/* Bulk receiver: BEGIN / WINDOW / DATA / END with resume and SHA-256 (section 6). */
#include <string.h>

#include "bridge_internal.h"

static size_t data_per_frame(const bridge_t *b)
{
    return bridge_payload_cap(b) - 4u;
}

static uint32_t credit_bytes(const bridge_t *b)
{
    uint32_t frames = b->cfg->bulk_credit_frames;
    return (uint32_t)data_per_frame(b) * (frames != 0u ? frames : BRIDGE_BULK_CREDIT_FRAMES);
}

static void send_window(bridge_t *b, const bridge_header_t *req)
{
    bridge_header_t h;
    uint8_t *p = bridge_tx_payload(b);
    uint32_t credit = credit_bytes(b);
    uint32_t left = b->bulk.total - b->bulk.offset;
    if (credit > left) {
        credit = left;
    }
    b->bulk.granted = b->bulk.offset + credit;
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_BULK;
    h.type = BRIDGE_T_WINDOW;
    h.ack = req->seq;
    h.id = b->bulk.id;
    bridge_put_u32(p, b->bulk.offset);
    bridge_put_u32(p + 4, credit);
    (void)bridge_send_body(b, &h, 8);
}

static void send_end(bridge_t *b, const bridge_header_t *req, uint32_t id, uint16_t status,
                     uint32_t received)
{
    bridge_header_t h;
    uint8_t *p = bridge_tx_payload(b);
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_BULK;
    h.type = BRIDGE_T_END;
    h.ack = req->seq;
    h.id = id;
    bridge_put_u16(p, status);
    bridge_put_u32(p + 2, received);
    (void)bridge_send_body(b, &h, 6);
}

static int find_target(const bridge_t *b, const uint8_t *name, size_t len)
{
    size_t i;
    for (i = 0; i < b->cfg->n_bulk_targets; i++) {
        const char *t = b->cfg->bulk_targets[i].name;
        if (strlen(t) == len && memcmp(t, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void handle_begin(bridge_t *b, const bridge_header_t *h, const uint8_t *p, size_t n)
{
    bridge_bulk_state_t *s = &b->bulk;
    const bridge_bulk_target_t *t;
    uint32_t total;
    size_t name_len;
    int ti;
    bridge_status_t st;

    if (n < 37u || n < 37u + (size_t)p[36]) {
        send_end(b, h, h->id, BRIDGE_BAD_ARGS, 0);
        return;
    }
    total = bridge_get_u32(p);
    name_len = p[36];
    ti = find_target(b, p + 37, name_len);
    if (ti < 0) {
        send_end(b, h, h->id, BRIDGE_NOT_FOUND, 0);
        return;
    }
    t = &b->cfg->bulk_targets[ti];
    if (total > t->max_size) {
        send_end(b, h, h->id, BRIDGE_TOO_LARGE, 0);
        return;
    }
    if (s->active && s->target == (uint8_t)ti && s->total == total &&
        memcmp(s->sha256, p + 4, 32) == 0) {
        /* The same content again: resume where it stopped, or repeat END. */
        s->id = h->id;
        if (s->done) {
            send_end(b, h, s->id, s->end_status, s->offset);
        } else {
            send_window(b, h);
        }
        return;
    }
    st = t->begin != NULL ? t->begin(t->ctx, total, p + 4) : BRIDGE_OK;
    if (st != BRIDGE_OK) {
        send_end(b, h, h->id, (uint16_t)st, 0);
        return;
    }
    memset(s, 0, sizeof(*s));
    s->active = 1;
    s->target = (uint8_t)ti;
    s->id = h->id;
    s->total = total;
    memcpy(s->sha256, p + 4, 32);
    s->name_len = (uint8_t)(name_len < BRIDGE_BULK_NAME_MAX ? name_len : BRIDGE_BULK_NAME_MAX);
    memcpy(s->name, p + 37, s->name_len);
    bridge_sha256_init(&s->hash);
    if (total == 0) {
        uint8_t digest[BRIDGE_SHA256_SIZE];
        bridge_sha256_final(&s->hash, digest);
        s->done = 1;
        s->end_status = bridge_ct_equal(digest, s->sha256, 32) ? BRIDGE_OK : BRIDGE_INTEGRITY;
        if (t->end != NULL) {
            t->end(t->ctx, (bridge_status_t)s->end_status, 0, s->sha256);
        }
        send_end(b, h, s->id, s->end_status, 0);
        return;
    }
    send_window(b, h);
}

static void handle_data(bridge_t *b, const bridge_header_t *h, const uint8_t *p, size_t n)
{
    bridge_bulk_state_t *s = &b->bulk;
    const bridge_bulk_target_t *t;
    uint32_t offset;
    size_t len;
    bridge_status_t st;

    if (!s->active || s->id != h->id) {
        send_end(b, h, h->id, BRIDGE_NOT_FOUND, 0);
        return;
    }
    if (s->done) {
        send_end(b, h, s->id, s->end_status, s->offset);
        return;
    }
    if (n < 4u) {
        send_window(b, h);
        return;
    }
    offset = bridge_get_u32(p);
    len = n - 4u;
    if (offset != s->offset || len == 0) {
        send_window(b, h);
        return;
    }
    if (len > s->total - s->offset) {
        s->active = 0;
        send_end(b, h, s->id, BRIDGE_TOO_LARGE, s->offset);
        return;
    }
    t = &b->cfg->bulk_targets[s->target];
    st = t->write != NULL ? t->write(t->ctx, offset, p + 4, len) : BRIDGE_OK;
    if (st != BRIDGE_OK) {
        s->active = 0;
        send_end(b, h, s->id, (uint16_t)st, s->offset);
        return;
    }
    if (t->digest == NULL) {
        bridge_sha256_update(&s->hash, p + 4, len);
    }
    s->offset += (uint32_t)len;
    if (s->offset < s->total) {
        /* A new WINDOW once half the credit is used (docs/protocol.md 6): half the frames
         * back, and the sender still holds half a window of credit when it arrives. */
        if (s->offset >= s->granted || s->granted - s->offset <= credit_bytes(b) / 2u) {
            send_window(b, h);
        }
        return;
    }
    {
        uint8_t digest[BRIDGE_SHA256_SIZE];
        st = BRIDGE_OK;
        if (t->digest != NULL) {
            st = t->digest(t->ctx, s->total, digest);
        } else {
            bridge_sha256_final(&s->hash, digest);
        }
        s->done = 1;
        if (st == BRIDGE_OK) {
            st = bridge_ct_equal(digest, s->sha256, 32) ? BRIDGE_OK : BRIDGE_INTEGRITY;
        }
        s->end_status = (uint16_t)st;
        if (t->end != NULL) {
            t->end(t->ctx, (bridge_status_t)s->end_status, s->total, s->sha256);
        }
        send_end(b, h, s->id, s->end_status, s->offset);
        if (s->end_status != BRIDGE_OK) {
            /* Corrupt content is never resumed: the next BEGIN starts over. */
            s->active = 0;
        }
    }
}

void bridge_bulk_frame(bridge_t *b, const bridge_header_t *h, const uint8_t *p, size_t n)
{
    switch (h->type) {
    case BRIDGE_T_BEGIN:
        handle_begin(b, h, p, n);
        break;
    case BRIDGE_T_BULK_DATA:
        handle_data(b, h, p, n);
        break;
    default:
        b->stats.unsupported++; /* the device only receives bulk transfers */
        break;
    }
}
