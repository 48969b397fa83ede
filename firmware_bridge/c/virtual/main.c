/* bridge-virtual: the bridge device built from the library, served over a
 * pseudo-terminal (default) or a TCP socket on 127.0.0.1 (docs/protocol.md 9).
 *
 *   bridge-virtual [--pty] [--link PATH] [--tcp PORT] [--uid HEX] [--auth-key HEX]
 *                  [--frame-limit N] [--bulk-credit FRAMES] [--portable]
 *
 * --portable keeps the library's own CRC-32 and SHA-256 code; by default the CPU's
 * carry-less multiply and SHA instructions stand in for a board's CRC unit and hash engine
 * (accel.h), each checked against the portable code at start-up.
 *
 * The first line on stdout is the URL to connect to; after a simulated replug
 * (SIGUSR1) the new URL is printed on another line.
 */
#define _GNU_SOURCE 1

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "accel.h"

#define FW_VERSION "virtual-1.0.0"
#define RING_SIZE 65536u
#define RX_CHUNK 65536u
/* While reads keep bringing at least RX_AGAIN bytes (a bulk transfer streaming in), read
 * again straight away rather than through ppoll, up to RX_READS_MAX reads. */
#define RX_AGAIN 2048
#define RX_READS_MAX 16
#define SLOT_MAX (4u * 1024u * 1024u)
#define CONFIG_ENTRIES 16
#define CONFIG_KEY_MAX 15
#define CONFIG_VALUE_MAX 31
#define IMU_SAMPLE_SIZE 12
#define IMU_STREAM 1
#define PI 3.14159265358979323846

typedef struct config_entry {
    char key[CONFIG_KEY_MAX + 1];
    char value[CONFIG_VALUE_MAX + 1];
    uint8_t used;
} config_entry_t;

typedef struct vdev {
    /* link */
    int use_tcp;
    int master_fd; /* pty master, or the connected TCP client */
    int slave_fd;  /* kept open so the pty never hangs up between host opens */
    int listen_fd;
    int conn_fd;
    char slave_path[128];
    const char *link_path;
    int link_made;
    int urandom_fd;
    uint8_t ring[RING_SIZE];
    size_t ring_head;
    size_t ring_len;
    struct timespec t0;
    /* device model */
    config_entry_t config[CONFIG_ENTRIES];
    uint8_t led[3];
    int16_t motor[2];
    int16_t tilt_deg;
    uint64_t tilt_until_us;
    uint8_t slot[SLOT_MAX];
    uint32_t slot_size;
    uint8_t slot_sha256[32];
    uint8_t slot_valid;
    uint32_t slot_stored; /* bytes of the transfer in the slot so far */
    uint32_t slot_hashed; /* of those, bytes fed to slot_hash */
    bridge_sha256_t slot_hash;
    uint8_t uid[BRIDGE_UID_MAX];
    uint8_t uid_len;
    uint8_t auth_key[64];
    size_t auth_key_len;
    bridge_t bridge;
} vdev_t;

static vdev_t dev;
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t replug_requested;

/* ---- port layer -------------------------------------------------------- */

static int out_fd(void)
{
    return dev.use_tcp ? dev.conn_fd : dev.master_fd;
}

static void ring_flush(void)
{
    int fd = out_fd();
    while (dev.ring_len > 0 && fd >= 0) {
        size_t chunk = dev.ring_len;
        ssize_t n;
        if (dev.ring_head + chunk > RING_SIZE) {
            chunk = RING_SIZE - dev.ring_head;
        }
        n = write(fd, dev.ring + dev.ring_head, chunk);
        if (n <= 0) {
            return; /* EAGAIN: the host is not reading; poll says when to retry */
        }
        dev.ring_head = (dev.ring_head + (size_t)n) % RING_SIZE;
        dev.ring_len -= (size_t)n;
    }
}

static size_t port_write(void *ctx, const uint8_t *data, size_t len)
{
    size_t tail, first;
    (void)ctx;
    if (out_fd() < 0 || len > RING_SIZE - dev.ring_len) {
        return 0;
    }
    tail = (dev.ring_head + dev.ring_len) % RING_SIZE;
    first = len < RING_SIZE - tail ? len : RING_SIZE - tail;
    memcpy(dev.ring + tail, data, first);
    memcpy(dev.ring, data + first, len - first);
    dev.ring_len += len;
    ring_flush();
    return len;
}

