/* Shared between the library's own source files; not part of the API. */
#ifndef BRIDGE_INTERNAL_H
#define BRIDGE_INTERNAL_H

#include "bridge.h"

/* A bounded writer: once full it records an overflow and ignores writes. */
typedef struct bridge_wbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    int overflow;
} bridge_wbuf_t;

void bridge_w_bytes(bridge_wbuf_t *w, const void *data, size_t n);
void bridge_w_u8(bridge_wbuf_t *w, uint8_t v);
void bridge_w_u16(bridge_wbuf_t *w, uint16_t v);
void bridge_w_u32(bridge_wbuf_t *w, uint32_t v);
void bridge_w_u64(bridge_wbuf_t *w, uint64_t v);
void bridge_w_str(bridge_wbuf_t *w, const char *s);
void bridge_w_uint(bridge_wbuf_t *w, uint64_t v);

/* Payload bytes one frame can carry in the current session. */
size_t bridge_payload_cap(const bridge_t *b);
/* Where a frame's payload is built before bridge_send_body(). */
uint8_t *bridge_tx_payload(bridge_t *b);
/* Send the payload built at bridge_tx_payload(): fills in version, seq (a new
 * one unless RESEND is set in h->flags), authentication and CRC. */
int bridge_send_body(bridge_t *b, bridge_header_t *h, size_t n);

void bridge_bulk_frame(bridge_t *b, const bridge_header_t *h, const uint8_t *p, size_t n);

#endif /* BRIDGE_INTERNAL_H */
