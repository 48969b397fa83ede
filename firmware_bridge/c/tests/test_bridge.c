/* Unit tests of the bridge library: every row of the shared vector table, then
 * the device state machines driven through a capturing port.
 *
 * usage: test_bridge PATH/TO/frames.tsv
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

static int checks;
static int failures;

#define CHECK(cond, ...) check_impl((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

static void check_impl(int ok, const char *file, int line, const char *fmt, ...)
{
    checks++;
    if (!ok) {
        va_list ap;
        failures++;
        fprintf(stderr, "FAIL %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

/* ---- hex and table parsing ---------------------------------------------- */

#define BIG 70000

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode hex (or "-" for empty); returns the length or -1. */
static long unhex(const char *s, size_t slen, uint8_t *out, size_t cap)
{
    size_t i;
    if (slen == 1 && s[0] == '-') {
        return 0;
    }
    if (slen % 2 != 0 || slen / 2 > cap) {
        return -1;
    }
    for (i = 0; i < slen / 2; i++) {
        int hi = hexval(s[2 * i]);
        int lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return (long)(slen / 2);
}

/* Find key=value in a list separated by sep; returns a pointer to the value
 * and its length, or NULL. */
static const char *param(const char *list, char sep, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, sep);
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            *len = n - klen - 1;
            return p + klen + 1;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

static unsigned long param_num(const char *list, char sep, const char *key)
{
    size_t len;
    const char *v = param(list, sep, key, &len);
    return v != NULL ? strtoul(v, NULL, 10) : 0ul;
}

static void header_from_params(const char *params, bridge_header_t *h)
{
    h->version = (uint8_t)param_num(params, ',', "version");
    h->flags = (uint8_t)param_num(params, ',', "flags");
    h->channel = (uint8_t)param_num(params, ',', "channel");
    h->type = (uint8_t)param_num(params, ',', "type");
    h->seq = (uint16_t)param_num(params, ',', "seq");
    h->ack = (uint16_t)param_num(params, ',', "ack");
    h->id = (uint32_t)param_num(params, ',', "id");
}

/* ---- decoder capture ------------------------------------------------------ */

typedef struct capture {
    uint8_t bodies[BIG];
    size_t body_len[64];
    size_t n_bodies;
    size_t used;
    uint8_t console[4096];
    size_t console_len[16];
    size_t n_console;
    size_t console_used;
} capture_t;

static void cap_frame(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    capture_t *c = (capture_t *)ctx;
    (void)h;
    /* The CRC follows the body in the decoder's buffer: keep it, as the table does. */
    len += BRIDGE_CRC_SIZE;
    if (c->n_bodies < 64 && c->used + len <= sizeof(c->bodies)) {
        memcpy(c->bodies + c->used, body, len);
        c->body_len[c->n_bodies++] = len;
        c->used += len;
    }
}

static void cap_console(void *ctx, const uint8_t *line, size_t len)
{
    capture_t *c = (capture_t *)ctx;
    if (c->n_console < 16 && c->console_used + len <= sizeof(c->console)) {
        memcpy(c->console + c->console_used, line, len);
        c->console_len[c->n_console++] = len;
        c->console_used += len;
    }
}

/* Compare a "|"-separated list of hex items with what was captured. */
static int same_list(const char *v, size_t vlen, const uint8_t *data, const size_t *lens,
                     size_t n)
{
    static uint8_t tmp[BIG];
    size_t i = 0;
    size_t off = 0;
    const char *p = v;
    const char *end = v + vlen;
    if (vlen == 1 && v[0] == '-') {
        return n == 0;
    }
    while (p < end) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        size_t item = bar != NULL ? (size_t)(bar - p) : (size_t)(end - p);
        long got = unhex(p, item, tmp, sizeof(tmp));
        if (i >= n || got < 0 || (size_t)got != lens[i] || memcmp(tmp, data + off, lens[i]) != 0) {
            return 0;
        }
        off += lens[i];
        i++;
        p += item + 1;
    }
    return i == n;
}

static const char *const counter_names[] = {"frames",       "cobs_errors", "short_frames",
                                            "crc_errors",   "bad_version", "oversize",
                                            "console_lines"};

static uint32_t counter_value(const bridge_decoder_stats_t *s, size_t i)
{
    const uint32_t v[] = {s->frames,      s->cobs_errors, s->short_frames, s->crc_errors,
                          s->bad_version, s->oversize,    s->console_lines};
    return v[i];
}

static void check_decode_row(const char *name, const char *params, const uint8_t *in, size_t n,
                             const char *expected, int byte_by_byte)
{
    static capture_t cap;
    static bridge_decoder_t dec;
    size_t i;
    size_t vlen;
    const char *v;

    memset(&cap, 0, sizeof(cap));
    bridge_decoder_init(&dec, param_num(params, ',', "limit"), cap_frame, cap_console, &cap);
    if (byte_by_byte) {
        for (i = 0; i < n; i++) {
            bridge_decoder_feed(&dec, in + i, 1);
        }
    } else {
        bridge_decoder_feed(&dec, in, n);
    }
    for (i = 0; i < sizeof(counter_names) / sizeof(counter_names[0]); i++) {
        unsigned long want = param_num(expected, ';', counter_names[i]);
        CHECK(counter_value(&dec.stats, i) == want, "decode %s (%s): %s = %u, want %lu", name,
              byte_by_byte ? "bytewise" : "bulk", counter_names[i],
              (unsigned)counter_value(&dec.stats, i), want);
    }
    v = param(expected, ';', "bodies", &vlen);
    CHECK(v != NULL && same_list(v, vlen, cap.bodies, cap.body_len, cap.n_bodies),
          "decode %s: bodies differ", name);
    v = param(expected, ';', "console", &vlen);
    CHECK(v != NULL && same_list(v, vlen, cap.console, cap.console_len, cap.n_console),
          "decode %s: console lines differ", name);
}