static size_t port_write_space(void *ctx)
{
    (void)ctx;
    return out_fd() < 0 ? 0 : RING_SIZE - dev.ring_len;
}

static uint64_t port_now_us(void *ctx)
{
    struct timespec now;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - dev.t0.tv_sec) * 1000000u +
           (uint64_t)((now.tv_nsec - dev.t0.tv_nsec) / 1000) + 1u;
}

static void port_random(void *ctx, uint8_t *out, size_t len)
{
    size_t got = 0;
    (void)ctx;
    while (dev.urandom_fd >= 0 && got < len) {
        ssize_t n = read(dev.urandom_fd, out + got, len - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got < len) {
        fprintf(stderr, "bridge-virtual: no entropy source, exiting\n");
        exit(1);
    }
}

static void port_console(void *ctx, const uint8_t *line, size_t len)
{
    (void)ctx;
    fprintf(stderr, "bridge-virtual: console: %.*s", (int)len, (const char *)line);
}

/* ---- methods ----------------------------------------------------------- */

static config_entry_t *config_find(const uint8_t *key, size_t len)
{
    size_t i;
    for (i = 0; i < CONFIG_ENTRIES; i++) {
        if (dev.config[i].used && strlen(dev.config[i].key) == len &&
            memcmp(dev.config[i].key, key, len) == 0) {
            return &dev.config[i];
        }
    }
    return NULL;
}

static bridge_status_t m_config_get(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                    size_t cap, size_t *out_len)
{
    config_entry_t *e = config_find(args, n);
    size_t len;
    (void)b;
    if (e == NULL) {
        return BRIDGE_NOT_FOUND;
    }
    len = strlen(e->value);
    if (len > cap) {
        return BRIDGE_TOO_LARGE;
    }
    memcpy(out, e->value, len);
    *out_len = len;
    return BRIDGE_OK;
}

static bridge_status_t m_config_set(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                    size_t cap, size_t *out_len)
{
    size_t key_len, value_len, i;
    config_entry_t *e;
    (void)b;
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n < 1 || args[0] == 0 || (size_t)args[0] > n - 1) {
        return BRIDGE_BAD_ARGS;
    }
    key_len = args[0];
    value_len = n - 1 - key_len;
    if (key_len > CONFIG_KEY_MAX || value_len > CONFIG_VALUE_MAX) {
        return BRIDGE_TOO_LARGE;
    }
    if (memchr(args + 1, 0, n - 1) != NULL) {
        return BRIDGE_BAD_ARGS;
    }
    e = config_find(args + 1, key_len);
    for (i = 0; e == NULL && i < CONFIG_ENTRIES; i++) {
        if (!dev.config[i].used) {
            e = &dev.config[i];
        }
    }
    if (e == NULL) {
        return BRIDGE_TOO_LARGE;
    }
    memset(e, 0, sizeof(*e));
    memcpy(e->key, args + 1, key_len);
    memcpy(e->value, args + 1 + key_len, value_len);
    e->used = 1;
    return BRIDGE_OK;
}

static bridge_status_t m_config_list(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                     size_t cap, size_t *out_len)
{
    size_t i, len = 0;
    (void)b;
    (void)args;
    (void)n;
    for (i = 0; i < CONFIG_ENTRIES; i++) {
        size_t k, v;
        if (!dev.config[i].used) {
            continue;
        }
        k = strlen(dev.config[i].key);
        v = strlen(dev.config[i].value);
        if (len + k + v + 2 > cap) {
            return BRIDGE_TOO_LARGE;
        }
        memcpy(out + len, dev.config[i].key, k);
        out[len + k] = '=';
        memcpy(out + len + k + 1, dev.config[i].value, v);
        out[len + k + 1 + v] = '\n';
        len += k + v + 2;
    }
    *out_len = len;
    return BRIDGE_OK;
}

