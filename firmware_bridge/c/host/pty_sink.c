/* pty_sink: the raw pty's reader in C, for benchmarks/bench_bridge.py (the pty's ceiling
 * next to the Python reader's).
 *
 *   pty_sink TOTAL READ_SIZE
 *
 * Opens a pseudo-terminal the way bridge-virtual does (raw, the master end read here), prints
 * the path of its other end on the first line, reads TOTAL bytes from it READ_SIZE bytes at a
 * time, writes "k" back, and exits at the end of its standard input (so the benchmark decides
 * when the pty goes away). Exit 1 on a setup error, 2 when its standard input ended (the
 * benchmark gave up or died) or the link failed before TOTAL. */
#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static unsigned char buf[1u << 20];
    unsigned long long total, got = 0;
    size_t piece;
    const char *name;
    struct termios t;
    int master, slave;
    char c;

    if (argc != 3) {
        fprintf(stderr, "usage: pty_sink TOTAL READ_SIZE\n");
        return 1;
    }
    total = strtoull(argv[1], NULL, 10);
    piece = (size_t)strtoul(argv[2], NULL, 10);
    if (piece == 0 || piece > sizeof(buf)) {
        fprintf(stderr, "pty_sink: READ_SIZE must be 1..%zu\n", sizeof(buf));
        return 1;
    }
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
        (name = ptsname(master)) == NULL) {
        fprintf(stderr, "pty_sink: cannot open a pseudo-terminal: %s\n", strerror(errno));
        return 1;
    }
    slave = open(name, O_RDWR | O_NOCTTY);
    if (slave < 0 || tcgetattr(slave, &t) != 0) {
        fprintf(stderr, "pty_sink: cannot set up %s: %s\n", name, strerror(errno));
        return 1;
    }
    cfmakeraw(&t);
    if (tcsetattr(slave, TCSANOW, &t) != 0) {
        fprintf(stderr, "pty_sink: cannot set %s raw: %s\n", name, strerror(errno));
        return 1;
    }
    printf("%s\n", name);
    fflush(stdout);
    while (got < total) {
        struct pollfd p[2];
        ssize_t n;
        p[0].fd = master;
        p[0].events = POLLIN;
        p[1].fd = STDIN_FILENO;
        p[1].events = POLLIN;
        p[0].revents = p[1].revents = 0;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 2;
        }
        if (p[1].revents != 0 && read(STDIN_FILENO, &c, 1) <= 0) {
            fprintf(stderr, "pty_sink: stdin ended after %llu of %llu bytes\n", got, total);
            return 2;
        }
        if ((p[0].revents & (POLLIN | POLLERR | POLLHUP)) == 0) {
            continue;
        }
        n = read(master, buf, piece);
        if (n > 0) {
            got += (unsigned long long)n;
        } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        } else {
            fprintf(stderr, "pty_sink: link failed after %llu of %llu bytes\n", got, total);
            return 2;
        }
    }
    if (write(master, "k", 1) != 1) {
        return 2;
    }
    while (read(STDIN_FILENO, &c, 1) > 0) {
    }
    close(slave);
    close(master);
    return 0;
}