static void check_row(char *line)
{
    static uint8_t in[BIG], want[BIG], got[BIG], scratch[BIG];
    char *f[5];
    size_t i;
    long n_in, n_want;
    char *p = line;

    for (i = 0; i < 5; i++) {
        f[i] = p;
        p = strchr(p, '\t');
        if (p == NULL && i < 4) {
            CHECK(0, "malformed table row: %s", line);
            return;
        }
        if (p != NULL) {
            *p++ = '\0';
        }
    }
    n_in = unhex(f[3], strlen(f[3]), in, sizeof(in));
    n_want = unhex(f[4], strlen(f[4]), want, sizeof(want));

    if (strcmp(f[0], "cobs") == 0) {
        size_t n = bridge_cobs_encode(in, (size_t)n_in, got, sizeof(got));
        size_t dn = 0;
        CHECK(n == (size_t)n_want && memcmp(got, want, n) == 0, "cobs encode %s", f[1]);
        CHECK(bridge_cobs_decode(want, (size_t)n_want, got, sizeof(got), &dn) == 0 &&
                  dn == (size_t)n_in && memcmp(got, in, dn) == 0,
              "cobs decode %s", f[1]);
        /* In place, as the decoder does it. */
        memcpy(scratch, want, (size_t)n_want);
        CHECK(bridge_cobs_decode(scratch, (size_t)n_want, scratch, sizeof(scratch), &dn) == 0 &&
                  dn == (size_t)n_in && memcmp(scratch, in, dn) == 0,
              "cobs decode in place %s", f[1]);
        /* One byte short of room must fail cleanly. */
        CHECK(bridge_cobs_encode(in, (size_t)n_in, got, (size_t)n_want - 1) == 0,
              "cobs encode %s into a short buffer", f[1]);
    } else if (strcmp(f[0], "cobs_bad") == 0) {
        size_t dn = 0;
        CHECK(bridge_cobs_decode(in, (size_t)n_in, got, sizeof(got), &dn) != 0, "cobs_bad %s",
              f[1]);
    } else if (strcmp(f[0], "crc32") == 0) {
        unsigned long w = strtoul(f[4], NULL, 16);
        uint32_t c = bridge_crc32(0, in, (size_t)n_in);
        uint32_t split = bridge_crc32(bridge_crc32(0, in, (size_t)n_in / 2), in + n_in / 2,
                                      (size_t)n_in - (size_t)n_in / 2);
        CHECK(c == (uint32_t)w && split == c, "crc32 %s: %08x", f[1], (unsigned)c);
    } else if (strcmp(f[0], "header") == 0) {
        bridge_header_t h, back;
        header_from_params(f[2], &h);
        bridge_header_encode(&h, got);
        CHECK(n_want == BRIDGE_HEADER_SIZE && memcmp(got, want, BRIDGE_HEADER_SIZE) == 0,
              "header encode %s", f[1]);
        CHECK(bridge_header_parse(want, (size_t)n_want, &back) == 0 &&
                  memcmp(&back, &h, sizeof(h)) == 0,
              "header parse %s", f[1]);
        CHECK(bridge_header_parse(want, BRIDGE_HEADER_SIZE - 1, &back) != 0,
              "header parse %s short", f[1]);
    } else if (strcmp(f[0], "frame") == 0 || strcmp(f[0], "auth_frame") == 0) {
        bridge_header_t h;
        uint8_t trailer[BRIDGE_TRAILER_SIZE];
        size_t trailer_len = 0;
        size_t n;
        header_from_params(f[2], &h);
        if (f[0][0] == 'a') {
            uint8_t key[64], dn[16], hn[16], tag[32];
            size_t len;
            const char *v;
            long klen;
            bridge_hmac_t m;
            v = param(f[2], ',', "key", &len);
            klen = unhex(v, len, key, sizeof(key));
            v = param(f[2], ',', "dev_nonce", &len);
            (void)unhex(v, len, dn, sizeof(dn));
            v = param(f[2], ',', "host_nonce", &len);
            (void)unhex(v, len, hn, sizeof(hn));
            bridge_put_u32(trailer, (uint32_t)param_num(f[2], ',', "counter"));
            bridge_header_encode(&h, scratch);
            memcpy(scratch + BRIDGE_HEADER_SIZE, in, (size_t)n_in);
            memcpy(scratch + BRIDGE_HEADER_SIZE + n_in, trailer, 4);
            bridge_hmac_init(&m, key, (size_t)klen);
            bridge_hmac_update(&m, dn, sizeof(dn));
            bridge_hmac_update(&m, hn, sizeof(hn));
            bridge_hmac_update(&m, scratch, BRIDGE_HEADER_SIZE + (size_t)n_in + 4u);
            bridge_hmac_final(&m, tag);
            memcpy(trailer + 4, tag, BRIDGE_TAG_SIZE);
            trailer_len = BRIDGE_TRAILER_SIZE;
        }
        n = bridge_frame_encode(&h, in, (size_t)n_in, trailer, trailer_len, scratch,
                                sizeof(scratch), got, sizeof(got));
        CHECK(n == (size_t)n_want && memcmp(got, want, n) == 0, "%s encode %s", f[0], f[1]);
        {
            static capture_t cap;
            static bridge_decoder_t dec;
            memset(&cap, 0, sizeof(cap));
            bridge_decoder_init(&dec, BRIDGE_FRAME_MAX, cap_frame, cap_console, &cap);
            bridge_decoder_feed(&dec, want, (size_t)n_want);
            CHECK(cap.n_bodies == 1 &&
                      cap.body_len[0] ==
                          BRIDGE_HEADER_SIZE + (size_t)n_in + trailer_len + BRIDGE_CRC_SIZE &&
                      memcmp(cap.bodies + BRIDGE_HEADER_SIZE, in, (size_t)n_in) == 0,
                  "%s decode %s", f[0], f[1]);
        }
    } else if (strcmp(f[0], "decode") == 0) {
        check_decode_row(f[1], f[2], in, (size_t)n_in, f[4], 0);
        check_decode_row(f[1], f[2], in, (size_t)n_in, f[4], 1);
    } else if (strcmp(f[0], "sha256") == 0) {
        bridge_sha256_t s;
        size_t off = 0;
        size_t step = 1;
        bridge_sha256(in, (size_t)n_in, got);
        CHECK(n_want == 32 && memcmp(got, want, 32) == 0, "sha256 %s", f[1]);
        /* Fed in uneven pieces, the same digest. */
        bridge_sha256_init(&s);
        while (off < (size_t)n_in) {
            size_t k = step < (size_t)n_in - off ? step : (size_t)n_in - off;
            bridge_sha256_update(&s, in + off, k);
            off += k;
            step = step * 3 + 1;
        }
        bridge_sha256_final(&s, got);
        CHECK(memcmp(got, want, 32) == 0, "sha256 %s in pieces", f[1]);
    } else if (strcmp(f[0], "hmac") == 0) {
        uint8_t key[256];
        size_t len;
        const char *v = param(f[2], ',', "key", &len);
        long klen = unhex(v, len, key, sizeof(key));
        bridge_hmac_t m;
        bridge_hmac_init(&m, key, (size_t)klen);
        bridge_hmac_update(&m, in, (size_t)n_in);
        bridge_hmac_final(&m, got);
        CHECK(n_want == 32 && memcmp(got, want, 32) == 0, "hmac %s", f[1]);
    } else {
        CHECK(0, "unknown row kind %s", f[0]);
    }
}

static int run_table(const char *path)
{
    static char line[BIG * 3];
    int rows = 0;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0 || line[0] == '#') {
            continue;
        }
        check_row(line);
        rows++;
    }
    fclose(fp);
    return rows;
}

/* ---- device tests through a capturing port ------------------------------- */

typedef struct tport {
    uint8_t out[BIG];
    size_t len;
    size_t space; /* bytes the link accepts; SIZE_MAX: unlimited */
    uint64_t now;
    uint8_t seed;
} tport_t;

static tport_t tp;

static size_t tp_write(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    if (n > tp.space || n > sizeof(tp.out) - tp.len) {
        return 0;
    }
    memcpy(tp.out + tp.len, d, n);
    tp.len += n;
    if (tp.space != (size_t)-1) {
        tp.space -= n;
    }
    return n;
}

static size_t tp_space(void *ctx)
{
    (void)ctx;
    return tp.space;
}

static uint64_t tp_now(void *ctx)
{
    (void)ctx;
    return tp.now;
}

static void tp_random(void *ctx, uint8_t *out, size_t n)
{
    size_t i;
    (void)ctx;
    for (i = 0; i < n; i++) {
        out[i] = (uint8_t)(tp.seed++ * 37u + 11u);
    }
}

static const bridge_port_t test_port = {tp_write, tp_space, tp_now, tp_random, NULL, NULL};

typedef struct rxframe {
    bridge_header_t h;
    uint8_t p[2048];
    size_t n;
    size_t body_len; /* without CRC */
    uint8_t body[2048];
} rxframe_t;

static rxframe_t rx[64];
static size_t n_rx;