static bridge_status_t m_sim_tilt(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                  size_t cap, size_t *out_len)
{
    int16_t pitch;
    (void)b;
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n != 4) {
        return BRIDGE_BAD_ARGS;
    }
    pitch = (int16_t)bridge_get_u16(args);
    if (pitch < -180 || pitch > 180) {
        return BRIDGE_BAD_ARGS;
    }
    dev.tilt_deg = pitch;
    dev.tilt_until_us = port_now_us(NULL) + (uint64_t)bridge_get_u16(args + 2) * 1000u;
    return BRIDGE_OK;
}

static void log_text(bridge_t *b, uint8_t level, const char *text)
{
    (void)bridge_log(b, level, text, strlen(text));
}

static bridge_status_t m_led_set(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                 size_t cap, size_t *out_len)
{
    char text[64];
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n != 3) {
        return BRIDGE_BAD_ARGS;
    }
    memcpy(dev.led, args, 3);
    snprintf(text, sizeof(text), "led.set r=%u g=%u b=%u", args[0], args[1], args[2]);
    log_text(b, 20, text);
    return BRIDGE_OK;
}

static bridge_status_t m_motor_set(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                   size_t cap, size_t *out_len)
{
    char text[64];
    int16_t left, right;
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n != 4) {
        return BRIDGE_BAD_ARGS;
    }
    left = (int16_t)bridge_get_u16(args);
    right = (int16_t)bridge_get_u16(args + 2);
    if (left < -1000 || left > 1000 || right < -1000 || right > 1000) {
        return BRIDGE_BAD_ARGS;
    }
    dev.motor[0] = left;
    dev.motor[1] = right;
    snprintf(text, sizeof(text), "motor.set left=%d right=%d", left, right);
    log_text(b, 20, text);
    return BRIDGE_OK;
}

static bridge_status_t m_fw_slot(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                 size_t cap, size_t *out_len)
{
    (void)b;
    (void)args;
    if (n != 0) {
        return BRIDGE_BAD_ARGS;
    }
    if (cap < 37) {
        return BRIDGE_TOO_LARGE;
    }
    bridge_put_u32(out, dev.slot_size);
    memcpy(out + 4, dev.slot_sha256, 32);
    out[36] = dev.slot_valid;
    *out_len = 37;
    return BRIDGE_OK;
}

static bridge_status_t m_log_emit(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                  size_t cap, size_t *out_len)
{
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n < 1) {
        return BRIDGE_BAD_ARGS;
    }
    (void)bridge_log(b, args[0], (const char *)args + 1, n - 1);
    return BRIDGE_OK;
}

static bridge_status_t m_reboot(bridge_t *b, const uint8_t *args, size_t n, uint8_t *out,
                                size_t cap, size_t *out_len)
{
    (void)out;
    (void)cap;
    *out_len = 0;
    if (n != 1) {
        return BRIDGE_BAD_ARGS;
    }
    /* RAM state is lost on a reboot; the config store and slot are "flash". */
    memset(dev.led, 0, sizeof(dev.led));
    memset(dev.motor, 0, sizeof(dev.motor));
    dev.tilt_until_us = 0;
    bridge_request_hello(b, args[0]);
    return BRIDGE_OK;
}

static const bridge_method_t methods[] = {
    {0x100, "config.get", m_config_get}, {0x101, "config.set", m_config_set},
    {0x102, "config.list", m_config_list}, {0x110, "sim.tilt", m_sim_tilt},
    {0x120, "led.set", m_led_set},         {0x121, "motor.set", m_motor_set},
    {0x130, "fw.slot", m_fw_slot},         {0x140, "log.emit", m_log_emit},
    {0x150, "sys.reboot", m_reboot},
};

/* ---- IMU --------------------------------------------------------------- */

static int16_t clamp16(double v)
{
    v = v < 0 ? v - 0.5 : v + 0.5;
    if (v > 32767.0) {
        return 32767;
    }
    if (v < -32768.0) {
        return -32768;
    }
    return (int16_t)v;
}

/* Pitch wobbles +-2 degrees at 0.5 Hz around the sim.tilt pitch; gravity
 * (1000 milli-g) rotates with it; gy is the wobble's rate in centi-degrees/s. */
