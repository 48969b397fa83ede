/* The virtual device's CRC-32 and SHA-256 accelerators against the portable code: every
 * length from 0 to 600 bytes at every alignment 0..15, chained updates, and 1 MiB at once,
 * over pseudo-random data; plus the standard check values. Exits non-zero on a mismatch. */
#include <stdio.h>
#include <string.h>

#include "accel.h"

static uint8_t buf[(1u << 20) + 64];
static unsigned failures;

static uint32_t next_random(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void expect(int ok, const char *what, size_t len, size_t align)
{
    if (!ok && failures++ < 10u) {
        fprintf(stderr, "test_accel: %s differs (len %u, alignment %u)\n", what, (unsigned)len,
                (unsigned)align);
    }
}

static uint32_t crc_both(int accel, uint32_t seed, const uint8_t *p, size_t len)
{
    bridge_crc32_use_fold(NULL);
    if (accel) {
        (void)crc32_accel_install();
    }
    return bridge_crc32(seed, p, len);
}

static void sha_both(int accel, const uint8_t *p, size_t len, uint8_t out[32])
{
    bridge_sha256_use_blocks(NULL);
    if (accel) {
        (void)sha256_accel_install();
    }
    bridge_sha256(p, len, out);
}

int main(void)
{
    static const uint8_t check[] = "123456789";
    static const uint8_t abc_sha[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
        0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
        0xf2, 0x00, 0x15, 0xad};
    uint32_t s = 0x9E3779B9u;
    size_t i, len, align;
    uint8_t want[32], got[32];
    const char *crc_name = crc32_accel_install();
    const char *sha_name = sha256_accel_install();

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)next_random(&s);
    }
    expect(crc_both(1, 0, check, 9) == 0xCBF43926u, "CRC-32 check value", 9, 0);
    sha_both(1, (const uint8_t *)"abc", 3, got);
    expect(memcmp(got, abc_sha, 32) == 0, "SHA-256 of \"abc\"", 3, 0);
    for (len = 0; len <= 600u; len++) {
        for (align = 0; align < 16u; align++) {
            uint32_t seed = next_random(&s);
            const uint8_t *p = buf + align;
            expect(crc_both(0, seed, p, len) == crc_both(1, seed, p, len), "CRC-32", len, align);
            if (align % 4u == 0u && len % 3u == 0u) {
                sha_both(0, p, len, want);
                sha_both(1, p, len, got);
                expect(memcmp(want, got, 32) == 0, "SHA-256", len, align);
            }
        }
    }
    /* chained: the same CRC whatever the split */
    for (i = 0; i < 200u; i++) {
        size_t total = 64u + next_random(&s) % 5000u, cut = next_random(&s) % total;
        uint32_t whole = crc_both(0, 0, buf + 3, total);
        uint32_t parts = crc_both(1, 0, buf + 3, cut);
        parts = bridge_crc32(parts, buf + 3 + cut, total - cut);
        expect(whole == parts, "chained CRC-32", total, cut);
    }
    expect(crc_both(0, 0, buf + 1, 1u << 20) == crc_both(1, 0, buf + 1, 1u << 20), "CRC-32 1 MiB",
           1u << 20, 1);
    sha_both(0, buf + 5, 1u << 20, want);
    sha_both(1, buf + 5, 1u << 20, got);
    expect(memcmp(want, got, 32) == 0, "SHA-256 1 MiB", 1u << 20, 5);
    printf("test_accel: CRC-32 %s, SHA-256 %s: %s\n", crc_name, sha_name,
           failures == 0u ? "all agree with the portable code" : "MISMATCH");
    return failures == 0u ? 0 : 1;
}
