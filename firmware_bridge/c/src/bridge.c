/* Session, RPC dispatch, streams, log and authentication (docs/protocol.md 3-5, 7-8). */
#include <string.h>

#include "bridge_internal.h"

#define STREAM_DATA_HEADER 16u /* u32 sample_seq, u64 timestamp_us, u32 overruns */
#define HELLO_REQ_SIZE 24u
#define MAX_FRAMES_PER_SECOND 1000u
#define BURST_FRAMES 4u

/* ---- bounded writer ---------------------------------------------------- */

void bridge_w_bytes(bridge_wbuf_t *w, const void *data, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    if (n > 0) {
        memcpy(w->p + w->len, data, n);
    }
    w->len += n;
}

void bridge_w_u8(bridge_wbuf_t *w, uint8_t v)
{
    bridge_w_bytes(w, &v, 1);
}

void bridge_w_u16(bridge_wbuf_t *w, uint16_t v)
{
    uint8_t t[2];
    bridge_put_u16(t, v);
    bridge_w_bytes(w, t, sizeof(t));
}

void bridge_w_u32(bridge_wbuf_t *w, uint32_t v)
{
    uint8_t t[4];
    bridge_put_u32(t, v);
    bridge_w_bytes(w, t, sizeof(t));
}

void bridge_w_u64(bridge_wbuf_t *w, uint64_t v)
{
    uint8_t t[8];
    bridge_put_u64(t, v);
    bridge_w_bytes(w, t, sizeof(t));
}

void bridge_w_str(bridge_wbuf_t *w, const char *s)
{
    bridge_w_bytes(w, s, strlen(s));
}

void bridge_w_uint(bridge_wbuf_t *w, uint64_t v)
{
    char t[20];
    size_t n = 0;
    do {
        t[sizeof(t) - 1 - n] = (char)('0' + (int)(v % 10u));
        v /= 10u;
        n++;
    } while (v != 0 && n < sizeof(t));
    bridge_w_bytes(w, t + sizeof(t) - n, n);
}

/* ---- helpers ----------------------------------------------------------- */

static int auth_enabled(const bridge_t *b)
{
    return b->cfg->auth_key != NULL;
}

static uint64_t now_us(bridge_t *b)
{
    return b->port.now_us(b->port.ctx);
}

static uint16_t device_limit(const bridge_config_t *cfg)
{
    return cfg->frame_limit == 0 ? (uint16_t)BRIDGE_FRAME_MAX : cfg->frame_limit;
}

size_t bridge_payload_cap(const bridge_t *b)
{
    size_t overhead = BRIDGE_HEADER_SIZE + BRIDGE_CRC_SIZE;
    if (auth_enabled(b)) {
        overhead += BRIDGE_TRAILER_SIZE;
    }
    return (size_t)b->limit - overhead;
}

uint8_t *bridge_tx_payload(bridge_t *b)
{
    return b->tx_body + BRIDGE_HEADER_SIZE;
}

static void auth_tag(const bridge_t *b, const uint8_t *signed_part, size_t len,
                     uint8_t tag[BRIDGE_SHA256_SIZE])
{
    bridge_hmac_t m;
    bridge_hmac_init(&m, b->cfg->auth_key, b->cfg->auth_key_len);
    bridge_hmac_update(&m, b->dev_nonce, BRIDGE_NONCE_SIZE);
    bridge_hmac_update(&m, b->host_nonce, BRIDGE_NONCE_SIZE);
    bridge_hmac_update(&m, signed_part, len);
    bridge_hmac_final(&m, tag);
}