static void rx_frame(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    (void)ctx;
    if (n_rx < 64 && len <= sizeof(rx[0].body)) {
        rx[n_rx].h = *h;
        rx[n_rx].n = len - BRIDGE_HEADER_SIZE;
        memcpy(rx[n_rx].p, body + BRIDGE_HEADER_SIZE, rx[n_rx].n);
        memcpy(rx[n_rx].body, body, len);
        rx[n_rx].body_len = len;
        n_rx++;
    }
}

/* Decode everything the device wrote since the last call. */
static size_t take(void)
{
    static bridge_decoder_t dec;
    n_rx = 0;
    bridge_decoder_init(&dec, BRIDGE_FRAME_MAX, rx_frame, NULL, NULL);
    bridge_decoder_feed(&dec, tp.out, tp.len);
    tp.len = 0;
    return n_rx;
}

static uint16_t host_seq;

static void host_send(bridge_t *b, uint8_t ch, uint8_t type, uint8_t flags, uint32_t id,
                      const uint8_t *payload, size_t n)
{
    static uint8_t scratch[BRIDGE_FRAME_MAX], wire[BRIDGE_WIRE_MAX(BRIDGE_FRAME_MAX)];
    bridge_header_t h;
    size_t w;
    memset(&h, 0, sizeof(h));
    h.version = 1;
    h.flags = flags;
    h.channel = ch;
    h.type = type;
    h.seq = host_seq++;
    h.id = id;
    w = bridge_frame_encode(&h, payload, n, NULL, 0, scratch, sizeof(scratch), wire,
                            sizeof(wire));
    CHECK(w > 0, "host frame encodes");
    bridge_feed(b, wire, w);
}

/* The host nonce of the HELLO_REQs sent; the same nonce again is a retry of the session. */
static uint8_t host_nonce[16] = {0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
                                 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF};

static void hello(bridge_t *b, uint16_t min_v, uint16_t max_v, uint16_t limit)
{
    uint8_t p[24];
    bridge_put_u16(p, min_v);
    bridge_put_u16(p + 2, max_v);
    bridge_put_u16(p + 4, limit);
    bridge_put_u16(p + 6, 4);
    memcpy(p + 8, host_nonce, 16);
    host_send(b, BRIDGE_CH_CONTROL, BRIDGE_T_HELLO_REQ, 0, 0, p, sizeof(p));
}

/* A host that reconnects: its next HELLO_REQ asks for a new session. */
static void new_host_nonce(void)
{
    host_nonce[15]++;
}

static void call(bridge_t *b, uint32_t id, uint16_t method, const void *args, size_t n)
{
    uint8_t p[1100];
    bridge_put_u16(p, method);
    if (n > 0) {
        memcpy(p + 2, args, n);
    }
    host_send(b, BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 0, id, p, 2 + n);
}

/* The only RESPONSE in the output, or NULL. */
static const rxframe_t *response(void)
{
    size_t i;
    const rxframe_t *r = NULL;
    take();
    for (i = 0; i < n_rx; i++) {
        if (rx[i].h.channel == BRIDGE_CH_RPC && rx[i].h.type == BRIDGE_T_RESPONSE) {
            if (r != NULL) {
                return NULL;
            }
            r = &rx[i];
        }
    }
    return r;
}

static int status_of(const rxframe_t *r)
{
    return r != NULL && r->n >= 2 ? bridge_get_u16(r->p) : -1;
}

static uint32_t count_calls;
static int reboot_reason = -1;

static bridge_status_t m_count(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                               size_t cap, size_t *out_len)
{
    (void)b;
    (void)args;
    (void)n;
    if (cap < 4) {
        return BRIDGE_TOO_LARGE;
    }
    count_calls++;
    bridge_put_u32(out, count_calls);
    *out_len = 4;
    return BRIDGE_OK;
}

static bridge_status_t m_liar(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                              size_t cap, size_t *out_len)
{
    (void)b;
    (void)args;
    (void)n;
    (void)out;
    *out_len = cap + 1;
    return BRIDGE_OK;
}

static bridge_status_t m_reboot(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                size_t cap, size_t *out_len)
{
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n != 1) {
        return BRIDGE_BAD_ARGS;
    }
    reboot_reason = args[0];
    bridge_request_hello(b, args[0]);
    return BRIDGE_OK;
}

static void sample_imu(bridge_t *b, uint16_t id, uint64_t t_us, uint8_t *out)
{
    (void)b;
    memset(out, 0, 12);
    bridge_put_u16(out, id);
    bridge_put_u32(out + 4, (uint32_t)t_us);
}

static uint8_t slot[8192];
static uint32_t slot_size;
static int slot_end_status = -1;
static int slot_begins;

static bridge_status_t slot_begin(void *ctx, uint32_t total, const uint8_t sha[32])
{
    (void)ctx;
    (void)sha;
    slot_begins++;
    slot_size = total;
    slot_end_status = -1;
    memset(slot, 0, sizeof(slot));
    return BRIDGE_OK;
}

static bridge_status_t slot_write(void *ctx, uint32_t off, const uint8_t *d, size_t n)
{
    (void)ctx;
    if (off + n > sizeof(slot)) {
        return BRIDGE_INTERNAL;
    }
    memcpy(slot + off, d, n);
    return BRIDGE_OK;
}

static void slot_end(void *ctx, bridge_status_t st, uint32_t total, const uint8_t sha[32])
{
    (void)ctx;
    (void)total;
    (void)sha;
    slot_end_status = (int)st;
}

static const uint8_t uid[8] = {0xe0, 0xd6, 0xe4, 0xc1, 0, 0, 0, 9};
static const bridge_method_t methods[] = {
    {0x100, "t.count", m_count}, {0x101, "t.liar", m_liar}, {0x102, "t.reboot", m_reboot},
    {0x103, "t.null", NULL}};
static const bridge_stream_def_t streams[] = {{1, "imu", 12, 2000, sample_imu}};
/* fw1 hashes what it stored itself (bridge_bulk_target_t.digest), as a board with a hash
 * engine or one that reads its flash back does. */
static int digest_calls;
static bridge_status_t digest_answer = BRIDGE_OK;

static bridge_status_t slot_digest(void *ctx, uint32_t total, uint8_t out[32])
{
    (void)ctx;
    digest_calls++;
    bridge_sha256(slot, total, out);
    return digest_answer;
}

static const bridge_bulk_target_t targets[] = {
    {"fw0", sizeof(slot), slot_begin, slot_write, slot_end, NULL, NULL},
    {"fw1", sizeof(slot), slot_begin, slot_write, slot_end, NULL, slot_digest}};
static const uint8_t auth_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static bridge_t dev;

static void make_config(bridge_config_t *cfg, int with_auth)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->uid = uid;
    cfg->uid_len = sizeof(uid);
    cfg->fw_version = "test 1.0";
    cfg->boot_reason = BRIDGE_BOOT_WATCHDOG;
    cfg->frame_limit = 1024;
    cfg->methods = methods;
    cfg->n_methods = sizeof(methods) / sizeof(methods[0]);
    cfg->streams = streams;
    cfg->n_streams = 1;
    cfg->bulk_targets = targets;
    cfg->n_bulk_targets = 2;
    if (with_auth) {
        cfg->auth_key = auth_key;
        cfg->auth_key_len = sizeof(auth_key);
    }
}

static void reset_port(void)
{
    memset(&tp, 0, sizeof(tp));
    tp.space = (size_t)-1;
    tp.now = 1000;
}

