/* The C frame encoder for the Python host (firmware_bridge/_native.py loads it with ctypes
 * when it has been built): CRC-32 with carry-less multiply where the CPU has it, COBS with
 * memchr and memcpy. On a 16 KiB bulk frame it is about three times faster than zlib.crc32
 * plus the cobs extension; the host works the same without it. bridge_host_send_bulk also
 * writes the frames it encodes, so a whole window of bulk data costs Python one call. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "accel.h"
#include "bridge_codec.h"

/* The accelerator this library uses for CRC-32 (after checking it). */
const char *bridge_host_init(void)
{
    return crc32_accel_install();
}

/* Frame one body: body[len..len+4) receives its CRC-32 (the caller leaves room), then
 * COBS(body || crc) and the 0x00 delimiter go to out. Returns the bytes written, or 0 when
 * cap is too small. */
size_t bridge_host_encode(uint8_t *body, size_t len, uint8_t *out, size_t cap)
{
    size_t n;
    if (cap < 2u) {
        return 0;
    }
    bridge_put_u32(body + len, bridge_crc32(0, body, len));
    n = bridge_cobs_encode(body, len + BRIDGE_CRC_SIZE, out, cap - 1u);
    if (n == 0) {
        return 0;
    }
    out[n] = 0;
    return n + 1u;
}

#define BULK_HEAD 16u /* the 12-byte header and the offset */
#define WIRE_MAX (BULK_HEAD + BRIDGE_FRAME_MAX + BRIDGE_CRC_SIZE + BRIDGE_FRAME_MAX / 254u + 8u)
/* Frames encoded ahead of the link: a pty or a UART driver takes a write of several frames at
 * once when its reader keeps up, and every write(2) costs the same whatever it carries. */
#define WIRES_AHEAD 4u

typedef struct scratch {
    uint8_t body[BULK_HEAD + BRIDGE_FRAME_MAX + BRIDGE_CRC_SIZE];
    uint8_t out[WIRES_AHEAD * WIRE_MAX];
} scratch_t;

typedef struct bulk_job {
    const uint8_t *data;
    size_t len;
    size_t done; /* bytes of data encoded */
    uint32_t offset;
    size_t chunk;
    uint8_t version, channel, type;
    uint16_t seq;
    uint32_t id;
    uint32_t frames;
} bulk_job_t;

/* The scratch memory bridge_host_send_bulk needs. */
size_t bridge_host_scratch_size(void)
{
    return sizeof(scratch_t);
}

/* Encode the next frame of the job to out (room for WIRE_MAX bytes); its length, 0 on error. */
static size_t encode_next(bulk_job_t *job, scratch_t *sc, uint8_t *out)
{
    size_t n = job->len - job->done;
    uint8_t *b = sc->body;
    size_t wire;
    if (n > job->chunk) {
        n = job->chunk;
    }
    b[0] = job->version;
    b[1] = 0; /* flags */
    b[2] = job->channel;
    b[3] = job->type;
    bridge_put_u16(b + 4, job->seq);
    bridge_put_u16(b + 6, 0); /* ack */
    bridge_put_u32(b + 8, job->id);
    bridge_put_u32(b + 12, job->offset + (uint32_t)job->done);
    memcpy(b + BULK_HEAD, job->data + job->done, n);
    wire = bridge_host_encode(b, BULK_HEAD + n, out, WIRE_MAX);
    if (wire == 0) {
        return 0; /* cannot happen with these sizes */
    }
    job->done += n;
    job->seq = (uint16_t)(job->seq + 1u);
    job->frames++;
    return wire;
}

/* Encode one more frame after out[head..tail) when data and room are left (moving what is
 * still unwritten to the front first if that makes room): 1 when it did, 0 when not, -1 on an
 * encoding error. */
static int encode_more(bulk_job_t *job, scratch_t *sc, size_t *head, size_t *tail)
{
    size_t w;
    if (job->done >= job->len) {
        return 0;
    }
    if (sizeof(sc->out) - *tail < WIRE_MAX && *head > 0) {
        memmove(sc->out, sc->out + *head, *tail - *head);
        *tail -= *head;
        *head = 0;
    }
    if (sizeof(sc->out) - *tail < WIRE_MAX) {
        return 0;
    }
    w = encode_next(job, sc, sc->out + *tail);
    if (w == 0) {
        return -1;
    }
    *tail += w;
    return 1;
}

