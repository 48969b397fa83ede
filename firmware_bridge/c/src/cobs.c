/* Consistent Overhead Byte Stuffing without the trailing zero. */
#include <string.h>

#include "bridge_codec.h"

size_t bridge_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t r = 0;
    size_t w = 1;
    size_t code_at = 0;
    uint8_t code = 1;

    if (cap == 0) {
        return 0;
    }
    while (r < len) {
        if (in[r] == 0) {
            out[code_at] = code;
            code = 1;
            code_at = w++;
            if (w > cap) {
                return 0;
            }
        } else {
            if (w >= cap) {
                return 0;
            }
            out[w++] = in[r];
            code++;
            if (code == 0xFF) {
                out[code_at] = code;
                code = 1;
                code_at = w;
                /* A full block at the very end needs no trailing code byte. */
                if (r + 1 == len) {
                    return w;
                }
                w++;
                if (w > cap) {
                    return 0;
                }
            }
        }
        r++;
    }
    out[code_at] = code;
    return w;
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