static void test_init_validation(void)
{
    bridge_config_t cfg;
    bridge_port_t port = test_port;
    make_config(&cfg, 0);
    cfg.frame_limit = 100;
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) != 0, "frame limit below minimum rejected");
    make_config(&cfg, 0);
    cfg.uid_len = 17;
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) != 0, "uid too long rejected");
    make_config(&cfg, 0);
    cfg.n_streams = BRIDGE_MAX_STREAMS + 1;
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) != 0, "too many streams rejected");
    make_config(&cfg, 1);
    port.random = NULL;
    CHECK(bridge_init(&dev, &cfg, &port, NULL) != 0, "auth without entropy rejected");
    port = test_port;
    port.write = NULL;
    CHECK(bridge_init(&dev, &cfg, &port, NULL) != 0, "missing write rejected");
}

static void test_session(void)
{
    bridge_config_t cfg;
    const rxframe_t *f;
    const uint8_t *p;
    size_t off;
    int found_count = 0;
    size_t i, n_methods;

    reset_port();
    make_config(&cfg, 0);
    cfg.first_epoch = 41;
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 3, 512);
    CHECK(take() == 1 && rx[0].h.channel == 0 && rx[0].h.type == BRIDGE_T_HELLO, "HELLO sent");
    f = &rx[0];
    p = f->p;
    CHECK(f->h.ack == (uint16_t)(host_seq - 1) && (f->h.flags & BRIDGE_FLAG_AUTH) == 0,
          "HELLO acks the request and is not authenticated");
    CHECK(bridge_get_u16(p) == 1 && bridge_get_u32(p + 2) == 42 && p[6] == BRIDGE_BOOT_WATCHDOG,
          "HELLO version, epoch first_epoch+1, boot reason");
    CHECK(p[7] == 8 && memcmp(p + 8, uid, 8) == 0, "HELLO uid");
    off = 16;
    CHECK(p[off] == 8 && memcmp(p + off + 1, "test 1.0", 8) == 0, "HELLO fw version");
    off += 1 + 8 + 32;
    CHECK(bridge_get_u16(p + off) == 1024 && bridge_get_u16(p + off + 2) == BRIDGE_RX_WINDOW,
          "HELLO frame limit and rx window");
    off += 4 + 16;
    CHECK(p[off] == 0, "HELLO dev_flags: no auth");
    off++;
    n_methods = p[off++];
    CHECK(n_methods == 4 + 4, "HELLO lists built-in and board methods (%u)", (unsigned)n_methods);
    for (i = 0; i < n_methods && off + 3 <= f->n; i++) {
        uint16_t id = bridge_get_u16(p + off);
        uint8_t nl = p[off + 2];
        if (id == 0x100 && nl == 7 && memcmp(p + off + 3, "t.count", 7) == 0) {
            found_count = 1;
        }
        off += 3u + nl;
    }
    CHECK(found_count, "HELLO lists t.count");
    CHECK(off + 1 + 2 + 1 + 3 + 2 == f->n && p[off] == 1 && bridge_get_u16(p + off + 1) == 1 &&
              p[off + 3] == 3 && memcmp(p + off + 4, "imu", 3) == 0 &&
              bridge_get_u16(p + off + 7) == 12,
          "HELLO stream list ends the payload");

    hello(&dev, 1, 1, 2048);
    CHECK(take() == 1 && bridge_get_u32(rx[0].p + 2) == 43, "second HELLO_REQ: new epoch");
    CHECK(bridge_epoch(&dev) == 43, "bridge_epoch");

    hello(&dev, 2, 5, 1024);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_ERROR &&
              bridge_get_u16(rx[0].p) == BRIDGE_UNSUPPORTED,
          "version range without 1: ERROR UNSUPPORTED");
    CHECK(bridge_epoch(&dev) == 43, "a refused HELLO_REQ does not start a session");
    hello(&dev, 1, 1, 32);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_ERROR, "tiny host frame limit: ERROR");
    host_send(&dev, BRIDGE_CH_CONTROL, BRIDGE_T_HELLO_REQ, 0, 0, (const uint8_t *)"short", 5);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_ERROR &&
              bridge_get_u16(rx[0].p) == BRIDGE_BAD_ARGS,
          "short HELLO_REQ: ERROR BAD_ARGS");
    host_send(&dev, 7, 1, 0, 0, NULL, 0);
    host_send(&dev, BRIDGE_CH_RPC, 9, 0, 0, NULL, 0);
    CHECK(take() == 0 && bridge_stats(&dev)->unsupported == 2,
          "unknown channel and type are counted, not answered");
}

static void test_small_frame_limit(void)
{
    bridge_config_t cfg;
    const uint8_t *p;
    size_t off, i, n_methods;

    reset_port();
    make_config(&cfg, 0);
    cfg.frame_limit = BRIDGE_FRAME_MIN_LIMIT;
    cfg.fw_version = "a firmware version of 32 bytes!!";
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init at the minimum frame limit");
    hello(&dev, 1, 1, 4096);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_HELLO &&
              rx[0].body_len + BRIDGE_CRC_SIZE <= BRIDGE_FRAME_MIN_LIMIT,
          "HELLO fits the minimum frame limit");
    p = rx[0].p;
    off = 16 + 1 + 32 + 32 + 4 + 16 + 1;
    n_methods = p[off++];
    for (i = 0; i < n_methods; i++) {
        off += 3u + p[off + 2];
    }
    CHECK(n_methods >= 2 && n_methods < 8 && off < rx[0].n && p[off] == 1 &&
              off + 1 + 5 + 3 == rx[0].n,
          "methods that do not fit are left out, streams are listed (%u methods)",
          (unsigned)n_methods);
    call(&dev, 1, 0x100, NULL, 0);
    CHECK(status_of(response()) == 0, "an unlisted method is still callable");
}

