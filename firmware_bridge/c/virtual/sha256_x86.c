/* SHA-256 block compression with the x86 SHA extensions, for the virtual device.
 *
 * This is the virtual device's "hash peripheral": the same role a board port gives to its
 * SHA accelerator (bridge_sha256_use_blocks). It is compiled only for x86-64 with GCC or
 * clang, used only when the CPU reports the SHA extensions, and checked against the portable
 * code at start-up before it is used. */
#include "accel.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

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
        for (g = 0; g < 4u; g++) {
            w[g] = _mm_shuffle_epi8(
                _mm_loadu_si128((const __m128i *)(const void *)(blocks + 16u * g)), bswap);
        }
        /* Unrolled, w[] lives in registers; the message schedule for the next group (W[g+1],
         * which replaces W[g-3] in w[(g+1) & 3]) runs between the round pairs of this one,
         * as in Intel's reference code, so neither waits for the other. */
#if defined(__clang__)
#pragma clang loop unroll(full)
#else
#pragma GCC unroll 16
#endif
        for (g = 0; g < 16u; g++) {
            __m128i msg = _mm_add_epi32(
                w[g & 3u], _mm_loadu_si128((const __m128i *)(const void *)&bridge_sha256_k[4u * g]));
            st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
            if (g >= 3u && g < 15u) {
                __m128i s = _mm_sha256msg1_epu32(w[(g + 1u) & 3u], w[(g + 2u) & 3u]);
                s = _mm_add_epi32(s, _mm_alignr_epi8(w[g & 3u], w[(g + 3u) & 3u], 4));
                w[(g + 1u) & 3u] = _mm_sha256msg2_epu32(s, w[g & 3u]);
            }
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
