/* libFuzzer harness: the frame decoder and the whole device behind it.
 *
 * Input byte 0 picks the frame limit and the chunking of the feed, byte 1
 * whether the device requires authentication; the rest is the byte stream.
 * Every good frame the decoder reports is checked against its invariants
 * (length bounds, CRC, a COBS round trip), then the same bytes go to a device
 * whose port accepts or refuses writes at random, so session, RPC, stream,
 * bulk and authentication paths all see garbage.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

static size_t current_limit;
static uint64_t clock_us;
static uint32_t rng = 1;

static void fail(void)
{
    abort();
}

static void on_frame(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    static uint8_t wire[BRIDGE_WIRE_MAX(BRIDGE_FRAME_MAX)];
    static uint8_t back[BRIDGE_FRAME_MAX + 8];
    size_t n, back_len = 0;
    (void)ctx;
    if (len + BRIDGE_CRC_SIZE < BRIDGE_MIN_BODY || len + BRIDGE_CRC_SIZE > current_limit ||
        h->version != BRIDGE_VERSION) {
        fail();
    }
    if (bridge_crc32(0, body, len) != bridge_get_u32(body + len)) {
        fail();
    }
    n = bridge_cobs_encode(body, len + BRIDGE_CRC_SIZE, wire, sizeof(wire));
    if (n == 0 || memchr(wire, 0, n) != NULL || n > BRIDGE_ENCODED_MAX(current_limit) ||
        bridge_cobs_decode(wire, n, back, sizeof(back), &back_len) != 0 ||
        back_len != len + BRIDGE_CRC_SIZE || memcmp(back, body, back_len) != 0) {
        fail();
    }
}

static void on_console(void *ctx, const uint8_t *line, size_t len)
{
    size_t i;
    (void)ctx;
    if (len == 0 || line[len - 1] != '\n') {
        fail();
    }
    for (i = 0; i < len; i++) {
        if (line[i] == 0) {
            fail();
        }
    }
}

static size_t port_write(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    rng = rng * 1103515245u + 12345u;
    if (n == 0 || d[n - 1] != 0 || (rng >> 16) % 8u == 0) {
        return 0;
    }
    return n;
}

static size_t port_space(void *ctx)
{
    (void)ctx;
    return (rng >> 20) % 4u == 0 ? 40u : 100000u;
}

static uint64_t port_now(void *ctx)
{
    (void)ctx;
    clock_us += 997;
    return clock_us;
}

static void port_random(void *ctx, uint8_t *out, size_t n)
{
    (void)ctx;
    memset(out, 0x5A, n);
}

static bridge_status_t m_echo(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                              size_t cap, size_t *out_len)
{
    if (n > cap) {
        return BRIDGE_TOO_LARGE;
    }
    memcpy(out, args, n);
    *out_len = n;
    if (n > 0 && args[0] == 'R') {
        bridge_request_hello(b, BRIDGE_BOOT_SOFTWARE);
    }
    if (n > 0 && args[0] == 'L') {
        (void)bridge_log(b, 20, (const char *)args, n);
    }
    return BRIDGE_OK;
}

static void sample(bridge_t *b, uint16_t id, uint64_t t, uint8_t *out)
{
    (void)b;
    (void)id;
    bridge_put_u64(out, t);
}

static uint8_t slot[4096];

static bridge_status_t slot_write(void *ctx, uint32_t off, const uint8_t *d, size_t n)
{
    (void)ctx;
    if (off > sizeof(slot) || n > sizeof(slot) - off) {
        fail();
    }
    memcpy(slot + off, d, n);
    return BRIDGE_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bridge_decoder_t dec;
    static bridge_t dev;
    static const uint8_t key[16] = {1, 2, 3};
    static const bridge_method_t methods[] = {{0x100, "echo", m_echo}};
    static const bridge_stream_def_t streams[] = {{1, "imu", 12, 2000, sample}};
    static const bridge_bulk_target_t targets[] = {
        {"fw0", sizeof(slot), NULL, slot_write, NULL, NULL, NULL}};
    bridge_config_t cfg;
    bridge_port_t port;
    size_t chunk, off;
    uint16_t limits[] = {16, 64, 160, 1024};

    if (size < 2) {
        return 0;
    }
    current_limit = limits[data[0] & 3u];
    chunk = (size_t)(data[0] >> 2) + 1u;

    bridge_decoder_init(&dec, current_limit, on_frame, on_console, NULL);
    for (off = 2; off < size; off += chunk) {
        bridge_decoder_feed(&dec, data + off, size - off < chunk ? size - off : chunk);
    }

    memset(&cfg, 0, sizeof(cfg));
    cfg.fw_version = "fuzz";
    cfg.frame_limit = current_limit < BRIDGE_FRAME_MIN_LIMIT ? (uint16_t)BRIDGE_FRAME_MIN_LIMIT
                                                             : (uint16_t)current_limit;
    cfg.methods = methods;
    cfg.n_methods = 1;
    cfg.streams = streams;
    cfg.n_streams = 1;
    cfg.bulk_targets = targets;
    cfg.n_bulk_targets = 1;
    if (data[1] & 1u) {
        cfg.auth_key = key;
        cfg.auth_key_len = sizeof(key);
    }
    port.write = port_write;
    port.write_space = port_space;
    port.now_us = port_now;
    port.random = port_random;
    port.console = NULL;
    port.ctx = NULL;
    if (bridge_init(&dev, &cfg, &port, NULL) != 0) {
        fail();
    }
    for (off = 2; off < size; off += chunk) {
        bridge_feed(&dev, data + off, size - off < chunk ? size - off : chunk);
        bridge_poll(&dev);
        if (data[1] & 2u) {
            bridge_link_reset(&dev);
        }
    }
    return 0;
}