static void test_rpc(void)
{
    bridge_config_t cfg;
    const rxframe_t *r;
    uint8_t big[1100];
    uint16_t first_seq;
    uint8_t first_body[64];
    size_t first_len;
    uint32_t id;

    reset_port();
    make_config(&cfg, 0);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 1, 1024);
    take();

    call(&dev, 1, BRIDGE_M_PING, "hello", 5);
    r = response();
    CHECK(r != NULL && r->h.id == 1 && r->h.ack == (uint16_t)(host_seq - 1) && status_of(r) == 0 &&
              r->n == 7 && memcmp(r->p + 2, "hello", 5) == 0,
          "sys.ping echoes");
    call(&dev, 2, BRIDGE_M_INFO, NULL, 0);
    r = response();
    CHECK(status_of(r) == 0 && r->n > 20 && memcmp(r->p + 2, "protocol=1\nuid=e0d6e4c100000009\n",
                                                   32) == 0,
          "sys.info key=value lines");
    call(&dev, 3, 0x7777, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_UNKNOWN_METHOD, "unknown method");
    call(&dev, 4, 0x101, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_INTERNAL, "handler overrunning its buffer: INTERNAL");
    call(&dev, 5, 0x103, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_UNSUPPORTED, "method without handler: UNSUPPORTED");
    host_send(&dev, BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 0, 6, (const uint8_t *)"x", 1);
    CHECK(status_of(response()) == BRIDGE_BAD_ARGS, "request without method id: BAD_ARGS");
    call(&dev, 0, BRIDGE_M_PING, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_BAD_ARGS, "call id 0: BAD_ARGS");
    memset(big, 'x', sizeof(big));
    call(&dev, 7, BRIDGE_M_PING, big, 1024 - 16 - 2);
    r = response();
    CHECK(status_of(r) == 0 && r->n == 1024 - 16, "ping of the largest payload fits exactly");

    /* De-duplication: the handler runs once, the answer is repeated. */
    count_calls = 0;
    call(&dev, 8, 0x100, NULL, 0);
    r = response();
    CHECK(status_of(r) == 0 && bridge_get_u32(r->p + 2) == 1, "t.count runs");
    first_seq = r->h.seq;
    first_len = r->n;
    memcpy(first_body, r->p, r->n);
    host_seq--; /* a retransmission keeps its seq */
    call(&dev, 8, 0x100, NULL, 0);
    r = response();
    CHECK(r != NULL && count_calls == 1 && (r->h.flags & BRIDGE_FLAG_RESEND) &&
              r->h.seq == first_seq && r->n == first_len && memcmp(r->p, first_body, r->n) == 0,
          "repeated call id answered from the cache");
    CHECK(bridge_stats(&dev)->rpc_duplicates == 1, "duplicate counted");

    /* Fill the cache with 9..16 (8 entries) and then ask for older ids. */
    for (id = 9; id <= 16; id++) {
        call(&dev, id, 0x100, NULL, 0);
        CHECK(status_of(response()) == 0, "call %u", (unsigned)id);
    }
    call(&dev, 8, 0x100, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_STALE && count_calls == 9, "evicted id is STALE");
    call(&dev, 3, 0x100, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_STALE, "older id is STALE");
    call(&dev, 9, 0x100, NULL, 0);
    r = response();
    CHECK(status_of(r) == 0 && bridge_get_u32(r->p + 2) == 2 && count_calls == 9,
          "oldest cached id still answered from the cache");
    call(&dev, 17, 0x100, NULL, 0);
    CHECK(status_of(response()) == 0 && count_calls == 10, "new id runs");
    call(&dev, 9, 0x100, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_STALE && count_calls == 10,
          "id evicted by a newer call is STALE");

    /* A retried HELLO_REQ (same host nonce) gets the same session's HELLO and keeps its state. */
    id = bridge_epoch(&dev);
    hello(&dev, 1, 1, 1024);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_HELLO && bridge_get_u32(rx[0].p + 2) == id &&
              bridge_epoch(&dev) == id,
          "retried HELLO_REQ: the same epoch again");
    call(&dev, 9, 0x100, NULL, 0);
    CHECK(status_of(response()) == BRIDGE_STALE && count_calls == 10,
          "retried HELLO_REQ keeps the call cache");

    /* A new session forgets the call ids of the previous one. */
    new_host_nonce();
    hello(&dev, 1, 1, 1024);
    take();
    call(&dev, 9, 0x100, NULL, 0);
    CHECK(status_of(response()) == 0 && count_calls == 11, "new epoch: call id 9 runs again");
    call(&dev, 6, 0x100, NULL, 0);
    CHECK(status_of(response()) == 0 && count_calls == 12,
          "an older id while the cache has room runs (sent late, never evicted)");
    call(&dev, 6, 0x100, NULL, 0);
    CHECK(status_of(response()) == 0 && count_calls == 12, "and is de-duplicated like any other");

    /* A handler asking for a reboot: RESPONSE first, then an unsolicited HELLO. */
    id = bridge_epoch(&dev);
    call(&dev, 30, 0x102, "\x03", 1);
    take();
    CHECK(n_rx == 2 && rx[0].h.channel == BRIDGE_CH_RPC && bridge_get_u16(rx[0].p) == 0 &&
              rx[1].h.type == BRIDGE_T_HELLO && rx[1].h.ack == 0 &&
              bridge_get_u32(rx[1].p + 2) == id + 1 && rx[1].p[6] == 3,
          "reboot: RESPONSE then HELLO with a new epoch and boot reason 3");
    CHECK(reboot_reason == 3, "reboot handler ran");

    /* A smaller host limit caps results. */
    hello(&dev, 1, 1, 200);
    take();
    call(&dev, 40, BRIDGE_M_PING, big, 200);
    CHECK(status_of(response()) == BRIDGE_TOO_LARGE, "result larger than the host limit");
}

static void test_streams(void)
{
    bridge_config_t cfg;
    uint8_t args[6];
    const bridge_stream_state_t *st;
    size_t i, samples = 0;
    uint32_t expect_seq = 0;
    int ordered = 1;

    reset_port();
    make_config(&cfg, 0);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 1, 1024);
    take();
    CHECK(bridge_next_deadline_us(&dev) == UINT64_MAX, "no stream, no deadline");

    bridge_put_u16(args, 1);
    bridge_put_u32(args + 2, 0);
    call(&dev, 1, BRIDGE_M_STREAM_START, args, 6);
    CHECK(status_of(response()) == BRIDGE_BAD_ARGS, "rate 0 refused");
    bridge_put_u32(args + 2, 2001);
    call(&dev, 2, BRIDGE_M_STREAM_START, args, 6);
    CHECK(status_of(response()) == BRIDGE_BAD_ARGS, "rate above max refused");
    bridge_put_u16(args, 9);
    bridge_put_u32(args + 2, 100);
    call(&dev, 3, BRIDGE_M_STREAM_START, args, 6);
    CHECK(status_of(response()) == BRIDGE_NOT_FOUND, "unknown stream");
    call(&dev, 4, BRIDGE_M_STREAM_START, args, 3);
    CHECK(status_of(response()) == BRIDGE_BAD_ARGS, "short stream.start args");

    bridge_put_u16(args, 1);
    bridge_put_u32(args + 2, 1000);
    call(&dev, 5, BRIDGE_M_STREAM_START, args, 6);
    CHECK(status_of(response()) == 0, "stream.start 1 kHz");
    CHECK(bridge_next_deadline_us(&dev) == 1000, "first sample due at start");
    /* 50 ms in 1 ms steps: 51 samples (t = 0, 1, ..., 50 ms). */
    for (i = 0; i <= 50; i++) {
        tp.now = 1000 + i * 1000;
        bridge_poll(&dev);
    }
    take();
    for (i = 0; i < n_rx; i++) {
        uint64_t ts;
        size_t k, n;
        if (rx[i].h.channel != BRIDGE_CH_STREAM) {
            continue;
        }
        n = (rx[i].n - 16) / 12;
        ts = bridge_get_u64(rx[i].p + 4);
        if (bridge_get_u32(rx[i].p) != expect_seq++ || ts != 1000 + samples * 1000 ||
            bridge_get_u32(rx[i].p + 12) != 0 || rx[i].h.id != 1) {
            ordered = 0;
        }
        for (k = 0; k < n; k++) {
            if (bridge_get_u32(rx[i].p + 16 + k * 12 + 4) != (uint32_t)(1000 + (samples + k) * 1000)) {
                ordered = 0;
            }
        }
        samples += n;
    }
    CHECK(samples == 51 && ordered, "1 kHz for 50 ms: 51 samples in order (%u)",
          (unsigned)samples);
    CHECK(bridge_next_deadline_us(&dev) == 52000, "next deadline one period later");

    /* The link is full: samples are counted as overruns, nothing blocks. */
    tp.space = 10;
    tp.now = 61000;
    bridge_poll(&dev);
    st = bridge_stream_state(&dev, 1);
    CHECK(st != NULL && st->overruns == 10 && take() == 0, "full link: 10 overruns (%u)",
          st != NULL ? (unsigned)st->overruns : 0u);
    tp.space = (size_t)-1;
    tp.now = 62000;
    bridge_poll(&dev);
    CHECK(take() == 1 && bridge_get_u32(rx[0].p + 12) == 10 &&
              bridge_get_u32(rx[0].p) == expect_seq,
          "next DATA reports the overruns, sample_seq without a gap");

    /* A stalled loop: far more samples due than a burst; the oldest are dropped. */
    tp.now = 2062000;
    bridge_poll(&dev);
    take();
    st = bridge_stream_state(&dev, 1);
    CHECK(st->overruns > 1000 && n_rx <= 4, "stall of 2 s: overruns %u, %u frames",
          (unsigned)st->overruns, (unsigned)n_rx);

    /* 2 kHz: samples batched two per frame at most 1000 frames/s. */
    bridge_put_u32(args + 2, 2000);
    call(&dev, 6, BRIDGE_M_STREAM_START, args, 6);
    CHECK(status_of(response()) == 0, "stream.start 2 kHz");
    samples = 0;
    for (i = 1; i <= 2000; i++) {
        tp.now += 500;
        bridge_poll(&dev);
        if (tp.len > 2000) {
            take();
        }
    }
    /* The deadline-driven loop of a port: */
    take();
    call(&dev, 7, BRIDGE_M_STREAM_STOP, args, 2);
    CHECK(status_of(response()) == 0, "stream.stop");
    tp.now += 100000;
    bridge_poll(&dev);
    CHECK(take() == 0 && bridge_next_deadline_us(&dev) == UINT64_MAX, "stopped stream is quiet");
    call(&dev, 8, BRIDGE_M_STREAM_STOP, "\x09\x00", 2);
    CHECK(status_of(response()) == BRIDGE_NOT_FOUND, "stop of an unknown stream");
}

