/* Throughput of the codec on this machine: CRC-32, COBS and the streaming
 * decoder over 1 KiB and 16 KiB frames, and SHA-256; CRC-32, SHA-256 and the decoder
 * again with the virtual device's accelerators (virtual/accel.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "accel.h"
#include "bridge.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t frames_seen;

static void count(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    (void)ctx;
    (void)h;
    (void)body;
    (void)len;
    frames_seen++;
}

static uint8_t wire[64u * (BRIDGE_WIRE_MAX(BRIDGE_FRAME_MAX))];
static uint8_t body[BRIDGE_FRAME_MAX];

static void bench_decoder(size_t limit)
{
    static bridge_decoder_t dec;
    bridge_header_t h;
    size_t i, n = 0, rounds = 0;
    double t0, dt;
    memset(&h, 0, sizeof(h));
    h.version = 1;
    h.channel = BRIDGE_CH_BULK;
    h.type = BRIDGE_T_BULK_DATA;
    for (i = 0; i < 64; i++) {
        uint8_t payload[BRIDGE_FRAME_MAX];
        size_t k;
        for (k = 0; k < limit - 16; k++) {
            payload[k] = (uint8_t)(k * 13 + i);
        }
        n += bridge_frame_encode(&h, payload, limit - 16, NULL, 0, body, sizeof(body), wire + n,
                                 sizeof(wire) - n);
    }
    bridge_decoder_init(&dec, limit, count, NULL, NULL);
    frames_seen = 0;
    t0 = now_s();
    do {
        bridge_decoder_feed(&dec, wire, n);
        rounds++;
        dt = now_s() - t0;
    } while (dt < 0.5);
    printf("decoder, %5u-byte frames: %7.1f MB/s, %8.0f frames/s (%u bad)\n", (unsigned)limit,
           (double)(n * rounds) / dt / 1e6, (double)frames_seen / dt,
           (unsigned)(dec.stats.crc_errors + dec.stats.cobs_errors));
}

static uint8_t data[1u << 16], out[(1u << 16) + 512];

static void bench_checks(const char *label)
{
    size_t rounds = 0;
    uint32_t crc = 0;
    double t0, dt;
    uint8_t digest[32];

    printf("-- %s\n", label);
    t0 = now_s();
    do {
        crc = bridge_crc32(crc, data, sizeof(data));
        rounds++;
        dt = now_s() - t0;
    } while (dt < 0.3);
    printf("crc32:    %7.1f MB/s (%08x)\n", (double)(sizeof(data) * rounds) / dt / 1e6,
           (unsigned)crc);
    rounds = 0;
    t0 = now_s();
    do {
        bridge_sha256(data, sizeof(data), digest);
        rounds++;
        dt = now_s() - t0;
    } while (dt < 0.3);
    printf("sha256:   %7.1f MB/s\n", (double)(sizeof(data) * rounds) / dt / 1e6);
    bench_decoder(1024);
    if (BRIDGE_FRAME_MAX >= 16384) {
        bench_decoder(16384);
    }
}

int main(void)
{
    size_t i, rounds = 0, n = 0;
    double t0, dt;
    char label[160];

    for (i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + 1);
    }
    t0 = now_s();
    do {
        n = bridge_cobs_encode(data, sizeof(data), out, sizeof(out));
        rounds++;
        dt = now_s() - t0;
    } while (dt < 0.3);
    printf("cobs enc: %7.1f MB/s\n", (double)(sizeof(data) * rounds) / dt / 1e6);
    rounds = 0;
    t0 = now_s();
    do {
        size_t m = 0;
        (void)bridge_cobs_decode(out, n, data, sizeof(data), &m);
        rounds++;
        dt = now_s() - t0;
    } while (dt < 0.3);
    printf("cobs dec: %7.1f MB/s\n", (double)(n * rounds) / dt / 1e6);
    for (i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + 1);
    }
    bench_checks("portable CRC-32 and SHA-256");
    (void)snprintf(label, sizeof(label), "CRC-32: %s, SHA-256: %s", crc32_accel_install(),
                   sha256_accel_install());
    bench_checks(label);
    return 0;
}
