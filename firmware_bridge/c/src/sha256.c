/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104). */
#include <string.h>

#include "bridge_sha256.h"

const uint32_t bridge_sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32u - (n))))

static void compress(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, k;
    unsigned i;

    for (i = 0; i < 16; i++) {
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
               ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0];
    b = h[1];
    c = h[2];
    d = h[3];
    e = h[4];
    f = h[5];
    g = h[6];
    k = h[7];
    for (i = 0; i < 64; i++) {
        uint32_t s1 = ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = k + s1 + ch + bridge_sha256_k[i] + w[i];
        uint32_t s0 = ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + maj;
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void bridge_sha256_blocks_portable(uint32_t state[8], const uint8_t *blocks, size_t count)
{
    while (count-- > 0u) {
        compress(state, blocks);
        blocks += BRIDGE_SHA256_BLOCK;
    }
}

static bridge_sha256_blocks_fn blocks_fn = bridge_sha256_blocks_portable;

void bridge_sha256_use_blocks(bridge_sha256_blocks_fn fn)
{
    blocks_fn = fn != NULL ? fn : bridge_sha256_blocks_portable;
}

void bridge_sha256_init(bridge_sha256_t *s)
{
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, iv, sizeof(iv));
    s->bytes = 0;
    s->fill = 0;
}

void bridge_sha256_update(bridge_sha256_t *s, const uint8_t *data, size_t len)
{
    s->bytes += len;
    if (s->fill > 0) {
        size_t take = BRIDGE_SHA256_BLOCK - s->fill;
        if (take > len) {
            take = len;
        }
        memcpy(s->block + s->fill, data, take);
        s->fill += take;
        data += take;
        len -= take;
        if (s->fill < BRIDGE_SHA256_BLOCK) {
            return;
        }
        blocks_fn(s->h, s->block, 1u);
        s->fill = 0;
    }
    if (len >= BRIDGE_SHA256_BLOCK) {
        size_t whole = len / BRIDGE_SHA256_BLOCK;
        blocks_fn(s->h, data, whole);
        data += whole * BRIDGE_SHA256_BLOCK;
        len -= whole * BRIDGE_SHA256_BLOCK;
    }
    if (len > 0) {
        memcpy(s->block, data, len);
        s->fill = len;
    }
}

void bridge_sha256_final(bridge_sha256_t *s, uint8_t out[BRIDGE_SHA256_SIZE])
{
    uint64_t bits = s->bytes * 8u;
    unsigned i;

    s->block[s->fill++] = 0x80;
    if (s->fill > 56) {
        memset(s->block + s->fill, 0, BRIDGE_SHA256_BLOCK - s->fill);
        blocks_fn(s->h, s->block, 1u);
        s->fill = 0;
    }
    memset(s->block + s->fill, 0, 56 - s->fill);
    for (i = 0; i < 8; i++) {
        s->block[63 - i] = (uint8_t)(bits >> (8 * i));
    }
    blocks_fn(s->h, s->block, 1u);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void bridge_sha256(const uint8_t *data, size_t len, uint8_t out[BRIDGE_SHA256_SIZE])
{
    bridge_sha256_t s;
    bridge_sha256_init(&s);
    bridge_sha256_update(&s, data, len);
    bridge_sha256_final(&s, out);
}

void bridge_hmac_init(bridge_hmac_t *m, const uint8_t *key, size_t key_len)
{
    uint8_t k[BRIDGE_SHA256_BLOCK];
    uint8_t pad[BRIDGE_SHA256_BLOCK];
    unsigned i;

    memset(k, 0, sizeof(k));
    if (key_len > BRIDGE_SHA256_BLOCK) {
        bridge_sha256(key, key_len, k);
    } else if (key_len > 0) {
        memcpy(k, key, key_len);
    }
    for (i = 0; i < BRIDGE_SHA256_BLOCK; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x36u);
    }
    bridge_sha256_init(&m->inner);
    bridge_sha256_update(&m->inner, pad, sizeof(pad));
    for (i = 0; i < BRIDGE_SHA256_BLOCK; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x5Cu);
    }
    bridge_sha256_init(&m->outer);
    bridge_sha256_update(&m->outer, pad, sizeof(pad));
}

void bridge_hmac_update(bridge_hmac_t *m, const uint8_t *data, size_t len)
{
    bridge_sha256_update(&m->inner, data, len);
}

void bridge_hmac_final(bridge_hmac_t *m, uint8_t out[BRIDGE_SHA256_SIZE])
{
    uint8_t inner[BRIDGE_SHA256_SIZE];
    bridge_sha256_final(&m->inner, inner);
    bridge_sha256_update(&m->outer, inner, sizeof(inner));
    bridge_sha256_final(&m->outer, out);
}

int bridge_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t diff = 0;
    size_t i;
    for (i = 0; i < len; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}