static void test_stream_rate_2k(void)
{
    bridge_config_t cfg;
    uint8_t args[6];
    size_t samples = 0, frames = 0, i;
    uint64_t t;

    reset_port();
    make_config(&cfg, 0);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 1, 1024);
    take();
    bridge_put_u16(args, 1);
    bridge_put_u32(args + 2, 2000);
    call(&dev, 1, BRIDGE_M_STREAM_START, args, 6);
    CHECK(status_of(response()) == 0, "stream.start 2 kHz");
    /* Sleep until each deadline, as the virtual device does, for one second. */
    for (t = tp.now; t < 1000 + 1000000;) {
        t = bridge_next_deadline_us(&dev);
        tp.now = t;
        bridge_poll(&dev);
        if (tp.len > 2000) {
            take();
            for (i = 0; i < n_rx; i++) {
                samples += (rx[i].n - 16) / 12;
                frames++;
            }
        }
    }
    take();
    for (i = 0; i < n_rx; i++) {
        samples += (rx[i].n - 16) / 12;
        frames++;
    }
    CHECK(samples >= 2000 && samples <= 2002 && frames <= 1001,
          "2 kHz for 1 s: %u samples in %u frames", (unsigned)samples, (unsigned)frames);
}

static void test_log(void)
{
    bridge_config_t cfg;
    char text[2000];
    reset_port();
    make_config(&cfg, 0);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    tp.now = 777;
    CHECK(bridge_log(&dev, 30, "motor.set left=5", 16) == 0, "log sent");
    CHECK(take() == 1 && rx[0].h.channel == BRIDGE_CH_LOG && rx[0].h.type == BRIDGE_T_LOG &&
              rx[0].p[0] == 30 && bridge_get_u64(rx[0].p + 1) == 777 && rx[0].n == 9 + 16 &&
              memcmp(rx[0].p + 9, "motor.set left=5", 16) == 0,
          "LOG frame: level, timestamp, text");
    memset(text, 'a', sizeof(text));
    CHECK(bridge_log(&dev, 10, text, sizeof(text)) == 0 && take() == 1 &&
              rx[0].n == 1024 - 16 && rx[0].p[9] == 'a',
          "long log text is cut to the frame limit");
    tp.space = 5;
    CHECK(bridge_log(&dev, 10, "x", 1) != 0 && bridge_stats(&dev)->log_dropped == 1,
          "full link: log dropped and counted");
}

static void bulk_begin(uint32_t id, uint32_t total, const uint8_t sha[32], const char *name)
{
    uint8_t p[80];
    size_t nl = strlen(name);
    bridge_put_u32(p, total);
    memcpy(p + 4, sha, 32);
    p[36] = (uint8_t)nl;
    memcpy(p + 37, name, nl);
    host_send(&dev, BRIDGE_CH_BULK, BRIDGE_T_BEGIN, 0, id, p, 37 + nl);
}

static void bulk_data(uint32_t id, uint32_t off, const uint8_t *d, size_t n)
{
    uint8_t p[1100];
    bridge_put_u32(p, off);
    memcpy(p + 4, d, n);
    host_send(&dev, BRIDGE_CH_BULK, BRIDGE_T_BULK_DATA, 0, id, p, 4 + n);
}

/* The last bulk frame the device sent. */
static const rxframe_t *bulk_reply(void)
{
    size_t i;
    take();
    for (i = n_rx; i > 0; i--) {
        if (rx[i - 1].h.channel == BRIDGE_CH_BULK) {
            return &rx[i - 1];
        }
    }
    return NULL;
}

static void send_image(uint32_t id, const uint8_t *image, size_t len, size_t chunk)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        bulk_data(id, (uint32_t)off, image + off, n);
        off += n;
    }
}

static void test_bulk_target_digest(void)
{
    bridge_config_t cfg;
    static uint8_t image[4000];
    uint8_t sha[32], wrong[32];
    const rxframe_t *r;
    const size_t chunk = 1024 - 16 - 4;
    size_t i;

    for (i = 0; i < sizeof(image); i++) {
        image[i] = (uint8_t)(i * 13 + 5);
    }
    bridge_sha256(image, sizeof(image), sha);
    memcpy(wrong, sha, 32);
    wrong[31] ^= 0x80;
    reset_port();
    make_config(&cfg, 0);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 1, 1024);
    take();

    digest_calls = 0;
    digest_answer = BRIDGE_OK;
    bulk_begin(21, sizeof(image), sha, "fw1");
    (void)bulk_reply();
    send_image(21, image, sizeof(image), chunk);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_OK &&
              digest_calls == 1 && slot_end_status == BRIDGE_OK,
          "a target's own digest: END OK, asked once");

    bulk_begin(22, sizeof(image), wrong, "fw1");
    (void)bulk_reply();
    send_image(22, image, sizeof(image), chunk);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_INTEGRITY &&
              slot_end_status == BRIDGE_INTEGRITY,
          "a target's digest that differs: END INTEGRITY");

    digest_answer = BRIDGE_INTERNAL;
    bulk_begin(23, sizeof(image), sha, "fw1");
    (void)bulk_reply();
    send_image(23, image, sizeof(image), chunk);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_INTERNAL,
          "a target's digest that fails: END with its status");
    digest_answer = BRIDGE_OK;
}

static void test_bulk_credit_setting(void)
{
    bridge_config_t cfg;
    static uint8_t image[5000];
    uint8_t sha[32];
    const rxframe_t *r;
    const size_t chunk = 1024 - 16 - 4;

    bridge_sha256(image, sizeof(image), sha);
    reset_port();
    make_config(&cfg, 0);
    cfg.bulk_credit_frames = 3;
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 1, 1024);
    take();
    bulk_begin(7, sizeof(image), sha, "fw0");
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && bridge_get_u32(r->p + 4) == 3 * chunk,
          "bulk_credit_frames 3: BEGIN answered with WINDOW(0, 3 frames)");
    bulk_data(7, 0, image, chunk);
    r = bulk_reply();
    CHECK(r == NULL, "bulk_credit_frames 3: no WINDOW after the first frame");
    bulk_data(7, (uint32_t)chunk, image + chunk, chunk);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && bridge_get_u32(r->p) == 2 * chunk,
          "bulk_credit_frames 3: WINDOW once two of the three frames are used");
}

