/* The device side of the bridge: session, RPC dispatch, streams, bulk, log
 * and authentication, on top of bridge_codec.h.
 *
 * A board port allocates one bridge_t (statically), fills in a bridge_port_t
 * and a bridge_config_t (method, stream and bulk tables), calls bridge_init(),
 * then feeds received bytes to bridge_feed() and calls bridge_poll() often.
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "bridge_codec.h"
#include "bridge_config.h"
#include "bridge_port.h"
#include "bridge_sha256.h"

/* RPC status codes (section 4). */
typedef enum bridge_status {
    BRIDGE_OK = 0,
    BRIDGE_UNKNOWN_METHOD = 1,
    BRIDGE_BAD_ARGS = 2,
    BRIDGE_BUSY = 3,
    BRIDGE_NOT_FOUND = 4,
    BRIDGE_UNAUTHENTICATED = 5,
    BRIDGE_INTERNAL = 6,
    BRIDGE_TOO_LARGE = 7,
    BRIDGE_INTEGRITY = 8,
    BRIDGE_STALE = 9,
    BRIDGE_UNSUPPORTED = 10
} bridge_status_t;

/* Built-in method ids (section 4.1). */
enum {
    BRIDGE_M_PING = 1,
    BRIDGE_M_INFO = 2,
    BRIDGE_M_STREAM_START = 3,
    BRIDGE_M_STREAM_STOP = 4
};

/* Boot reasons (section 3.1). */
enum {
    BRIDGE_BOOT_POWER_ON = 0,
    BRIDGE_BOOT_RESET_PIN = 1,
    BRIDGE_BOOT_WATCHDOG = 2,
    BRIDGE_BOOT_SOFTWARE = 3,
    BRIDGE_BOOT_BROWN_OUT = 4,
    BRIDGE_BOOT_UNKNOWN = 255
};

typedef struct bridge bridge_t;

/* An RPC handler. args/args_len: the request arguments (after method_id).
 * Write at most result_cap bytes to result, set *result_len, return a status. */
typedef bridge_status_t (*bridge_handler_fn)(bridge_t *b, const uint8_t *args, size_t args_len,
                                             uint8_t *result, size_t result_cap,
                                             size_t *result_len);

typedef struct bridge_method {
    uint16_t id; /* application methods use ids from 0x100 */
    const char *name;
    bridge_handler_fn fn;
} bridge_method_t;

/* Fill one sample (sample_size bytes) as taken at device time t_us. */
typedef void (*bridge_sample_fn)(bridge_t *b, uint16_t stream_id, uint64_t t_us, uint8_t *out);

typedef struct bridge_stream_def {
    uint16_t id;
    const char *name;
    uint16_t sample_size;
    uint32_t max_rate_hz;
    bridge_sample_fn sample;
} bridge_stream_def_t;

/* A place bulk transfers can be written to (a firmware slot, a tensor buffer). */
typedef struct bridge_bulk_target {
    const char *name;
    uint32_t max_size;
    /* A new transfer starts (not called on resume). Return a status. */
    bridge_status_t (*begin)(void *ctx, uint32_t total, const uint8_t sha256[32]);
    /* Data in order: offset is always the previous offset + len. */
    bridge_status_t (*write)(void *ctx, uint32_t offset, const uint8_t *data, size_t len);
    /* All bytes arrived; status is BRIDGE_OK, BRIDGE_INTEGRITY or what digest() answered. */
    void (*end)(void *ctx, bridge_status_t status, uint32_t total, const uint8_t sha256[32]);
    void *ctx;
    /* Optional. A target that hashes what it stores itself (a hash engine fed by DMA, or the
     * flash read back) sets this: the library then leaves DATA unhashed and, after the last
     * byte, compares the announced SHA-256 with what this writes to out (the SHA-256 of bytes
     * 0..total). Any status other than BRIDGE_OK ends the transfer with that status. */
    bridge_status_t (*digest)(void *ctx, uint32_t total, uint8_t out[32]);
} bridge_bulk_target_t;

typedef struct bridge_config {
    const uint8_t *uid;
    uint8_t uid_len;                /* at most BRIDGE_UID_MAX */
    const char *fw_version;         /* at most BRIDGE_FW_VERSION_MAX bytes */
    uint8_t fw_sha256[32];
    uint8_t boot_reason;
    uint16_t frame_limit;           /* 0: BRIDGE_FRAME_MAX */
    uint32_t first_epoch;           /* epoch of the first HELLO minus one */
    const bridge_method_t *methods; /* the board's handler table */
    size_t n_methods;
    const bridge_stream_def_t *streams;
    size_t n_streams; /* at most BRIDGE_MAX_STREAMS */
    const bridge_bulk_target_t *bulk_targets;
    size_t n_bulk_targets;
    const uint8_t *auth_key; /* NULL: no authentication */
    size_t auth_key_len;
    /* Bulk credit in frames' worth of data (0: BRIDGE_BULK_CREDIT_FRAMES): what the device
     * can take ahead of its processing. A target that stores at link speed (RAM, a DMA-fed
     * buffer) can grant more than one behind slow flash; more credit means fewer WINDOWs. */
    uint16_t bulk_credit_frames;
} bridge_config_t;

