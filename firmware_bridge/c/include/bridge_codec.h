/* Framing: COBS, CRC-32, the 12-byte header and the streaming decoder. */
#ifndef BRIDGE_CODEC_H
#define BRIDGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"

/* Channels (section 2). */
enum {
    BRIDGE_CH_CONTROL = 0,
    BRIDGE_CH_RPC = 1,
    BRIDGE_CH_STREAM = 2,
    BRIDGE_CH_BULK = 3,
    BRIDGE_CH_LOG = 4,
    BRIDGE_CH_COUNT = 5
};

/* Message types per channel (sections 3-7). */
enum { BRIDGE_T_HELLO_REQ = 1, BRIDGE_T_HELLO = 2, BRIDGE_T_ERROR = 3 };
enum { BRIDGE_T_REQUEST = 1, BRIDGE_T_RESPONSE = 2 };
enum { BRIDGE_T_STREAM_DATA = 1 };
enum { BRIDGE_T_BEGIN = 1, BRIDGE_T_WINDOW = 2, BRIDGE_T_BULK_DATA = 3, BRIDGE_T_END = 4 };
enum { BRIDGE_T_LOG = 1 };

/* Header flag bits. */
#define BRIDGE_FLAG_AUTH 0x01u
#define BRIDGE_FLAG_RESEND 0x02u

typedef struct bridge_header {
    uint8_t version;
    uint8_t flags;
    uint8_t channel;
    uint8_t type;
    uint16_t seq;
    uint16_t ack;
    uint32_t id;
} bridge_header_t;

/* Little-endian helpers. */
void bridge_put_u16(uint8_t *p, uint16_t v);
void bridge_put_u32(uint8_t *p, uint32_t v);
void bridge_put_u64(uint8_t *p, uint64_t v);
uint16_t bridge_get_u16(const uint8_t *p);
uint32_t bridge_get_u32(const uint8_t *p);
uint64_t bridge_get_u64(const uint8_t *p);

/* CRC-32 as zlib.crc32: pass 0 to start, the previous result to continue. */
uint32_t bridge_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* A board whose CPU has carry-less multiply (x86 PCLMULQDQ, ARMv8 PMULL) hands a folding
 * CRC-32 to bridge_crc32_use_fold() once at start-up; NULL restores the table code. The
 * function takes and returns the CRC register (the complement of the zlib value), gets
 * len >= BRIDGE_CRC32_FOLD_MIN bytes, always a multiple of 16, and bridge_crc32 finishes the
 * rest with its table. */
#define BRIDGE_CRC32_FOLD_MIN 64u
typedef uint32_t (*bridge_crc32_fold_fn)(uint32_t reg, const uint8_t *data, size_t len);
void bridge_crc32_use_fold(bridge_crc32_fold_fn fn);

/* COBS-encode len bytes into out (no delimiter). Returns the encoded length,
 * or 0 when cap is too small (an encoding is never empty). */
size_t bridge_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* COBS-decode; out may equal in (in-place). Returns 0 and sets *out_len, or
 * -1 on malformed input (a zero byte, a code running past the end) or when
 * cap is too small. */
int bridge_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

void bridge_header_encode(const bridge_header_t *h, uint8_t out[BRIDGE_HEADER_SIZE]);
/* Returns 0, or -1 when len is shorter than a header. */
int bridge_header_parse(const uint8_t *in, size_t len, bridge_header_t *h);

/* Append the CRC to body[0..len) (body must have room for 4 more bytes), COBS
 * it into out and add the delimiter. Returns the wire length, or 0 when out
 * is too small. */
size_t bridge_frame_seal(uint8_t *body, size_t len, uint8_t *out, size_t cap);

/* Build a whole frame: header, payload, optional trailer, CRC, COBS, 0x00.
 * scratch must hold the body (BRIDGE_HEADER_SIZE + n + trailer_len + 4).
 * Returns the wire length, or 0 when a buffer is too small. */
size_t bridge_frame_encode(const bridge_header_t *h, const uint8_t *payload, size_t n,
                           const uint8_t *trailer, size_t trailer_len, uint8_t *scratch,
                           size_t scratch_cap, uint8_t *out, size_t cap);

/* Decoder counters, exactly as docs/protocol.md section 1.1. */
typedef struct bridge_decoder_stats {
    uint32_t frames;        /* good frames handed to the frame callback */
    uint32_t cobs_errors;   /* segment is not valid COBS */
    uint32_t short_frames;  /* body shorter than 16 bytes */
    uint32_t crc_errors;    /* CRC mismatch */
    uint32_t bad_version;   /* version byte is not 1 */
    uint32_t oversize;      /* more than the frame limit */
    uint32_t console_lines; /* printable lines handed to the console callback */
} bridge_decoder_stats_t;

/* body/len: the decoded body without its CRC; the header is already parsed. */
typedef void (*bridge_frame_fn)(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len);
typedef void (*bridge_console_fn)(void *ctx, const uint8_t *line, size_t len);

typedef struct bridge_decoder {
    uint8_t buf[BRIDGE_ENCODED_MAX(BRIDGE_FRAME_MAX)];
    size_t len;
    size_t limit;
    uint8_t skipping;
    uint8_t printable;
    bridge_decoder_stats_t stats;
    bridge_frame_fn on_frame;
    bridge_console_fn on_console;
    void *ctx;
} bridge_decoder_t;

/* limit is clamped to [BRIDGE_MIN_BODY, BRIDGE_FRAME_MAX]. Callbacks may be NULL. */
void bridge_decoder_init(bridge_decoder_t *d, size_t limit, bridge_frame_fn on_frame,
                         bridge_console_fn on_console, void *ctx);
void bridge_decoder_set_limit(bridge_decoder_t *d, size_t limit);
/* Forget a partial segment (after a link reset); counters are kept. */
void bridge_decoder_reset(bridge_decoder_t *d);
void bridge_decoder_feed(bridge_decoder_t *d, const uint8_t *data, size_t len);

#endif /* BRIDGE_CODEC_H */