static int send_raw(bridge_t *b, bridge_header_t *h, size_t n, int authenticate)
{
    size_t len = BRIDGE_HEADER_SIZE + n;
    size_t wire;

    h->version = BRIDGE_VERSION;
    if (authenticate) {
        h->flags |= BRIDGE_FLAG_AUTH;
    }
    if (len + BRIDGE_CRC_SIZE + (authenticate ? BRIDGE_TRAILER_SIZE : 0u) > b->limit) {
        b->stats.tx_dropped++;
        return -1;
    }
    if (!(h->flags & BRIDGE_FLAG_RESEND)) {
        h->seq = b->tx_seq[h->channel]++;
    }
    bridge_header_encode(h, b->tx_body);
    if (authenticate) {
        uint8_t tag[BRIDGE_SHA256_SIZE];
        b->tx_counter++;
        bridge_put_u32(b->tx_body + len, b->tx_counter);
        auth_tag(b, b->tx_body, len + 4u, tag);
        memcpy(b->tx_body + len + 4u, tag, BRIDGE_TAG_SIZE);
        len += BRIDGE_TRAILER_SIZE;
    }
    wire = bridge_frame_seal(b->tx_body, len, b->tx_wire, sizeof(b->tx_wire));
    if (wire == 0 || b->port.write(b->port.ctx, b->tx_wire, wire) != wire) {
        b->stats.tx_dropped++;
        return -1;
    }
    b->stats.tx_frames++;
    return 0;
}

int bridge_send_body(bridge_t *b, bridge_header_t *h, size_t n)
{
    return send_raw(b, h, n, auth_enabled(b));
}

static int send_error(bridge_t *b, uint16_t code, const char *text, uint16_t ack)
{
    bridge_header_t h;
    bridge_wbuf_t w;
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_CONTROL;
    h.type = BRIDGE_T_ERROR;
    h.ack = ack;
    w.p = bridge_tx_payload(b);
    w.len = 0;
    w.cap = (size_t)b->limit - BRIDGE_MIN_BODY;
    w.overflow = 0;
    bridge_w_u16(&w, code);
    bridge_w_str(&w, text);
    /* Only HELLO_REQ is answered with ERROR: no nonces are agreed yet, so no trailer. */
    return send_raw(b, &h, w.overflow ? 2u : w.len, 0);
}

/* ---- session ----------------------------------------------------------- */

static void stop_streams(bridge_t *b)
{
    memset(b->streams, 0, sizeof(b->streams));
}

static void new_nonce(bridge_t *b)
{
    if (b->port.random != NULL) {
        b->port.random(b->port.ctx, b->dev_nonce, BRIDGE_NONCE_SIZE);
    } else {
        /* No entropy source: unique per session, not secret (auth needs random). */
        uint8_t seed[12];
        uint8_t digest[BRIDGE_SHA256_SIZE];
        bridge_put_u64(seed, now_us(b));
        bridge_put_u32(seed + 8, b->epoch);
        bridge_sha256(seed, sizeof(seed), digest);
        memcpy(b->dev_nonce, digest, BRIDGE_NONCE_SIZE);
    }
}

static void hello_method(bridge_wbuf_t *w, uint16_t id, const char *name)
{
    size_t n = strlen(name);
    if (n > 255u) {
        n = 255u;
    }
    bridge_w_u16(w, id);
    bridge_w_u8(w, (uint8_t)n);
    bridge_w_bytes(w, name, n);
}

static size_t hello_streams_size(const bridge_config_t *cfg)
{
    size_t i;
    size_t total = 1;
    for (i = 0; i < cfg->n_streams; i++) {
        size_t n = strlen(cfg->streams[i].name);
        total += 5u + (n > 255u ? 255u : n);
    }
    return total;
}

/* fresh: start a new session (new epoch, nonce, counters, empty cache); else the current
 * session's HELLO again, for a retried HELLO_REQ. */
