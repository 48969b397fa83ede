/* Differential-testing aid: runs the frame decoder over inputs given as lines
 * "LIMIT HEX" on stdin and prints, per line, the result in the notation of the
 * decode rows of frames.tsv (counters;bodies=...;console=...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_codec.h"

#define MAX_INPUT (1u << 20)

typedef struct out {
    int bodies;
    int lines;
    /* Bodies and console lines print in order of arrival; keep them apart. */
    char *body_text;
    size_t body_len;
    char *console_text;
    size_t console_len;
} out_t;

static void append_hex(char **buf, size_t *len, int *count, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    char *grown = realloc(*buf, *len + 2 * n + 2);
    if (grown == NULL) {
        exit(3);
    }
    *buf = grown;
    if (*count > 0) {
        (*buf)[(*len)++] = '|';
    }
    for (i = 0; i < n; i++) {
        (*buf)[(*len)++] = hex[p[i] >> 4];
        (*buf)[(*len)++] = hex[p[i] & 15];
    }
    (*buf)[*len] = '\0';
    (*count)++;
}

static void on_frame(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    out_t *o = (out_t *)ctx;
    (void)h;
    append_hex(&o->body_text, &o->body_len, &o->bodies, body, len + BRIDGE_CRC_SIZE);
}

static void on_console(void *ctx, const uint8_t *line, size_t len)
{
    out_t *o = (out_t *)ctx;
    append_hex(&o->console_text, &o->console_len, &o->lines, line, len);
}

int main(void)
{
    static char line[2 * MAX_INPUT + 32];
    static uint8_t data[MAX_INPUT];
    static bridge_decoder_t dec;
    unsigned long lines = 0;
    uint32_t rng = 1;

    while (fgets(line, sizeof(line), stdin) != NULL) {
        char *hex;
        size_t n = 0, i, hl;
        unsigned long limit = strtoul(line, &hex, 10);
        out_t o;
        const bridge_decoder_stats_t *s = &dec.stats;
        while (*hex == ' ') {
            hex++;
        }
        hl = strcspn(hex, "\r\n");
        if (hl % 2 != 0 || hl / 2 > sizeof(data)) {
            return 2;
        }
        for (i = 0; i < hl / 2; i++) {
            unsigned v;
            if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
                return 2;
            }
            data[n++] = (uint8_t)v;
        }
        memset(&o, 0, sizeof(o));
        bridge_decoder_init(&dec, limit, on_frame, on_console, &o);
        if (++lines % 2 == 0) {
            bridge_decoder_feed(&dec, data, n);
        } else {
            /* Odd lines arrive in pieces of 1..64 bytes: the result must not depend on how
             * the stream is cut. */
            size_t off = 0;
            while (off < n) {
                size_t k;
                rng = rng * 1103515245u + 12345u;
                k = 1u + (size_t)((rng >> 16) % 64u);
                if (k > n - off) {
                    k = n - off;
                }
                bridge_decoder_feed(&dec, data + off, k);
                off += k;
            }
        }
        printf("frames=%u;cobs_errors=%u;short_frames=%u;crc_errors=%u;bad_version=%u;"
               "oversize=%u;console_lines=%u;bodies=%s;console=%s\n",
               (unsigned)s->frames, (unsigned)s->cobs_errors, (unsigned)s->short_frames,
               (unsigned)s->crc_errors, (unsigned)s->bad_version, (unsigned)s->oversize,
               (unsigned)s->console_lines, o.bodies ? o.body_text : "-",
               o.lines ? o.console_text : "-");
        free(o.body_text);
        free(o.console_text);
    }
    return 0;
}
