/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), no allocation. */
#ifndef BRIDGE_SHA256_H
#define BRIDGE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define BRIDGE_SHA256_SIZE 32u
#define BRIDGE_SHA256_BLOCK 64u

typedef struct bridge_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[BRIDGE_SHA256_BLOCK];
    size_t fill;
} bridge_sha256_t;

/* Block compression: whole 64-byte blocks into the state. A port with a hash peripheral or
 * SHA instructions hands its own to bridge_sha256_use_blocks() once at start-up; NULL restores
 * the portable C code. Every SHA-256 and HMAC of the library then goes through it. */
typedef void (*bridge_sha256_blocks_fn)(uint32_t state[8], const uint8_t *blocks, size_t count);
void bridge_sha256_use_blocks(bridge_sha256_blocks_fn fn);
void bridge_sha256_blocks_portable(uint32_t state[8], const uint8_t *blocks, size_t count);
/* The 64 round constants, for a port's own block function. */
extern const uint32_t bridge_sha256_k[64];

void bridge_sha256_init(bridge_sha256_t *s);
void bridge_sha256_update(bridge_sha256_t *s, const uint8_t *data, size_t len);
void bridge_sha256_final(bridge_sha256_t *s, uint8_t out[BRIDGE_SHA256_SIZE]);
void bridge_sha256(const uint8_t *data, size_t len, uint8_t out[BRIDGE_SHA256_SIZE]);

typedef struct bridge_hmac {
    bridge_sha256_t inner;
    bridge_sha256_t outer;
} bridge_hmac_t;

void bridge_hmac_init(bridge_hmac_t *m, const uint8_t *key, size_t key_len);
void bridge_hmac_update(bridge_hmac_t *m, const uint8_t *data, size_t len);
void bridge_hmac_final(bridge_hmac_t *m, uint8_t out[BRIDGE_SHA256_SIZE]);

/* Constant-time comparison: 1 when equal. */
int bridge_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif /* BRIDGE_SHA256_H */