static void sample_imu(bridge_t *b, uint16_t id, uint64_t t_us, uint8_t *out)
{
    double t = (double)t_us / 1e6;
    double wobble = 2.0 * sin(PI * t);
    double pitch = wobble + (t_us < dev.tilt_until_us ? (double)dev.tilt_deg : 0.0);
    double rad = pitch * PI / 180.0;
    (void)b;
    (void)id;
    bridge_put_u16(out, (uint16_t)clamp16(-1000.0 * sin(rad)));
    bridge_put_u16(out + 2, 0);
    bridge_put_u16(out + 4, (uint16_t)clamp16(1000.0 * cos(rad)));
    bridge_put_u16(out + 6, 0);
    bridge_put_u16(out + 8, (uint16_t)clamp16(100.0 * 2.0 * PI * cos(PI * t)));
    bridge_put_u16(out + 10, 0);
}

static const bridge_stream_def_t streams[] = {
    {IMU_STREAM, "imu", IMU_SAMPLE_SIZE, 2000, sample_imu}};

/* ---- firmware slot ------------------------------------------------------ */

static bridge_status_t slot_begin(void *ctx, uint32_t total, const uint8_t sha[32])
{
    (void)ctx;
    (void)sha;
    dev.slot_valid = 0;
    dev.slot_size = 0;
    dev.slot_stored = 0;
    dev.slot_hashed = 0;
    bridge_sha256_init(&dev.slot_hash);
    memset(dev.slot_sha256, 0, sizeof(dev.slot_sha256));
    return total <= SLOT_MAX ? BRIDGE_OK : BRIDGE_TOO_LARGE;
}

/* The slot hashes what it stored, as a bootloader reading its flash back would (the library's
 * digest hook), and it does so while the link is idle: hashing each frame as it arrives kept
 * the device from reading its pty for ~12 us per 16 KiB frame, and the link stood still. The
 * main loop feeds the hash a frame's worth at a time whenever nothing waits to be read; what
 * is left when the last byte arrives is hashed then, before END. */
#define SLOT_HASH_CHUNK 16384u

/* Hash up to `budget` more stored bytes. */
static void slot_hash_some(uint32_t budget)
{
    uint32_t n = dev.slot_stored - dev.slot_hashed;
    if (n > budget) {
        n = budget;
    }
    bridge_sha256_update(&dev.slot_hash, dev.slot + dev.slot_hashed, n);
    dev.slot_hashed += n;
}

static bridge_status_t slot_digest(void *ctx, uint32_t total, uint8_t out[32])
{
    (void)ctx;
    if (dev.slot_stored != total) {
        return BRIDGE_INTERNAL;
    }
    slot_hash_some(UINT32_MAX);
    bridge_sha256_final(&dev.slot_hash, out);
    return BRIDGE_OK;
}

static bridge_status_t slot_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (offset > SLOT_MAX || len > SLOT_MAX - offset) {
        return BRIDGE_TOO_LARGE;
    }
    memcpy(dev.slot + offset, data, len);
    dev.slot_stored = offset + (uint32_t)len;
    return BRIDGE_OK;
}

static void slot_end(void *ctx, bridge_status_t status, uint32_t total, const uint8_t sha[32])
{
    (void)ctx;
    if (status == BRIDGE_OK) {
        dev.slot_size = total;
        memcpy(dev.slot_sha256, sha, 32);
        dev.slot_valid = 1;
    }
}

static const bridge_bulk_target_t targets[] = {
    {"fw0", SLOT_MAX, slot_begin, slot_write, slot_end, NULL, slot_digest}};

/* ---- link management --------------------------------------------------- */

static void on_signal(int sig)
{
    if (sig == SIGUSR1) {
        replug_requested = 1;
    } else {
        stop_requested = 1;
    }
}

static void announce(const char *url)
{
    printf("%s\n", url);
    fflush(stdout);
}

static int set_raw(int fd)
{
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) {
        return -1;
    }
    tio.c_iflag = 0;
    tio.c_oflag = 0;
    tio.c_lflag = 0;
    tio.c_cflag = (tio.c_cflag & ~(tcflag_t)(CSIZE | PARENB)) | CS8 | CREAD | CLOCAL;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &tio);
}