static int send_hello(bridge_t *b, uint16_t ack, int fresh)
{
    static const struct {
        uint16_t id;
        const char *name;
    } builtins[] = {{BRIDGE_M_PING, "sys.ping"},
                    {BRIDGE_M_INFO, "sys.info"},
                    {BRIDGE_M_STREAM_START, "stream.start"},
                    {BRIDGE_M_STREAM_STOP, "stream.stop"}};
    const bridge_config_t *cfg = b->cfg;
    bridge_header_t h;
    bridge_wbuf_t w;
    size_t fw_len = strlen(cfg->fw_version != NULL ? cfg->fw_version : "");
    size_t count_at;
    size_t methods_cap;
    size_t i;
    uint8_t n_methods = 0;

    if (fresh) {
        b->epoch++;
        b->in_session = 1;
        b->rx_counter = 0;
        b->tx_counter = 0;
        memset(b->cache, 0, sizeof(b->cache));
        stop_streams(b);
        new_nonce(b);
    }

    if (fw_len > BRIDGE_FW_VERSION_MAX) {
        fw_len = BRIDGE_FW_VERSION_MAX;
    }
    w.p = bridge_tx_payload(b);
    w.len = 0;
    w.cap = (size_t)b->limit - BRIDGE_MIN_BODY; /* HELLO is never authenticated */
    w.overflow = 0;
    bridge_w_u16(&w, BRIDGE_VERSION);
    bridge_w_u32(&w, b->epoch);
    bridge_w_u8(&w, b->boot_reason);
    bridge_w_u8(&w, cfg->uid_len);
    bridge_w_bytes(&w, cfg->uid, cfg->uid_len);
    bridge_w_u8(&w, (uint8_t)fw_len);
    bridge_w_bytes(&w, cfg->fw_version, fw_len);
    bridge_w_bytes(&w, cfg->fw_sha256, 32);
    bridge_w_u16(&w, device_limit(cfg));
    bridge_w_u16(&w, (uint16_t)BRIDGE_RX_WINDOW);
    bridge_w_bytes(&w, b->dev_nonce, BRIDGE_NONCE_SIZE);
    bridge_w_u8(&w, auth_enabled(b) ? 1u : 0u);
    count_at = w.len;
    bridge_w_u8(&w, 0);
    /* Methods that do not fit a small frame limit are left out of the list
     * (still callable by id); streams are always listed. */
    methods_cap = w.cap;
    w.cap = w.cap > hello_streams_size(cfg) ? w.cap - hello_streams_size(cfg) : 0;
    for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]) + cfg->n_methods && n_methods < 255u;
         i++) {
        size_t before = w.len;
        if (i < sizeof(builtins) / sizeof(builtins[0])) {
            hello_method(&w, builtins[i].id, builtins[i].name);
        } else {
            const bridge_method_t *m = &cfg->methods[i - sizeof(builtins) / sizeof(builtins[0])];
            hello_method(&w, m->id, m->name);
        }
        if (w.overflow) {
            w.len = before;
            w.overflow = 0;
            break;
        }
        n_methods++;
    }
    w.p[count_at] = n_methods;
    w.cap = methods_cap;
    bridge_w_u8(&w, (uint8_t)cfg->n_streams);
    for (i = 0; i < cfg->n_streams; i++) {
        hello_method(&w, cfg->streams[i].id, cfg->streams[i].name);
        bridge_w_u16(&w, cfg->streams[i].sample_size);
    }
    if (w.overflow) {
        b->stats.tx_dropped++;
        return -1;
    }
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_CONTROL;
    h.type = BRIDGE_T_HELLO;
    h.ack = ack;
    return send_raw(b, &h, w.len, 0);
}