static void test_bulk(void)
{
    bridge_config_t cfg;
    static uint8_t image[5000];
    uint8_t sha[32], wrong[32];
    const rxframe_t *r;
    uint32_t off = 0;
    size_t i;
    const size_t chunk = 1024 - 16 - 4;

    for (i = 0; i < sizeof(image); i++) {
        image[i] = (uint8_t)(i * 7 + (i >> 8));
    }
    bridge_sha256(image, sizeof(image), sha);
    memcpy(wrong, sha, 32);
    wrong[0] ^= 1;

    reset_port();
    make_config(&cfg, 0);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init");
    hello(&dev, 1, 1, 1024);
    take();

    bulk_begin(5, 100, sha, "nope");
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_NOT_FOUND,
          "unknown target: END NOT_FOUND");
    bulk_begin(5, sizeof(slot) + 1, sha, "fw0");
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_TOO_LARGE,
          "too large: END TOO_LARGE");
    host_send(&dev, BRIDGE_CH_BULK, BRIDGE_T_BEGIN, 0, 5, sha, 20);
    r = bulk_reply();
    CHECK(r != NULL && bridge_get_u16(r->p) == BRIDGE_BAD_ARGS, "short BEGIN: END BAD_ARGS");

    bulk_begin(6, sizeof(image), sha, "fw0");
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && r->h.id == 6 && bridge_get_u32(r->p) == 0 &&
              bridge_get_u32(r->p + 4) == 4 * chunk,
          "BEGIN answered with WINDOW(0, 4 frames)");
    bulk_data(6, 0, image, chunk);
    r = bulk_reply();
    CHECK(r == NULL, "no WINDOW while more than half the credit is left");
    bulk_data(6, (uint32_t)chunk, image + chunk, chunk);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && bridge_get_u32(r->p) == 2 * chunk &&
              bridge_get_u32(r->p + 4) == sizeof(image) - 2 * chunk,
          "WINDOW once half the credit is used: advances, credit up to the end");
    off = (uint32_t)(2 * chunk);
    bulk_data(6, 17, image + 17, 100);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && bridge_get_u32(r->p) == off,
          "out-of-order DATA dropped, WINDOW repeated");
    bulk_data(99, off, image + off, 100);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_NOT_FOUND,
          "DATA of an unknown transfer: END NOT_FOUND");
    bulk_data(6, off, image + off, chunk);
    off += (uint32_t)chunk;
    take();

    /* Unplug: a new session, and the same transfer resumes where it stopped. */
    bridge_link_reset(&dev);
    hello(&dev, 1, 1, 1024);
    take();
    bulk_begin(7, sizeof(image), sha, "fw0");
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && r->h.id == 7 &&
              bridge_get_u32(r->p) == off && slot_begins == 1,
          "BEGIN of the same name and sha256 resumes at %u", (unsigned)off);
    while (off < sizeof(image)) {
        size_t n = sizeof(image) - off < chunk ? sizeof(image) - off : chunk;
        bulk_data(7, off, image + off, n);
        off += (uint32_t)n;
    }
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_OK &&
              bridge_get_u32(r->p + 2) == sizeof(image),
          "END OK after the last byte");
    CHECK(slot_end_status == BRIDGE_OK && memcmp(slot, image, sizeof(image)) == 0,
          "target received the image");
    bulk_data(7, 0, image, 10);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_OK,
          "DATA after END repeats END");

    /* Corruption on the way: END INTEGRITY, and the next BEGIN starts over. */
    bulk_begin(8, 3000, wrong, "fw0");
    (void)bulk_reply();
    bulk_data(8, 0, image, 1000);
    bulk_data(8, 1000, image + 1000, 1000);
    bulk_data(8, 2000, image + 2000, 1000);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_INTEGRITY &&
              slot_end_status == BRIDGE_INTEGRITY,
          "wrong sha256: END INTEGRITY");
    bulk_begin(9, 3000, wrong, "fw0");
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_WINDOW && bridge_get_u32(r->p) == 0,
          "after INTEGRITY a BEGIN starts from 0");
    bulk_begin(10, 100, sha, "fw0");
    (void)bulk_reply();
    bulk_data(10, 0, image, 200);
    r = bulk_reply();
    CHECK(r != NULL && r->h.type == BRIDGE_T_END && bridge_get_u16(r->p) == BRIDGE_TOO_LARGE,
          "DATA beyond total_size: END TOO_LARGE");
}

/* Host side of section 8 for the tests. */
static uint32_t host_counter;
static uint8_t dev_nonce[16];

static void auth_send(uint8_t ch, uint8_t type, uint32_t id, const uint8_t *payload, size_t n,
                      uint32_t counter, int forge)
{
    static uint8_t body[BRIDGE_FRAME_MAX], wire[BRIDGE_WIRE_MAX(BRIDGE_FRAME_MAX)];
    bridge_header_t h;
    bridge_hmac_t m;
    uint8_t tag[32];
    size_t len, w;
    memset(&h, 0, sizeof(h));
    h.version = 1;
    h.flags = BRIDGE_FLAG_AUTH;
    h.channel = ch;
    h.type = type;
    h.seq = host_seq++;
    h.id = id;
    bridge_header_encode(&h, body);
    memcpy(body + 12, payload, n);
    bridge_put_u32(body + 12 + n, counter);
    len = 16 + n;
    bridge_hmac_init(&m, auth_key, sizeof(auth_key));
    bridge_hmac_update(&m, dev_nonce, 16);
    bridge_hmac_update(&m, host_nonce, 16);
    bridge_hmac_update(&m, body, len);
    bridge_hmac_final(&m, tag);
    if (forge) {
        tag[0] ^= 0x80;
    }
    memcpy(body + len, tag, 16);
    len += 16;
    w = bridge_frame_seal(body, len, wire, sizeof(wire));
    bridge_feed(&dev, wire, w);
}

static int device_tag_ok(const rxframe_t *f)
{
    bridge_hmac_t m;
    uint8_t tag[32];
    if (!(f->h.flags & BRIDGE_FLAG_AUTH) || f->body_len < 12 + 20) {
        return 0;
    }
    bridge_hmac_init(&m, auth_key, sizeof(auth_key));
    bridge_hmac_update(&m, dev_nonce, 16);
    bridge_hmac_update(&m, host_nonce, 16);
    bridge_hmac_update(&m, f->body, f->body_len - 16);
    bridge_hmac_final(&m, tag);
    return memcmp(tag, f->body + f->body_len - 16, 16) == 0;
}

