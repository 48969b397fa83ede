/* Consistent Overhead Byte Stuffing without the trailing zero. */
#include <string.h>

#include "bridge_codec.h"

size_t bridge_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t r = 0;
    size_t w = 0;

    /* Block by block: memchr finds the next zero within 254 bytes, memcpy moves the run. */
    for (;;) {
        size_t left = len - r;
        size_t span = left < 254u ? left : 254u;
        const uint8_t *zero = span > 0u ? memchr(in + r, 0, span) : NULL;
        size_t k = zero != NULL ? (size_t)(zero - (in + r)) : span;
        if (k + 1u > cap - w) {
            return 0;
        }
        out[w] = (uint8_t)(k + 1u);
        memcpy(out + w + 1u, in + r, k);
        w += k + 1u;
        r += k;
        if (zero != NULL) {
            r++; /* the zero itself; a block (maybe empty) follows it */
        } else if (k < 254u || r == len) {
            /* The input ends here; a full block at the very end needs no trailing code byte. */
            return w;
        }
    }
}

int bridge_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t r = 0;
    size_t w = 0;

    /* Block by block with memchr and memmove (in and out may be the same buffer: the decoder
     * decodes in place, and w never passes r). */
    while (r < len) {
        uint8_t code = in[r++];
        size_t n;
        if (code == 0) {
            return -1;
        }
        n = (size_t)code - 1u;
        if (n > len - r) {
            return -1;
        }
        if (n > cap - w) {
            return -1;
        }
        if (n > 0) {
            if (memchr(in + r, 0, n) != NULL) {
                return -1;
            }
            memmove(out + w, in + r, n);
            r += n;
            w += n;
        }
        if (code != 0xFF && r < len) {
            if (w >= cap) {
                return -1;
            }
            out[w++] = 0;
        }
    }
    *out_len = w;
    return 0;
}
