/* CRC-32 by carry-less multiplication (x86 PCLMULQDQ), for the virtual device.
 *
 * The folding method of Gopal et al., "Fast CRC Computation for Generic Polynomials Using
 * PCLMULQDQ Instruction" (Intel, 2009), with the bit-reflected constants of the zlib
 * polynomial 0xEDB88320: four 128-bit lanes folded 64 bytes at a time, folded into one lane,
 * then 16 bytes at a time, reduced to 64 bits and Barrett-reduced to the 32-bit register.
 * It plays the part of a board's CRC unit (bridge_crc32_use_fold), is compiled only for
 * x86-64 with GCC or clang, used only when the CPU reports PCLMULQDQ, and checked against
 * the table code at start-up before it is used. */
#include "accel.h"


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

/* x^(4*128+32), x^(4*128-32); x^(128+32), x^(128-32); x^64; P(x)' and mu, all reflected. */
static const uint64_t k1k2[2] __attribute__((aligned(16))) = {0x0154442bd4u, 0x01c6e41596u};
static const uint64_t k3k4[2] __attribute__((aligned(16))) = {0x01751997d0u, 0x00ccaa009eu};
static const uint64_t k5k0[2] __attribute__((aligned(16))) = {0x0163cd6124u, 0u};
static const uint64_t poly[2] __attribute__((aligned(16))) = {0x01db710641u, 0x01f7011641u};

#define LOAD(p) _mm_loadu_si128((const __m128i *)(const void *)(p))

/* Fold acc forward by the distance the constants in k encode and add the data next. */
__attribute__((target("pclmul,sse4.1"))) static __m128i fold(__m128i acc, __m128i k, __m128i next)
{
    __m128i lo = _mm_clmulepi64_si128(acc, k, 0x00);
    __m128i hi = _mm_clmulepi64_si128(acc, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(hi, lo), next);
}

__attribute__((target("pclmul,sse4.1"))) static uint32_t
crc32_pclmul(uint32_t reg, const uint8_t *data, size_t len)
{
    const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i k = _mm_load_si128((const __m128i *)(const void *)k1k2);
    __m128i x1 = _mm_xor_si128(LOAD(data), _mm_cvtsi32_si128((int)reg));
    __m128i x2 = LOAD(data + 16);
    __m128i x3 = LOAD(data + 32);
    __m128i x4 = LOAD(data + 48);
    __m128i t;

    data += 64;
    len -= 64;
    while (len >= 64) {
        x1 = fold(x1, k, LOAD(data));
        x2 = fold(x2, k, LOAD(data + 16));
        x3 = fold(x3, k, LOAD(data + 32));
        x4 = fold(x4, k, LOAD(data + 48));
        data += 64;
        len -= 64;
    }
    k = _mm_load_si128((const __m128i *)(const void *)k3k4);
    x1 = fold(x1, k, x2);
    x1 = fold(x1, k, x3);
    x1 = fold(x1, k, x4);
    while (len >= 16) {
        x1 = fold(x1, k, LOAD(data));
        data += 16;
        len -= 16;
    }
    /* 128 -> 64 bits */
    t = _mm_clmulepi64_si128(x1, k, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
    k = _mm_loadl_epi64((const __m128i *)(const void *)k5k0);
    t = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x00), t);
    /* Barrett reduction to 32 bits */
    k = _mm_load_si128((const __m128i *)(const void *)poly);
    t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), k, 0x00);
    x1 = _mm_xor_si128(x1, t);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int cpu_has_pclmul(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_PCLMUL) && (c & bit_SSE4_1);
}

const char *crc32_accel_install(void)
{
    static uint8_t probe[1000];
    size_t i, len;

    if (!cpu_has_pclmul()) {
        return "table";
    }
    for (i = 0; i < sizeof(probe); i++) {
        probe[i] = (uint8_t)(i * 167u + 13u);
    }
    for (len = 0; len <= sizeof(probe); len += 37u) {
        uint32_t want, got;
        bridge_crc32_use_fold(NULL);
        want = bridge_crc32(0x12345678u, probe + (len & 7u), len - (len & 7u));
        bridge_crc32_use_fold(crc32_pclmul);
        got = bridge_crc32(0x12345678u, probe + (len & 7u), len - (len & 7u));
        if (want != got) {
            bridge_crc32_use_fold(NULL);
            return "table (PCLMULQDQ disagreed with it)";
        }
    }
    return "x86 PCLMULQDQ";
}

#else

const char *crc32_accel_install(void)
{
    return "table";
}

#endif