static void test_auth(void)
{
    bridge_config_t cfg;
    const rxframe_t *r;
    uint8_t req[8];
    size_t off;

    reset_port();
    make_config(&cfg, 1);
    CHECK(bridge_init(&dev, &cfg, &test_port, NULL) == 0, "init with key");
    hello(&dev, 1, 1, 1024);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_HELLO && !(rx[0].h.flags & BRIDGE_FLAG_AUTH),
          "HELLO is not authenticated");
    off = 16 + 1 + 8 + 32 + 4;
    memcpy(dev_nonce, rx[0].p + off, 16);
    CHECK(rx[0].p[off + 16] == 1, "HELLO dev_flags: authentication required");
    hello(&dev, 2, 3, 1024);
    CHECK(take() == 1 && rx[0].h.type == BRIDGE_T_ERROR && !(rx[0].h.flags & BRIDGE_FLAG_AUTH) &&
              rx[0].n > 2 && memcmp(rx[0].p + 2, "device speaks", 13) == 0,
          "ERROR answering a HELLO_REQ carries no trailer");

    count_calls = 0;
    call(&dev, 1, 0x100, NULL, 0);
    r = response();
    CHECK(status_of(r) == BRIDGE_UNAUTHENTICATED && !(r->h.flags & BRIDGE_FLAG_AUTH) &&
              count_calls == 0,
          "plain REQUEST: UNAUTHENTICATED, unauthenticated, not executed");

    bridge_put_u16(req, 0x100);
    host_counter = 1;
    auth_send(BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 2, req, 2, host_counter, 0);
    r = response();
    CHECK(status_of(r) == 0 && count_calls == 1 && r != NULL && r->n == 2 + 4 + 20 &&
              device_tag_ok(r) && bridge_get_u32(r->p + 6) == 1,
          "authenticated REQUEST runs; RESPONSE carries counter 1 and a valid tag");

    auth_send(BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 3, req, 2, host_counter, 0);
    r = response();
    CHECK(status_of(r) == BRIDGE_UNAUTHENTICATED && count_calls == 1, "replayed counter refused");
    auth_send(BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 3, req, 2, 1000, 1);
    r = response();
    CHECK(status_of(r) == BRIDGE_UNAUTHENTICATED && count_calls == 1, "forged tag refused");
    auth_send(BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 3, req, 2, 2, 0);
    r = response();
    CHECK(status_of(r) == 0 && count_calls == 2 && device_tag_ok(r) &&
              bridge_get_u32(r->p + 6) == 2,
          "a forged frame with a high counter changed no state: counter 2 accepted");
    CHECK(bridge_stats(&dev)->auth_failures == 2, "two auth failures counted");

    /* A new session resets the counters and changes the nonce. */
    new_host_nonce();
    hello(&dev, 1, 1, 1024);
    take();
    CHECK(memcmp(dev_nonce, rx[0].p + off, 16) != 0, "new session, new device nonce");
    memcpy(dev_nonce, rx[0].p + off, 16);
    auth_send(BRIDGE_CH_RPC, BRIDGE_T_REQUEST, 1, req, 2, 1, 0);
    CHECK(status_of(response()) == 0 && count_calls == 3, "counter 1 valid again in new session");

    /* Unauthenticated bulk is ignored. */
    bulk_begin(5, 10, auth_key, "fw0");
    CHECK(take() == 0, "plain bulk frame ignored");
}

static void test_codec_edges(void)
{
    uint8_t in[600], out[700];
    size_t n = 0;
    bridge_header_t h;
    memset(in, 0x11, sizeof(in));
    CHECK(bridge_cobs_encode(in, 0, out, 0) == 0, "cobs encode into nothing");
    CHECK(bridge_cobs_decode((const uint8_t *)"\x05\x11\x22\x33\x44", 5, out, 3, &n) != 0,
          "cobs decode into a short buffer fails");
    memset(&h, 0, sizeof(h));
    CHECK(bridge_frame_encode(&h, in, 600, NULL, 0, out, 100, out + 100, 600) == 0,
          "frame larger than scratch refused");
    CHECK(bridge_frame_encode(&h, in, 10, NULL, 0, in, sizeof(in), out, 20) == 0,
          "frame larger than output refused");
}

/* COBS against its definition over random inputs with zero densities from none to mostly
 * zeros: the encoding has no zero, is at most len + len / 254 + 1 bytes, decodes back, is one
 * byte short when the output is one byte too small, and a full 254-byte block at the end
 * has no trailing code byte. */
static void test_cobs_random(void)
{
    static uint8_t in[1200], enc[1300], dec[1200];
    static const unsigned zero_every[] = {0u, 2u, 17u, 253u, 254u, 255u, 300u};
    uint32_t s = 12345u;
    unsigned bad = 0, trial;
    for (trial = 0; trial < 3000u; trial++) {
        size_t len, i, n, m = 0;
        unsigned every = zero_every[trial % 7u];
        s = s * 1103515245u + 12345u;
        len = (s >> 8) % sizeof(in);
        for (i = 0; i < len; i++) {
            s = s * 1103515245u + 12345u;
            in[i] = (uint8_t)((s >> 16) | 1u);
            if (every != 0u && (s >> 4) % every == 0u) {
                in[i] = 0;
            }
        }
        n = bridge_cobs_encode(in, len, enc, sizeof(enc));
        if (n == 0 || n > len + len / 254u + 1u || memchr(enc, 0, n) != NULL ||
            bridge_cobs_decode(enc, n, dec, sizeof(dec), &m) != 0 || m != len ||
            memcmp(in, dec, len) != 0 || bridge_cobs_encode(in, len, enc, n - 1u) != 0) {
            bad++;
        }
    }
    CHECK(bad == 0u, "COBS round trip over 3000 random inputs (%u bad)", bad);
    memset(in, 0x42, 254);
    CHECK(bridge_cobs_encode(in, 254, enc, sizeof(enc)) == 255u && enc[0] == 0xFF,
          "a full block at the end: no trailing code byte");
    in[254] = 0;
    CHECK(bridge_cobs_encode(in, 255, enc, sizeof(enc)) == 257u && enc[255] == 1u && enc[256] == 1u,
          "a zero after a full block: an empty block, then the last one");
}

static size_t blocks_seen;

static void counting_blocks(uint32_t state[8], const uint8_t *blocks, size_t count)
{
    blocks_seen += count;
    bridge_sha256_blocks_portable(state, blocks, count);
}

static void test_sha256_blocks_hook(void)
{
    uint8_t data[200], want[32], got[32];
    size_t i;
    for (i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7u);
    }
    bridge_sha256(data, sizeof(data), want);
    bridge_sha256_use_blocks(counting_blocks);
    blocks_seen = 0;
    bridge_sha256(data, sizeof(data), got);
    CHECK(blocks_seen == 4u, "a port's block function hashes every block (%u of 4)",
          (unsigned)blocks_seen);
    CHECK(memcmp(want, got, 32) == 0, "same digest through the port's block function");
    bridge_sha256_use_blocks(NULL);
    blocks_seen = 0;
    bridge_sha256(data, sizeof(data), got);
    CHECK(blocks_seen == 0u && memcmp(want, got, 32) == 0, "NULL restores the portable code");
}

int main(int argc, char **argv)
{
    int rows;
    const char *path = argc > 1 ? argv[1] : "../vectors/frames.tsv";
    rows = run_table(path);
    if (rows <= 0) {
        fprintf(stderr, "no vectors read from %s\n", path);
        return 2;
    }
    test_codec_edges();
    test_cobs_random();
    test_sha256_blocks_hook();
    test_init_validation();
    test_session();
    test_small_frame_limit();
    test_rpc();
    test_streams();
    test_stream_rate_2k();
    test_log();
    test_bulk();
    test_bulk_credit_setting();
    test_bulk_target_digest();
    test_auth();
    printf("%d vector rows, %d checks, %d failures (sizeof(bridge_t) = %u bytes)\n", rows, checks,
           failures, (unsigned)sizeof(bridge_t));
    return failures == 0 ? 0 : 1;
}