/* Device-level counters beyond the decoder's. */
typedef struct bridge_stats {
    uint32_t rx_frames;
    uint32_t tx_frames;
    uint32_t tx_dropped;     /* port refused a frame */
    uint32_t auth_failures;  /* bad tag, replayed counter, missing trailer */
    uint32_t unsupported;    /* unknown channel or message type */
    uint32_t rpc_executed;
    uint32_t rpc_duplicates; /* answered from the response cache */
    uint32_t rpc_stale;
    uint32_t log_dropped;
} bridge_stats_t;

typedef struct bridge_rpc_entry {
    uint32_t call_id; /* 0: empty */
    uint16_t seq;
    uint16_t ack;
    uint16_t status;
    uint16_t len;
    uint8_t result[BRIDGE_RPC_RESULT_MAX];
} bridge_rpc_entry_t;

typedef struct bridge_stream_state {
    uint32_t rate_hz; /* 0: stopped */
    uint32_t sample_seq;
    uint32_t overruns;
    uint64_t start_us;
    uint64_t produced; /* samples accounted for since start */
} bridge_stream_state_t;

typedef struct bridge_bulk_state {
    uint8_t active;     /* a transfer is open or resumable */
    uint8_t done;       /* END sent; repeated on request */
    uint8_t target;
    uint16_t end_status;
    uint32_t id;
    uint32_t total;
    uint32_t offset;
    uint32_t granted;   /* offset + credit of the last WINDOW */
    uint8_t sha256[32];
    uint8_t name_len;
    char name[BRIDGE_BULK_NAME_MAX];
    bridge_sha256_t hash;
} bridge_bulk_state_t;

struct bridge {
    const bridge_config_t *cfg;
    bridge_port_t port;
    void *user;
    bridge_decoder_t dec;
    bridge_stats_t stats;
    /* session */
    uint32_t epoch;
    uint8_t in_session;
    uint8_t in_dispatch;   /* inside an RPC handler */
    uint8_t hello_pending; /* send an unsolicited HELLO after the current call */
    uint8_t boot_reason;
    uint16_t limit;        /* effective frame limit */
    uint16_t host_limit;
    uint8_t host_nonce[BRIDGE_NONCE_SIZE];
    uint8_t dev_nonce[BRIDGE_NONCE_SIZE];
    uint16_t tx_seq[BRIDGE_CH_COUNT];
    /* authentication */
    uint32_t rx_counter;
    uint32_t tx_counter;
    /* rpc */
    bridge_rpc_entry_t cache[BRIDGE_RPC_CACHE_ENTRIES];
    /* streams */
    bridge_stream_state_t streams[BRIDGE_MAX_STREAMS];
    /* bulk */
    bridge_bulk_state_t bulk;
    /* transmit buffers */
    uint8_t tx_body[BRIDGE_FRAME_MAX];
    uint8_t tx_wire[BRIDGE_WIRE_MAX(BRIDGE_FRAME_MAX)];
};

/* Returns 0, or -1 when the configuration is invalid (too many streams, uid
 * too long, frame limit out of range, missing port functions). */
int bridge_init(bridge_t *b, const bridge_config_t *cfg, const bridge_port_t *port, void *user);

/* The pointer given to bridge_init (for handlers). */
void *bridge_user(const bridge_t *b);

/* Feed received bytes; frames are handled (and answered) synchronously. */
void bridge_feed(bridge_t *b, const uint8_t *data, size_t len);

/* Emit due stream samples. Call often (at least every millisecond at 1 kHz). */
void bridge_poll(bridge_t *b);

/* Device time at which bridge_poll has work next, or UINT64_MAX. */
uint64_t bridge_next_deadline_us(const bridge_t *b);

/* The link went away (unplug, client disconnect): drop a partial frame, stop
 * streams, end the session. Bulk progress is kept for resume. */
void bridge_link_reset(bridge_t *b);

/* Send an unsolicited HELLO with a new epoch after the current RPC has been
 * answered (or now, outside a handler). Used after a software reboot. */
void bridge_request_hello(bridge_t *b, uint8_t boot_reason);

/* Send a LOG frame. level: 10 debug .. 50 critical. Returns 0, or -1 when the
 * link had no room (counted in log_dropped). */
int bridge_log(bridge_t *b, uint8_t level, const char *text, size_t len);

/* Current state of a stream, or NULL for an unknown id. */
const bridge_stream_state_t *bridge_stream_state(const bridge_t *b, uint16_t stream_id);

const bridge_stats_t *bridge_stats(const bridge_t *b);
const bridge_decoder_stats_t *bridge_decoder_stats(const bridge_t *b);
uint32_t bridge_epoch(const bridge_t *b);

#endif /* BRIDGE_H */
