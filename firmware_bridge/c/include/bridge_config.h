/* Compile-time sizing of every buffer in the bridge library.
 *
 * Override any of these with -D on the compiler command line; the library and
 * everything that includes its headers must be built with the same values.
 */
#ifndef BRIDGE_CONFIG_H
#define BRIDGE_CONFIG_H

/* Largest frame body (header, payload, auth trailer, CRC) this build accepts. */
#ifndef BRIDGE_FRAME_MAX
#define BRIDGE_FRAME_MAX 1024u
#endif

/* Smallest frame limit a session may use: HELLO must always fit. */
#ifndef BRIDGE_FRAME_MIN_LIMIT
#define BRIDGE_FRAME_MIN_LIMIT 160u
#endif

/* Responses kept for de-duplication by call id (the protocol asks for >= 8). */
#ifndef BRIDGE_RPC_CACHE_ENTRIES
#define BRIDGE_RPC_CACHE_ENTRIES 8u
#endif

/* Largest RPC result stored per cache entry. */
#ifndef BRIDGE_RPC_RESULT_MAX
#define BRIDGE_RPC_RESULT_MAX (BRIDGE_FRAME_MAX - BRIDGE_MIN_BODY - 2u)
#endif

/* RPC requests the device advertises it can hold at once (HELLO rx_window). */
#ifndef BRIDGE_RX_WINDOW
#define BRIDGE_RX_WINDOW 8u
#endif

/* Streams a device can run (the board's stream table may not be longer). */
#ifndef BRIDGE_MAX_STREAMS
#define BRIDGE_MAX_STREAMS 4u
#endif

/* Bulk receive window, in frames' worth of data. */
#ifndef BRIDGE_BULK_CREDIT_FRAMES
#define BRIDGE_BULK_CREDIT_FRAMES 4u
#endif

/* Longest bulk transfer name kept for resume. */
#ifndef BRIDGE_BULK_NAME_MAX
#define BRIDGE_BULK_NAME_MAX 32u
#endif

/* Fixed protocol sizes (section 1 and 2 of docs/protocol.md). */
#define BRIDGE_VERSION 1u
#define BRIDGE_HEADER_SIZE 12u
#define BRIDGE_CRC_SIZE 4u
#define BRIDGE_TRAILER_SIZE 20u
#define BRIDGE_TAG_SIZE 16u
#define BRIDGE_NONCE_SIZE 16u
#define BRIDGE_UID_MAX 16u
#define BRIDGE_FW_VERSION_MAX 32u
#define BRIDGE_MIN_BODY (BRIDGE_HEADER_SIZE + BRIDGE_CRC_SIZE)
/* Header, CRC and auth trailer: the most a body spends besides its payload. */
#define BRIDGE_OVERHEAD (BRIDGE_HEADER_SIZE + BRIDGE_CRC_SIZE + BRIDGE_TRAILER_SIZE)

/* Most encoded bytes a decoder accumulates for frame limit l (rule 1.1.3). */
#define BRIDGE_ENCODED_MAX(l) ((l) + (l) / 254u + 2u)
/* Wire size of a body of n bytes in the worst case, delimiter included. */
#define BRIDGE_WIRE_MAX(n) ((n) + (n) / 254u + 2u)

#if BRIDGE_FRAME_MAX < BRIDGE_FRAME_MIN_LIMIT
#error "BRIDGE_FRAME_MAX must be at least BRIDGE_FRAME_MIN_LIMIT"
#endif
#if BRIDGE_FRAME_MAX > 65535u
#error "BRIDGE_FRAME_MAX must fit the u16 frame_limit field"
#endif
#if BRIDGE_RPC_CACHE_ENTRIES < 8u
#error "the protocol requires at least 8 cached responses"
#endif

#endif /* BRIDGE_CONFIG_H */