/* Frame data[0..len) as bulk DATA frames of up to `chunk` bytes each (the header of each:
 * version, flags 0, channel, type, seq counting up from `seq`, ack 0, id, then the offset of
 * its first byte, starting at `offset`) and write them to the non-blocking descriptor fd as
 * the link takes them: up to WIRES_AHEAD frames are encoded ahead and go out together, and
 * while the link is full poll() waits for room, at most timeout_ms at a time. Returns 0 when
 * all was written, -ETIMEDOUT when the link took nothing for timeout_ms, -EIO on a hang-up,
 * -errno when write or poll failed, -EINVAL (before sending anything) for a chunk over the
 * frame size; *frames receives the number of frames encoded (the seqs used), also on
 * failure. scratch is the caller's memory of bridge_host_scratch_size() bytes, aligned for
 * any type (one per sender, so that two senders never share it); nothing is kept between
 * calls. */
int bridge_host_send_bulk(int fd, const uint8_t *data, size_t len, uint32_t offset, size_t chunk,
                          uint8_t version, uint8_t channel, uint8_t type, uint16_t seq,
                          uint32_t id, int timeout_ms, uint32_t *frames, void *scratch)
{
    scratch_t *sc = (scratch_t *)scratch;
    bulk_job_t job;
    size_t head = 0; /* out[head..tail) is encoded and not yet written */
    size_t tail = 0;
    int rc = 0;

    *frames = 0;
    if (chunk == 0 || chunk > BRIDGE_FRAME_MAX) {
        return -EINVAL;
    }
    memset(&job, 0, sizeof(job));
    job.data = data;
    job.len = len;
    job.offset = offset;
    job.chunk = chunk;
    job.version = version;
    job.channel = channel;
    job.type = type;
    job.seq = seq;
    job.id = id;
    for (;;) {
        ssize_t n;
        int more;
        if (head == tail) { /* nothing waiting: the next frame, or done */
            head = tail = 0;
            more = encode_more(&job, sc, &head, &tail);
            if (more <= 0) {
                rc = more < 0 ? -EINVAL : 0;
                break;
            }
        }
        n = write(fd, sc->out + head, tail - head);
        if (n > 0) {
            head += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            break;
        }
        /* The link is full: encode ahead while there is room, then wait. */
        more = encode_more(&job, sc, &head, &tail);
        if (more < 0) {
            rc = -EINVAL;
            break;
        }
        if (more > 0) {
            continue;
        }
        {
            struct pollfd p;
            int r;
            p.fd = fd;
            p.events = POLLOUT;
            p.revents = 0;
            r = poll(&p, 1, timeout_ms);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r < 0) {
                rc = -errno;
                break;
            }
            if (r == 0) {
                rc = -ETIMEDOUT;
                break;
            }
            if ((p.revents & POLLOUT) == 0) {
                rc = -EIO; /* hang-up or error with no room to write */
                break;
            }
        }
    }
    *frames = job.frames;
    return rc;
}

/* Write data[0..len) to the non-blocking descriptor fd as it takes it, unframed, with the
 * write and poll() loop of bridge_host_send_bulk: the raw pty's writer in C, the baseline
 * benchmarks set the bulk path against. Returns 0, -ETIMEDOUT when the link took nothing for
 * timeout_ms, -EIO on a hang-up, or -errno. */
int bridge_host_write_raw(int fd, const uint8_t *data, size_t len, int timeout_ms)
{
    size_t done = 0;
    while (done < len) {
        struct pollfd p;
        int r;
        ssize_t n = write(fd, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return -errno;
        }
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -errno;
        }
        if (r == 0) {
            return -ETIMEDOUT;
        }
        if ((p.revents & POLLOUT) == 0) {
            return -EIO;
        }
    }
    return 0;
}

static void count_frame(void *ctx, const bridge_header_t *h, uint8_t *body, size_t len)
{
    (void)h;
    (void)body;
    (void)len;
    ++*(long *)ctx;
}

/* The bytes of scratch memory bridge_host_decode needs. */
size_t bridge_host_decoder_size(void)
{
    return sizeof(bridge_decoder_t);
}

/* Feed wire[0..len) to a fresh streaming decoder (the device's own code) in pieces of `piece`
 * bytes, as reads would bring them, with frames of up to `limit` bytes. Returns the frames it
 * decoded, or -1 when any segment was bad (a COBS, CRC, version or size error). Lets the
 * benchmark time the device's share of the framing work on the host. decoder is the caller's
 * memory of bridge_host_decoder_size() bytes, aligned for any type. */
long bridge_host_decode(const uint8_t *wire, size_t len, size_t limit, size_t piece, void *decoder)
{
    bridge_decoder_t *d = (bridge_decoder_t *)decoder;
    long frames = 0;
    size_t at = 0;
    if (piece == 0) {
        return -1;
    }
    bridge_decoder_init(d, limit, count_frame, NULL, &frames);
    while (at < len) {
        size_t n = len - at < piece ? len - at : piece;
        bridge_decoder_feed(d, wire + at, n);
        at += n;
    }
    if (d->stats.cobs_errors || d->stats.crc_errors || d->stats.bad_version ||
        d->stats.oversize || d->stats.short_frames) {
        return -1;
    }
    return frames;
}
