/* SHA-256 block compression with the x86 SHA extensions, for the virtual device.
 *
 * This is the virtual device's "hash peripheral": the same role a board port gives to its
 * SHA accelerator (bridge_sha256_use_blocks). It is compiled only for x86-64 with GCC or
 * clang, used only when the CPU reports the SHA extensions, and checked against the portable
 * code at start-up before it is used. */
#include "sha256_accel.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

static const uint32_t K[64] = {
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

__attribute__((target("sha,ssse3,sse4.1"))) static void
blocks_shani(uint32_t state[8], const uint8_t *blocks, size_t count)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)(const void *)&state[0]);
    __m128i st1 = _mm_loadu_si128((const __m128i *)(const void *)&state[4]);
    __m128i st0;

    tmp = _mm_shuffle_epi32(tmp, 0xB1);     /* CDAB */
    st1 = _mm_shuffle_epi32(st1, 0x1B);     /* EFGH */
    st0 = _mm_alignr_epi8(tmp, st1, 8);     /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xF0);  /* CDGH */

    while (count-- > 0u) {
        const __m128i abef = st0;
        const __m128i cdgh = st1;
        __m128i w[4];
        unsigned g;
        for (g = 0; g < 16u; g++) {
            __m128i msg;
            if (g < 4u) {
                w[g] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(const void *)(blocks + 16u * g)), bswap);
            } else {
                /* w[g & 3] holds W[g-4], then W[g-3], W[g-2], W[g-1] follow. */
                __m128i s = _mm_sha256msg1_epu32(w[g & 3u], w[(g + 1u) & 3u]);
                s = _mm_add_epi32(s, _mm_alignr_epi8(w[(g + 3u) & 3u], w[(g + 2u) & 3u], 4));
                w[g & 3u] = _mm_sha256msg2_epu32(s, w[(g + 3u) & 3u]);
            }
            msg = _mm_add_epi32(w[g & 3u],
                                _mm_loadu_si128((const __m128i *)(const void *)&K[4u * g]));
            st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            st0 = _mm_sha256rnds2_epu32(st0, st1, msg);
        }
        st0 = _mm_add_epi32(st0, abef);
        st1 = _mm_add_epi32(st1, cdgh);
        blocks += 64;
    }

    tmp = _mm_shuffle_epi32(st0, 0x1B);     /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xB1);     /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xF0);  /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);     /* HGFE */
    _mm_storeu_si128((__m128i *)(void *)&state[0], st0);
    _mm_storeu_si128((__m128i *)(void *)&state[4], st1);
}

static int cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) {
        return 0;
    }
    if (__get_cpuid_max(0, NULL) < 7u) {
        return 0;
    }
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 29)) != 0; /* CPUID.7.0:EBX.SHA */
}

const char *sha256_accel_install(void)
{
    static uint8_t probe[3u * BRIDGE_SHA256_BLOCK + 5u];
    uint8_t want[BRIDGE_SHA256_SIZE];
    uint8_t got[BRIDGE_SHA256_SIZE];
    size_t i;

    if (!cpu_has_sha()) {
        return "portable";
    }
    for (i = 0; i < sizeof(probe); i++) {
        probe[i] = (uint8_t)(i * 151u + 7u);
    }
    bridge_sha256_use_blocks(NULL);
    bridge_sha256(probe, sizeof(probe), want);
    bridge_sha256_use_blocks(blocks_shani);
    bridge_sha256(probe, sizeof(probe), got);
    if (memcmp(want, got, sizeof(want)) != 0) {
        bridge_sha256_use_blocks(NULL);
        return "portable (the SHA extensions disagreed with it)";
    }
    return "x86 SHA extensions";
}

#else

const char *sha256_accel_install(void)
{
    return "portable";
}

#endif