static int update_link(void)
{
    char tmp[4096];
    if (dev.link_path == NULL) {
        return 0;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", dev.link_path) >= sizeof(tmp)) {
        return -1;
    }
    (void)unlink(tmp);
    if (symlink(dev.slave_path, tmp) != 0 || rename(tmp, dev.link_path) != 0) {
        fprintf(stderr, "bridge-virtual: cannot link %s -> %s: %s\n", dev.link_path,
                dev.slave_path, strerror(errno));
        return -1;
    }
    dev.link_made = 1;
    return 0;
}

static int open_pty(void)
{
    char url[160];
    const char *name;
    dev.master_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (dev.master_fd < 0 || grantpt(dev.master_fd) != 0 || unlockpt(dev.master_fd) != 0 ||
        (name = ptsname(dev.master_fd)) == NULL) {
        fprintf(stderr, "bridge-virtual: cannot open a pseudo-terminal: %s\n", strerror(errno));
        return -1;
    }
    snprintf(dev.slave_path, sizeof(dev.slave_path), "%s", name);
    dev.slave_fd = open(dev.slave_path, O_RDWR | O_NOCTTY);
    if (dev.slave_fd < 0 || set_raw(dev.slave_fd) != 0) {
        fprintf(stderr, "bridge-virtual: cannot set up %s: %s\n", dev.slave_path,
                strerror(errno));
        return -1;
    }
    (void)fcntl(dev.master_fd, F_SETFL, fcntl(dev.master_fd, F_GETFL) | O_NONBLOCK);
    if (update_link() != 0) {
        return -1;
    }
    snprintf(url, sizeof(url), "serial://%s", dev.slave_path);
    announce(url);
    return 0;
}

static void close_pty(void)
{
    if (dev.slave_fd >= 0) {
        close(dev.slave_fd);
        dev.slave_fd = -1;
    }
    if (dev.master_fd >= 0) {
        close(dev.master_fd);
        dev.master_fd = -1;
    }
}

static int open_tcp(unsigned port)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int one = 1;
    char url[64];
    dev.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (dev.listen_fd < 0) {
        return -1;
    }
    (void)setsockopt(dev.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (bind(dev.listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(dev.listen_fd, 4) != 0 ||
        getsockname(dev.listen_fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "bridge-virtual: cannot listen on 127.0.0.1:%u: %s\n", port,
                strerror(errno));
        return -1;
    }
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", (unsigned)ntohs(addr.sin_port));
    announce(url);
    return 0;
}

static void link_lost(void)
{
    dev.ring_len = 0;
    dev.ring_head = 0;
    bridge_link_reset(&dev.bridge);
}

static void replug(void)
{
    struct timespec pause = {0, 200000000L};
    replug_requested = 0;
    if (dev.use_tcp) {
        if (dev.conn_fd >= 0) {
            close(dev.conn_fd);
            dev.conn_fd = -1;
        }
        link_lost();
        nanosleep(&pause, NULL);
        return;
    }
    close_pty();
    link_lost();
    nanosleep(&pause, NULL);
    if (open_pty() != 0) {
        stop_requested = 1;
    }
}

/* ---- command line ------------------------------------------------------- */

static int parse_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s), i;
    if (n == 0 || n % 2 != 0 || n / 2 > cap) {
        return -1;
    }
    for (i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1 || strchr("0123456789abcdefABCDEF", s[2 * i]) == NULL ||
            strchr("0123456789abcdefABCDEF", s[2 * i + 1]) == NULL) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    *len = n / 2;
    return 0;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "bridge-virtual: %s\n"
            "usage: bridge-virtual [--pty] [--link PATH] [--tcp PORT] [--uid HEX] "
            "[--auth-key HEX] [--frame-limit N] [--bulk-credit FRAMES] [--portable]\n",
            why);
    return 2;
}

