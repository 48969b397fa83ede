/* The port layer: the only thing a board fills in.
 *
 * Every function is called from the thread (or main loop) that calls
 * bridge_feed() and bridge_poll(); none is called from an interrupt.
 */
#ifndef BRIDGE_PORT_H
#define BRIDGE_PORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct bridge_port {
    /* Queue one whole encoded frame (delimiter included) for the link.
     * Return len when it was accepted, 0 when it was dropped; never block
     * for long. A partial write corrupts a frame, so accept all or nothing. */
    size_t (*write)(void *ctx, const uint8_t *data, size_t len);
    /* Bytes write() would accept right now. Optional (NULL: unlimited).
     * Streams use it to count overruns instead of blocking. */
    size_t (*write_space)(void *ctx);
    /* Monotonic microseconds; never goes backwards. */
    uint64_t (*now_us)(void *ctx);
    /* Fill out with unpredictable bytes (session nonces). Optional when no
     * authentication key is configured. */
    void (*random)(void *ctx, uint8_t *out, size_t len);
    /* Printable lines received outside frames (section 1.1.4). Optional. */
    void (*console)(void *ctx, const uint8_t *line, size_t len);
    void *ctx;
} bridge_port_t;

#endif /* BRIDGE_PORT_H */