static void handle_hello_req(bridge_t *b, const bridge_header_t *h, const uint8_t *p, size_t n)
{
    uint16_t min_v, max_v, host_limit;
    if (n < HELLO_REQ_SIZE) {
        send_error(b, BRIDGE_BAD_ARGS, "HELLO_REQ payload shorter than 24 bytes", h->seq);
        return;
    }
    min_v = bridge_get_u16(p);
    max_v = bridge_get_u16(p + 2);
    host_limit = bridge_get_u16(p + 4);
    if (min_v > BRIDGE_VERSION || max_v < BRIDGE_VERSION) {
        send_error(b, BRIDGE_UNSUPPORTED, "device speaks protocol version 1 only", h->seq);
        return;
    }
    if (host_limit < BRIDGE_FRAME_MIN_LIMIT) {
        send_error(b, BRIDGE_TOO_LARGE, "host frame_limit below the device minimum", h->seq);
        return;
    }
    if (b->in_session && host_limit == b->host_limit &&
        memcmp(b->host_nonce, p + 8, BRIDGE_NONCE_SIZE) == 0) {
        /* The host retried before our HELLO reached it: the same session, the same HELLO. */
        (void)send_hello(b, h->seq, 0);
        return;
    }
    memcpy(b->host_nonce, p + 8, BRIDGE_NONCE_SIZE);
    b->host_limit = host_limit;
    b->limit = device_limit(b->cfg) < host_limit ? device_limit(b->cfg) : host_limit;
    b->hello_pending = 0;
    (void)send_hello(b, h->seq, 1);
}

void bridge_request_hello(bridge_t *b, uint8_t boot_reason)
{
    b->boot_reason = boot_reason;
    if (b->in_dispatch) {
        b->hello_pending = 1;
    } else {
        (void)send_hello(b, 0, 1);
    }
}

/* ---- rpc --------------------------------------------------------------- */