int main(int argc, char **argv)
{
    static bridge_config_t cfg;
    bridge_port_t port;
    struct sigaction sa;
    sigset_t block, orig;
    long tcp_port = -1;
    long frame_limit = 1024;
    long bulk_credit = 0; /* 0: by frame size, see below */
    int portable = 0;
    int i;

    memset(&port, 0, sizeof(port));
    dev.master_fd = dev.slave_fd = dev.listen_fd = dev.conn_fd = -1;
    dev.uid_len = 8;
    memcpy(dev.uid, "\xe0\xd6\xe4\xc1\x00\x00\x00\x01", 8);

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t len = 0;
        char *end = NULL;
        if (strcmp(a, "--pty") == 0) {
            continue;
        }
        if (strcmp(a, "--portable") == 0) {
            portable = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: bridge-virtual [--pty] [--link PATH] [--tcp PORT] [--uid HEX] "
                   "[--auth-key HEX] [--frame-limit N] [--bulk-credit FRAMES] [--portable]\n");
            return 0;
        }
        if (v == NULL) {
            return usage("missing value or unknown option");
        }
        i++;
        if (strcmp(a, "--link") == 0) {
            struct stat st;
            if (lstat(v, &st) == 0 && !S_ISLNK(st.st_mode)) {
                return usage("--link PATH exists and is not a symlink; refusing to replace it");
            }
            dev.link_path = v;
        } else if (strcmp(a, "--tcp") == 0) {
            tcp_port = strtol(v, &end, 10);
            if (*end != '\0' || tcp_port < 0 || tcp_port > 65535) {
                return usage("--tcp needs a port number 0..65535 (0 picks a free port)");
            }
            dev.use_tcp = 1;
        } else if (strcmp(a, "--uid") == 0) {
            if (parse_hex(v, dev.uid, BRIDGE_UID_MAX, &len) != 0) {
                return usage("--uid needs 1 to 16 bytes of hex");
            }
            dev.uid_len = (uint8_t)len;
        } else if (strcmp(a, "--auth-key") == 0) {
            if (parse_hex(v, dev.auth_key, sizeof(dev.auth_key), &dev.auth_key_len) != 0) {
                return usage("--auth-key needs 1 to 64 bytes of hex");
            }
        } else if (strcmp(a, "--bulk-credit") == 0) {
            bulk_credit = strtol(v, &end, 10);
            if (*end != '\0' || bulk_credit < 1 || bulk_credit > 256) {
                fprintf(stderr, "bridge-virtual: --bulk-credit must be 1..256 frames\n");
                return 2;
            }
        } else if (strcmp(a, "--frame-limit") == 0) {
            frame_limit = strtol(v, &end, 10);
            if (*end != '\0' || frame_limit < (long)BRIDGE_FRAME_MIN_LIMIT ||
                frame_limit > (long)BRIDGE_FRAME_MAX) {
                fprintf(stderr, "bridge-virtual: --frame-limit must be %u..%u\n",
                        (unsigned)BRIDGE_FRAME_MIN_LIMIT, (unsigned)BRIDGE_FRAME_MAX);
                return 2;
            }
        } else {
            return usage("unknown option");
        }
    }

    if (!portable) {
        (void)sha256_accel_install(); /* the SHA extensions where the CPU has them */
        (void)crc32_accel_install();  /* carry-less multiply where the CPU has it */
    }
    clock_gettime(CLOCK_MONOTONIC, &dev.t0);
    dev.urandom_fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    cfg.uid = dev.uid;
    cfg.uid_len = dev.uid_len;
    cfg.fw_version = FW_VERSION;
    bridge_sha256((const uint8_t *)FW_VERSION, strlen(FW_VERSION), cfg.fw_sha256);
    cfg.boot_reason = BRIDGE_BOOT_POWER_ON;
    cfg.frame_limit = (uint16_t)frame_limit;
    /* UART-sized frames get the 4 frames a small board grants; USB-sized frames (4 KiB and
     * more) 16: the slot is RAM and stores at link speed, and each WINDOW costs both sides a
     * wake-up (16 instead of 4 frames: host CPU per 4 MiB upload -24 %, docs/benchmarks.md). */
    if (bulk_credit == 0) {
        bulk_credit = frame_limit >= 4096 ? 16 : 4;
    }
    cfg.bulk_credit_frames = (uint16_t)bulk_credit;
    cfg.methods = methods;
    cfg.n_methods = sizeof(methods) / sizeof(methods[0]);
    cfg.streams = streams;
    cfg.n_streams = sizeof(streams) / sizeof(streams[0]);
    cfg.bulk_targets = targets;
    cfg.n_bulk_targets = 1;
    if (dev.auth_key_len > 0) {
        cfg.auth_key = dev.auth_key;
        cfg.auth_key_len = dev.auth_key_len;
    }
    port.write = port_write;
    port.write_space = port_write_space;
    port.now_us = port_now_us;
    port.random = port_random;
    port.console = port_console;
    if (bridge_init(&dev.bridge, &cfg, &port, &dev) != 0) {
        fprintf(stderr, "bridge-virtual: invalid device configuration\n");
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &orig);

    if (dev.use_tcp ? open_tcp((unsigned)tcp_port) != 0 : open_pty() != 0) {
        return 1;
    }

    while (!stop_requested) {
        struct pollfd fds[1];
        struct timespec timeout;
        struct timespec *tp = NULL;
        uint64_t deadline, now;
        int fd, rc;

        if (replug_requested) {
            replug();
            continue;
        }
        if (dev.use_tcp && dev.conn_fd < 0) {
            fds[0].fd = dev.listen_fd;
            fds[0].events = POLLIN;
        } else {
            fds[0].fd = out_fd();
            fds[0].events = POLLIN | (dev.ring_len > 0 ? POLLOUT : 0);
        }
        fds[0].revents = 0;
        deadline = bridge_next_deadline_us(&dev.bridge);
        if (deadline != UINT64_MAX) {
            now = port_now_us(NULL);
            deadline = deadline > now ? deadline - now : 0;
            timeout.tv_sec = (time_t)(deadline / 1000000u);
            timeout.tv_nsec = (long)(deadline % 1000000u) * 1000L;
            tp = &timeout;
        }
        if (dev.slot_hashed < dev.slot_stored) {
            /* slot bytes wait to be hashed: only when nothing waits to be read */
            struct timespec zero = {0, 0};
            rc = ppoll(fds, 1, &zero, &orig);
            if (rc == 0) {
                slot_hash_some(SLOT_HASH_CHUNK); /* then on as after a timeout: streams */
            }
        } else {
            rc = ppoll(fds, 1, tp, &orig);
        }
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "bridge-virtual: poll: %s\n", strerror(errno));
            break;
        }
        fd = fds[0].fd;
        if (dev.use_tcp && dev.conn_fd < 0) {
            if (fds[0].revents & POLLIN) {
                int one = 1;
                dev.conn_fd = accept(dev.listen_fd, NULL, NULL);
                if (dev.conn_fd >= 0) {
                    (void)fcntl(dev.conn_fd, F_SETFL, fcntl(dev.conn_fd, F_GETFL) | O_NONBLOCK);
                    (void)setsockopt(dev.conn_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                }
            }
            continue;
        }
        if (fds[0].revents & POLLIN) {
            /* Drain what is there: a pty hands over a few KiB per read, and while a bulk
             * transfer streams in, more has come by the time one read is decoded, so read
             * again at once (a bounded number of times, so streams stay on time). */
            static uint8_t rx[RX_CHUNK];
            ssize_t n;
            int reads = 0;
            do {
                n = read(fd, rx, sizeof(rx));
                if (n > 0) {
                    bridge_feed(&dev.bridge, rx, (size_t)n);
                }
            } while (n >= RX_AGAIN && ++reads < RX_READS_MAX);
            if (n <= 0 && dev.use_tcp && (n == 0 || (errno != EAGAIN && errno != EINTR))) {
                close(dev.conn_fd);
                dev.conn_fd = -1;
                link_lost();
                continue;
            }
        } else if (dev.use_tcp && (fds[0].revents & (POLLHUP | POLLERR))) {
            close(dev.conn_fd);
            dev.conn_fd = -1;
            link_lost();
            continue;
        }
        if (fds[0].revents & POLLOUT) {
            ring_flush();
        }
        bridge_poll(&dev.bridge);
    }

    close_pty();
    if (dev.conn_fd >= 0) {
        close(dev.conn_fd);
    }
    if (dev.listen_fd >= 0) {
        close(dev.listen_fd);
    }
    if (dev.link_made) {
        (void)unlink(dev.link_path);
    }
    return 0;
}