static int find_stream(const bridge_t *b, uint16_t id)
{
    size_t i;
    for (i = 0; i < b->cfg->n_streams; i++) {
        if (b->cfg->streams[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

static bridge_status_t builtin_info(bridge_t *b, uint8_t *out, size_t cap, size_t *out_len)
{
    const bridge_decoder_stats_t *d = &b->dec.stats;
    const bridge_config_t *cfg = b->cfg;
    static const char hex[] = "0123456789abcdef";
    bridge_wbuf_t w;
    size_t i;

    w.p = out;
    w.len = 0;
    w.cap = cap;
    w.overflow = 0;
    bridge_w_str(&w, "protocol=1\nuid=");
    for (i = 0; i < cfg->uid_len; i++) {
        bridge_w_u8(&w, (uint8_t)hex[cfg->uid[i] >> 4]);
        bridge_w_u8(&w, (uint8_t)hex[cfg->uid[i] & 0x0Fu]);
    }
    bridge_w_str(&w, "\nfw=");
    bridge_w_str(&w, cfg->fw_version != NULL ? cfg->fw_version : "");
    bridge_w_str(&w, "\nepoch=");
    bridge_w_uint(&w, b->epoch);
    bridge_w_str(&w, "\nframe_limit=");
    bridge_w_uint(&w, b->limit);
    bridge_w_str(&w, "\nuptime_us=");
    bridge_w_uint(&w, now_us(b));
    bridge_w_str(&w, "\nrx_frames=");
    bridge_w_uint(&w, b->stats.rx_frames);
    bridge_w_str(&w, "\ntx_frames=");
    bridge_w_uint(&w, b->stats.tx_frames);
    bridge_w_str(&w, "\ntx_dropped=");
    bridge_w_uint(&w, b->stats.tx_dropped);
    bridge_w_str(&w, "\ncobs_errors=");
    bridge_w_uint(&w, d->cobs_errors);
    bridge_w_str(&w, "\nshort_frames=");
    bridge_w_uint(&w, d->short_frames);
    bridge_w_str(&w, "\ncrc_errors=");
    bridge_w_uint(&w, d->crc_errors);
    bridge_w_str(&w, "\nbad_version=");
    bridge_w_uint(&w, d->bad_version);
    bridge_w_str(&w, "\noversize=");
    bridge_w_uint(&w, d->oversize);
    bridge_w_str(&w, "\nauth_failures=");
    bridge_w_uint(&w, b->stats.auth_failures);
    bridge_w_str(&w, "\n");
    if (w.overflow) {
        return BRIDGE_TOO_LARGE;
    }
    *out_len = w.len;
    return BRIDGE_OK;
}

static bridge_status_t builtin_stream(bridge_t *b, uint16_t method, const uint8_t *args,
                                      size_t n)
{
    int i;
    uint32_t rate;
    if (n != (method == BRIDGE_M_STREAM_START ? 6u : 2u)) {
        return BRIDGE_BAD_ARGS;
    }
    i = find_stream(b, bridge_get_u16(args));
    if (i < 0) {
        return BRIDGE_NOT_FOUND;
    }
    if (method == BRIDGE_M_STREAM_STOP) {
        b->streams[i].rate_hz = 0;
        return BRIDGE_OK;
    }
    rate = bridge_get_u32(args + 2);
    if (rate == 0 || rate > b->cfg->streams[i].max_rate_hz) {
        return BRIDGE_BAD_ARGS;
    }
    if ((size_t)b->cfg->streams[i].sample_size + STREAM_DATA_HEADER > bridge_payload_cap(b)) {
        return BRIDGE_TOO_LARGE;
    }
    b->streams[i].rate_hz = rate;
    b->streams[i].start_us = now_us(b);
    b->streams[i].produced = 0;
    return BRIDGE_OK;
}

static bridge_status_t dispatch(bridge_t *b, uint16_t method, const uint8_t *args, size_t n,
                                uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i;
    *out_len = 0;
    switch (method) {
    case BRIDGE_M_PING:
        if (n > cap) {
            return BRIDGE_TOO_LARGE;
        }
        if (n > 0) {
            memcpy(out, args, n);
        }
        *out_len = n;
        return BRIDGE_OK;
    case BRIDGE_M_INFO:
        return builtin_info(b, out, cap, out_len);
    case BRIDGE_M_STREAM_START:
    case BRIDGE_M_STREAM_STOP:
        return builtin_stream(b, method, args, n);
    default:
        break;
    }
    for (i = 0; i < b->cfg->n_methods; i++) {
        const bridge_method_t *m = &b->cfg->methods[i];
        if (m->id == method) {
            bridge_status_t st;
            if (m->fn == NULL) {
                return BRIDGE_UNSUPPORTED;
            }
            st = m->fn(b, args, n, out, cap, out_len);
            if (*out_len > cap) {
                *out_len = 0;
                return BRIDGE_INTERNAL;
            }
            return st;
        }
    }
    return BRIDGE_UNKNOWN_METHOD;
}

static int send_response(bridge_t *b, const bridge_rpc_entry_t *e, int resend, int authenticate)
{
    bridge_header_t h;
    uint8_t *p = bridge_tx_payload(b);
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_RPC;
    h.type = BRIDGE_T_RESPONSE;
    h.ack = e->ack;
    h.id = e->call_id;
    if (resend) {
        h.flags = BRIDGE_FLAG_RESEND;
        h.seq = e->seq;
    }
    bridge_put_u16(p, e->status);
    if (e->len > 0) {
        memcpy(p + 2, e->result, e->len);
    }
    return send_raw(b, &h, 2u + e->len, authenticate);
}

static void send_status(bridge_t *b, const bridge_header_t *req, bridge_status_t st,
                        int authenticate)
{
    bridge_rpc_entry_t e;
    e.call_id = req->id;
    e.ack = req->seq;
    e.seq = 0;
    e.status = (uint16_t)st;
    e.len = 0;
    (void)send_response(b, &e, 0, authenticate);
}

static void handle_request(bridge_t *b, const bridge_header_t *h, const uint8_t *p, size_t n)
{
    bridge_rpc_entry_t *victim = NULL;
    bridge_rpc_entry_t *empty = NULL;
    uint32_t oldest = 0;
    size_t i;
    size_t cap;
    size_t result_len = 0;
    bridge_status_t st;

    if (h->id == 0) {
        send_status(b, h, BRIDGE_BAD_ARGS, auth_enabled(b));
        return;
    }
    for (i = 0; i < BRIDGE_RPC_CACHE_ENTRIES; i++) {
        bridge_rpc_entry_t *e = &b->cache[i];
        if (e->call_id == h->id) {
            b->stats.rpc_duplicates++;
            (void)send_response(b, e, 1, auth_enabled(b));
            return;
        }
        if (e->call_id == 0) {
            empty = e;
        } else if (oldest == 0 || e->call_id < oldest) {
            oldest = e->call_id;
            victim = e;
        }
    }
    if (empty != NULL) {
        victim = empty;
    }
    /* Older than every stored id with the store full: it may have run and been evicted, so
     * it must not run again. While the store has room nothing was evicted, and an older id
     * is a call the host sent late (from another thread): it runs. */
    if (empty == NULL && h->id < oldest) {
        b->stats.rpc_stale++;
        send_status(b, h, BRIDGE_STALE, auth_enabled(b));
        return;
    }
    cap = bridge_payload_cap(b) - 2u;
    if (cap > BRIDGE_RPC_RESULT_MAX) {
        cap = BRIDGE_RPC_RESULT_MAX;
    }
    if (n < 2) {
        st = BRIDGE_BAD_ARGS;
    } else {
        b->in_dispatch = 1;
        st = dispatch(b, bridge_get_u16(p), p + 2, n - 2, victim->result, cap, &result_len);
        b->in_dispatch = 0;
        b->stats.rpc_executed++;
    }
    victim->call_id = h->id;
    victim->ack = h->seq;
    victim->seq = b->tx_seq[BRIDGE_CH_RPC];
    victim->status = (uint16_t)st;
    victim->len = (uint16_t)result_len;
    (void)send_response(b, victim, 0, auth_enabled(b));
    if (b->hello_pending) {
        b->hello_pending = 0;
        (void)send_hello(b, 0, 1);
    }
}

/* ---- receive ----------------------------------------------------------- */

static int verify_trailer(bridge_t *b, const uint8_t *body, size_t signed_len)
{
    uint8_t tag[BRIDGE_SHA256_SIZE];
    uint32_t counter = bridge_get_u32(body + signed_len - 4u);
    auth_tag(b, body, signed_len, tag);
    if (!bridge_ct_equal(tag, body + signed_len, BRIDGE_TAG_SIZE) || counter <= b->rx_counter) {
        b->stats.auth_failures++;
        return 0;
    }
    b->rx_counter = counter;
    return 1;
}

static void on_frame(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    bridge_t *b = (bridge_t *)ctx;
    const uint8_t *p = body + BRIDGE_HEADER_SIZE;
    size_t n = len - BRIDGE_HEADER_SIZE;
    int authed = 0;

    b->stats.rx_frames++;
    if (h->flags & BRIDGE_FLAG_AUTH) {
        if (n < BRIDGE_TRAILER_SIZE) {
            b->stats.auth_failures++;
            return;
        }
        n -= BRIDGE_TRAILER_SIZE;
        if (auth_enabled(b)) {
            authed = verify_trailer(b, body, BRIDGE_HEADER_SIZE + n + 4u);
        }
    }
    if (h->channel == BRIDGE_CH_CONTROL) {
        if (h->type == BRIDGE_T_HELLO_REQ) {
            handle_hello_req(b, h, p, n);
            return;
        }
        if (h->type == BRIDGE_T_ERROR) {
            return; /* a host complaint; nothing to answer */
        }
        b->stats.unsupported++;
        return;
    }
    if (auth_enabled(b) && !authed) {
        if (h->channel == BRIDGE_CH_RPC && h->type == BRIDGE_T_REQUEST) {
            send_status(b, h, BRIDGE_UNAUTHENTICATED, 0);
        } else if (!(h->flags & BRIDGE_FLAG_AUTH)) {
            b->stats.auth_failures++;
        }
        return;
    }
    if (h->channel == BRIDGE_CH_RPC && h->type == BRIDGE_T_REQUEST) {
        handle_request(b, h, p, n);
    } else if (h->channel == BRIDGE_CH_BULK) {
        bridge_bulk_frame(b, h, p, n);
    } else {
        b->stats.unsupported++;
    }
}

static void on_console(void *ctx, const uint8_t *line, size_t len)
{
    bridge_t *b = (bridge_t *)ctx;
    if (b->port.console != NULL) {
        b->port.console(b->port.ctx, line, len);
    }
}

/* ---- streams ----------------------------------------------------------- */

static uint64_t sample_time(const bridge_stream_state_t *st, uint64_t index)
{
    return st->start_us + (index * 1000000u + st->rate_hz - 1u) / st->rate_hz;
}

static void emit_samples(bridge_t *b, size_t i, uint64_t first, size_t count)
{
    const bridge_stream_def_t *def = &b->cfg->streams[i];
    bridge_stream_state_t *st = &b->streams[i];
    bridge_header_t h;
    uint8_t *p = bridge_tx_payload(b);
    size_t body = BRIDGE_HEADER_SIZE + STREAM_DATA_HEADER + count * def->sample_size +
                  BRIDGE_CRC_SIZE + (auth_enabled(b) ? BRIDGE_TRAILER_SIZE : 0u);
    size_t k;

    if (b->port.write_space != NULL &&
        b->port.write_space(b->port.ctx) < BRIDGE_WIRE_MAX(body)) {
        st->overruns += (uint32_t)count;
        return;
    }
    bridge_put_u32(p, st->sample_seq);
    bridge_put_u64(p + 4, sample_time(st, first));
    bridge_put_u32(p + 12, st->overruns);
    for (k = 0; k < count; k++) {
        uint8_t *out = p + STREAM_DATA_HEADER + k * def->sample_size;
        if (def->sample != NULL) {
            def->sample(b, def->id, sample_time(st, first + k), out);
        } else {
            memset(out, 0, def->sample_size);
        }
    }
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_STREAM;
    h.type = BRIDGE_T_STREAM_DATA;
    h.id = def->id;
    if (bridge_send_body(b, &h, STREAM_DATA_HEADER + count * def->sample_size) != 0) {
        st->overruns += (uint32_t)count;
        return;
    }
    st->sample_seq++;
}

static size_t batch_size(const bridge_stream_state_t *st)
{
    return (st->rate_hz + MAX_FRAMES_PER_SECOND - 1u) / MAX_FRAMES_PER_SECOND;
}

void bridge_poll(bridge_t *b)
{
    size_t i;
    for (i = 0; i < b->cfg->n_streams; i++) {
        bridge_stream_state_t *st = &b->streams[i];
        const bridge_stream_def_t *def = &b->cfg->streams[i];
        uint64_t now, due_total, due;
        size_t per_frame;

        if (st->rate_hz == 0) {
            continue;
        }
        now = now_us(b);
        if (now < st->start_us) {
            continue;
        }
        due_total = (now - st->start_us) * st->rate_hz / 1000000u + 1u;
        if (due_total <= st->produced) {
            continue;
        }
        due = due_total - st->produced;
        if (due < batch_size(st)) {
            continue;
        }
        per_frame = (bridge_payload_cap(b) - STREAM_DATA_HEADER) / def->sample_size;
        if (due > (uint64_t)per_frame * BURST_FRAMES) {
            /* Fell behind (the loop stalled): keep the newest, count the rest. */
            uint64_t dropped = due - (uint64_t)per_frame * BURST_FRAMES;
            st->overruns += (uint32_t)dropped;
            st->produced += dropped;
            due -= dropped;
        }
        while (due > 0) {
            size_t k = due < per_frame ? (size_t)due : per_frame;
            emit_samples(b, i, st->produced, k);
            st->produced += k;
            due -= k;
        }
    }
}

uint64_t bridge_next_deadline_us(const bridge_t *b)
{
    uint64_t best = UINT64_MAX;
    size_t i;
    for (i = 0; i < b->cfg->n_streams; i++) {
        const bridge_stream_state_t *st = &b->streams[i];
        uint64_t t;
        if (st->rate_hz == 0) {
            continue;
        }
        t = sample_time(st, st->produced + batch_size(st) - 1u);
        if (t < best) {
            best = t;
        }
    }
    return best;
}

const bridge_stream_state_t *bridge_stream_state(const bridge_t *b, uint16_t stream_id)
{
    int i = find_stream(b, stream_id);
    return i < 0 ? NULL : &b->streams[i];
}

/* ---- log --------------------------------------------------------------- */

int bridge_log(bridge_t *b, uint8_t level, const char *text, size_t len)
{
    bridge_header_t h;
    uint8_t *p = bridge_tx_payload(b);
    size_t cap = bridge_payload_cap(b) - 9u;
    if (len > cap) {
        len = cap;
    }
    p[0] = level;
    bridge_put_u64(p + 1, now_us(b));
    if (len > 0) {
        memcpy(p + 9, text, len);
    }
    memset(&h, 0, sizeof(h));
    h.channel = BRIDGE_CH_LOG;
    h.type = BRIDGE_T_LOG;
    if (bridge_send_body(b, &h, 9u + len) != 0) {
        b->stats.log_dropped++;
        return -1;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------- */

int bridge_init(bridge_t *b, const bridge_config_t *cfg, const bridge_port_t *port, void *user)
{
    size_t i;
    uint16_t limit;
    if (b == NULL || cfg == NULL || port == NULL || port->write == NULL || port->now_us == NULL) {
        return -1;
    }
    limit = device_limit(cfg);
    if (limit < BRIDGE_FRAME_MIN_LIMIT || limit > BRIDGE_FRAME_MAX ||
        cfg->uid_len > BRIDGE_UID_MAX || (cfg->uid_len > 0 && cfg->uid == NULL) ||
        cfg->n_streams > BRIDGE_MAX_STREAMS || (cfg->n_methods > 0 && cfg->methods == NULL) ||
        (cfg->n_bulk_targets > 0 && cfg->bulk_targets == NULL) ||
        (cfg->auth_key != NULL && port->random == NULL)) {
        return -1;
    }
    for (i = 0; i < cfg->n_streams; i++) {
        if (cfg->streams[i].sample_size == 0 || cfg->streams[i].max_rate_hz == 0 ||
            cfg->streams[i].sample_size + STREAM_DATA_HEADER + BRIDGE_OVERHEAD > limit) {
            return -1;
        }
    }
    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    b->port = *port;
    b->user = user;
    b->epoch = cfg->first_epoch;
    b->boot_reason = cfg->boot_reason;
    b->limit = limit;
    b->host_limit = limit;
    bridge_decoder_init(&b->dec, limit, on_frame, on_console, b);
    new_nonce(b);
    return 0;
}

void *bridge_user(const bridge_t *b)
{
    return b->user;
}

void bridge_feed(bridge_t *b, const uint8_t *data, size_t len)
{
    bridge_decoder_feed(&b->dec, data, len);
}

void bridge_link_reset(bridge_t *b)
{
    bridge_decoder_reset(&b->dec);
    stop_streams(b);
    b->in_session = 0;
    b->hello_pending = 0;
    b->limit = device_limit(b->cfg);
}

const bridge_stats_t *bridge_stats(const bridge_t *b)
{
    return &b->stats;
}

const bridge_decoder_stats_t *bridge_decoder_stats(const bridge_t *b)
{
    return &b->dec.stats;
}

uint32_t bridge_epoch(const bridge_t *b)
{
    return b->epoch;
}
