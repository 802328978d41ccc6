/*
 * floor.c -- probe-floor: the cheapest possible prober, the benchmark's "floor".
 *
 * The benchmark (bench/bench.py) charges the agent its CPU per probe. Part of that price is
 * not the agent's to cut: the kernel's share of one loopback TCP round trip (write, the
 * peer's wake-up, the reply's delivery, epoll, read). This program pays only that share: one
 * persistent TCP connection per instance (nonblocking, TCP_NODELAY like hiredis), one probe
 * per connection per interval, the replies read back, and nothing else -- no hiredis, no
 * timers beyond epoll_wait's timeout, no allocation once the loop runs. bench.py runs it on
 * the agent's farm, against the agent's instance list, and measures it exactly as it measures
 * the agent, so the agent's figure can be read against what a bare client costs on the same
 * machine in the same run.
 *
 * A probe is the bytes the agent writes (agent/probe.c): by default (--mode pingrole)
 * `*1\r\n$4\r\nROLE\r\n*1\r\n$4\r\nPING\r\n` in one write, and it ends when both replies
 * are in: ROLE's (an array, nested for a master with replicas) then `+PONG\r\n`. The replies
 * go through a small streaming RESP2 parser kept per connection (fixed-size state, arrays
 * nested at most MAX_DEPTH deep, bulk strings skipped without being copied). --mode ping
 * sends `*1\r\n$4\r\nPING\r\n` alone, the floor as it was before the agent sent ROLE, for
 * comparison: the difference between the two is what ROLE costs a client (and, measured on
 * the redis-servers, what it costs Redis).
 *
 *     probe-floor [--interval-ms MS] [--slots S] [--mode pingrole|ping] ADDR_FILE
 *
 * ADDR_FILE: one `host:port` per line, one line (hence one connection) per instance; blank
 * lines and lines starting with '#' are skipped. --slots 1 (the default) sends all N probes
 * at the start of each interval, in file order ("burst"); --slots S splits the connections
 * into S consecutive groups and sends group j at j * interval / S, as an agent spreading
 * its probes over the interval would.
 *
 * Once every connection is up it prints a JSON line of counters (all zero, "event":
 * "connected") on stdout: from then on it handles signals. It runs until SIGTERM or SIGINT,
 * then prints the line ("event": "exit") and exits 0. SIGUSR1 prints it ("event":
 * "counters") and carries on: the probes of a measurement window are the difference of
 * two such lines. A connection that fails (connect error, EOF, reset, short write) is
 * reported on stderr and the program exits 1: a floor measured over fewer connections than
 * asked would be silently too low.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAIL  1
#define EXIT_USAGE 64 /* EX_USAGE, as the agent */
#define MAX_EVENTS 1024
#define READ_BUF   4096
#define MAX_DEPTH  4 /* ROLE nests two deep (a master's replicas); more is a protocol error */

/* The agent's order (agent/probe.c, probe_start): ROLE, then PING, whose reply ends it. */
static const char PROBE_PINGROLE[] = "*1\r\n$4\r\nROLE\r\n*1\r\n$4\r\nPING\r\n";
static const char PROBE_PING[] = "*1\r\n$4\r\nPING\r\n";
static const char PONG[] = "PONG"; /* the simple string that ends a probe */
#define PONG_LEN (sizeof(PONG) - 1)
#define NO_MATCH 0xff /* resp.match: the simple string is not PONG */

enum { MODE_PINGROLE, MODE_PING };
static const char *const mode_names[] = {"pingrole", "ping"};

/* The streaming RESP2 parser's state, one per connection: no allocation, bounded depth. */
enum { R_TYPE, R_LINE, R_NUM, R_BULK };
struct resp {
    uint8_t state;           /* R_*: what the next byte belongs to */
    uint8_t type;            /* type byte of the element being read */
    uint8_t top;             /* type byte of the top-level reply being read */
    uint8_t match;           /* bytes of PONG matched by a top-level simple string, or NO_MATCH */
    uint8_t depth;           /* arrays open */
    uint8_t neg;             /* R_NUM: a '-' was read (a null bulk or array) */
    int64_t num;             /* R_NUM: the length being read; R_BULK: bytes left, CRLF included */
    int64_t left[MAX_DEPTH]; /* elements still due in each open array */
};

struct conn {
    int fd;
    struct resp r;
    uint8_t nth;          /* top-level replies of the current probe already complete */
    unsigned outstanding; /* probes sent, final (PING) reply not yet complete */
    const char *addr;     /* the ADDR_FILE line, for messages */
};

/* What the program counts; printed as one JSON line. */
struct counters {
    uint64_t sent;         /* probes written (one write each) */
    uint64_t replies;      /* probes complete: +PONG received (after ROLE's reply in pingrole) */
    uint64_t role_replies; /* ROLE replies received (an array) */
    uint64_t errors;       /* any other reply (-ERR, -LOADING, a ROLE that is not an array...) */
    uint64_t short_reads;  /* reads that ended inside a probe's replies (the rest came later) */
    uint64_t overdue;      /* probes sent while the connection's previous one was unanswered */
    uint64_t skipped;      /* probes not sent: the loop was more than an interval late */
    uint64_t periods;      /* intervals begun */
};

static int mode = MODE_PINGROLE;
static const char *probe_bytes = PROBE_PINGROLE;
static size_t probe_len = sizeof(PROBE_PINGROLE) - 1;
static uint8_t replies_per_probe = 2;

/* Group G of S holds connections [group_lo(G), group_lo(G + 1)) of the N. */
static size_t
group_lo(unsigned g, unsigned slots, size_t n)
{
    return (size_t)((uint64_t)g * n / slots);
}

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t dump_requested;

static void
on_signal(int sig)
{
    if (sig == SIGUSR1)
        dump_requested = 1;
    else
        stop_requested = 1;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: probe-floor [--interval-ms MS] [--slots S] [--mode M] ADDR_FILE\n"
               "  --interval-ms MS  one probe per connection every MS ms (default 1000)\n"
               "  --slots S         send in S groups spread over the interval (default 1: "
               "all at once)\n"
               "  --mode M          pingrole (default): ROLE and PING in one write, as the "
               "agent;\n"
               "                    ping: PING alone\n"
               "ADDR_FILE holds one host:port per line, one connection each.\n"
               "SIGUSR1 prints the counters so far; SIGTERM or SIGINT prints them and exits.\n");
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
print_counters(const struct counters *c, size_t nconn, unsigned slots, long interval_ms,
               const char *event)
{
    printf("{\"event\": \"%s\", \"mode\": \"%s\", \"probe_bytes\": %zu, \"connections\": %zu, "
           "\"slots\": %u, \"interval_ms\": %ld, "
           "\"sent\": %" PRIu64 ", \"replies\": %" PRIu64 ", \"role_replies\": %" PRIu64
           ", \"errors\": %" PRIu64 ", \"short_reads\": %" PRIu64 ", \"overdue\": %" PRIu64
           ", \"skipped\": %" PRIu64 ", \"periods\": %" PRIu64 "}\n",
           event, mode_names[mode], probe_len, nconn, slots, interval_ms, c->sent, c->replies,
           c->role_replies, c->errors, c->short_reads, c->overdue, c->skipped, c->periods);
    fflush(stdout);
}

/* The soft fd limit up to the hard one: N connections need N fds. */
static void
raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            fprintf(stderr, "probe-floor: setrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
    }
}

static int
parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads ADDR_FILE into *addrs (one string per instance). Start-up only. */
static size_t
read_addrs(const char *path, char ***addrs)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "probe-floor: %s: %s\n", path, strerror(errno));
        exit(EXIT_FAIL);
    }
    char *line = NULL;
    size_t cap = 0, n = 0, max = 0;
    ssize_t len;
    char **v = NULL;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (n == max) {
            max = max ? 2 * max : 1024;
            v = realloc(v, max * sizeof(*v));
            if (v == NULL) {
                perror("probe-floor: realloc");
                exit(EXIT_FAIL);
            }
        }
        v[n] = strdup(line);
        if (v[n] == NULL) {
            perror("probe-floor: strdup");
            exit(EXIT_FAIL);
        }
        n++;
    }
    free(line);
    fclose(f);
    *addrs = v;
    return n;
}

/*
 * A blocking connect to ADDR ("host:port", "[v6]:port"), then nonblocking and TCP_NODELAY
 * as hiredis sets its sockets. Blocking keeps start-up simple and never overflows a
 * server's accept queue; it is done before the measured loop begins.
 */
static int
connect_addr(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hlen = colon ? (size_t)(colon - addr) : 0;
    if (colon == NULL || hlen == 0 || hlen >= sizeof(host) || colon[1] == '\0') {
        fprintf(stderr, "probe-floor: %s: not host:port\n", addr);
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "probe-floor: %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "probe-floor: connect %s: %s\n", addr, strerror(err));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        fprintf(stderr, "probe-floor: %s: socket options: %s\n", addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A connection failed: say which and how, print what was counted, and exit non-zero. */
static void
fail_conn(const struct conn *c, size_t idx, const char *what, const struct counters *cnt,
          size_t nconn, unsigned slots, long interval_ms)
{
    fprintf(stderr, "probe-floor: connection %zu (%s): %s\n", idx, c->addr, what);
    print_counters(cnt, nconn, slots, interval_ms, "exit");
    exit(EXIT_FAIL);
}

/*
 * One probe on C, in one write. 0 if sent; 1 if the socket buffer is full (not sent, counted
 * as an error); -1 if the connection failed, with *WHY saying how.
 */
static int
send_probe(struct conn *c, struct counters *cnt, const char **why)
{
    ssize_t w = write(c->fd, probe_bytes, probe_len);
    if (w == (ssize_t)probe_len) {
        if (c->outstanding > 0)
            cnt->overdue++;
        c->outstanding++;
        cnt->sent++;
        return 0;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        cnt->errors++;
        return 1;
    }
    /* An error, or a short write: the rest of the command would have to follow, and a
     * prober that far behind is not what is being measured. */
    *why = w < 0 ? strerror(errno) : "short write";
    return -1;
}

/* A top-level reply is complete: ROLE's (the first of a pingrole probe) or PING's (the last). */
static void
reply_done(struct conn *c, struct counters *cnt)
{
    const struct resp *r = &c->r;
    if (++c->nth < replies_per_probe) {
        if (r->top == '*')
            cnt->role_replies++;
        else
            cnt->errors++;
        return;
    }
    c->nth = 0;
    if (r->top == '+' && r->match == PONG_LEN)
        cnt->replies++;
    else
        cnt->errors++;
    if (c->outstanding > 0)
        c->outstanding--;
}

/* An element is complete: close the arrays it completes; a top-level one ends a reply. */
static void
element_done(struct conn *c, struct counters *cnt)
{
    struct resp *r = &c->r;
    r->state = R_TYPE;
    while (r->depth > 0) {
        if (--r->left[r->depth - 1] > 0)
            return;
        r->depth--;
    }
    reply_done(c, cnt);
}

/*
 * Feeds LEN bytes read from C to its RESP2 parser, counting the probes whose replies are
 * complete. 0, or -1 with *WHY set if the bytes are not RESP2 (or nest deeper than
 * MAX_DEPTH): a floor that lost track of its replies would measure nothing true.
 */
static int
parse_replies(struct conn *c, const char *buf, size_t len, struct counters *cnt, const char **why)
{
    struct resp *r = &c->r;
    size_t i = 0;
    while (i < len) {
        char ch = buf[i];
        switch (r->state) {
        case R_TYPE:
            r->type = (uint8_t)ch;
            if (r->depth == 0) {
                r->top = (uint8_t)ch;
                r->match = 0;
            }
            if (ch == '+' || ch == '-' || ch == ':') {
                r->state = R_LINE;
            } else if (ch == '$' || ch == '*') {
                r->state = R_NUM;
                r->num = 0;
                r->neg = 0;
            } else {
                *why = "not a RESP2 reply";
                return -1;
            }
            i++;
            break;
        case R_LINE:
            /* Up to the line's end; a top-level simple string is matched against PONG. */
            if (ch == '\n') {
                element_done(c, cnt);
            } else if (ch != '\r' && r->depth == 0 && r->type == '+' && r->match != NO_MATCH) {
                r->match = r->match < PONG_LEN && ch == PONG[r->match] ? r->match + 1 : NO_MATCH;
            }
            i++;
            break;
        case R_NUM:
            if (ch >= '0' && ch <= '9') {
                if (r->num > INT32_MAX) {
                    *why = "RESP2 length too large";
                    return -1;
                }
                r->num = r->num * 10 + (ch - '0');
            } else if (ch == '-') {
                r->neg = 1;
            } else if (ch == '\n') {
                if (r->neg || r->num == 0) {
                    if (r->type == '$' && !r->neg) {
                        r->state = R_BULK; /* $0: an empty string, then its CRLF */
                        r->num = 2;
                    } else {
                        element_done(c, cnt); /* a null, or an empty array */
                    }
                } else if (r->type == '$') {
                    r->state = R_BULK;
                    r->num += 2; /* the data, then its CRLF */
                } else {
                    if (r->depth == MAX_DEPTH) {
                        *why = "RESP2 arrays nested too deep";
                        return -1;
                    }
                    r->left[r->depth++] = r->num;
                    r->state = R_TYPE;
                }
            } else if (ch != '\r') {
                *why = "bad RESP2 length";
                return -1;
            }
            i++;
            break;
        default: { /* R_BULK: skipped, not copied */
            size_t take = len - i < (uint64_t)r->num ? len - i : (size_t)r->num;
            i += take;
            r->num -= (int64_t)take;
            if (r->num == 0)
                element_done(c, cnt);
            break;
        }
        }
    }
    if (r->state != R_TYPE || r->depth > 0 || c->nth > 0)
        cnt->short_reads++;
    return 0;
}

int
main(int argc, char **argv)
{
    long interval_ms = 1000, slots_l = 1;
    static const struct option opts[] = {
        {"interval-ms", required_argument, NULL, 'i'},
        {"slots", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "i:s:m:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            if (parse_long(optarg, 1, 3600 * 1000, &interval_ms) != 0) {
                fprintf(stderr, "probe-floor: bad --interval-ms %s\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 's':
            if (parse_long(optarg, 1, 1000000, &slots_l) != 0) {
                fprintf(stderr, "probe-floor: bad --slots %s\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'm':
            if (strcmp(optarg, "pingrole") == 0) {
                mode = MODE_PINGROLE;
                probe_bytes = PROBE_PINGROLE;
                probe_len = sizeof(PROBE_PINGROLE) - 1;
                replies_per_probe = 2;
            } else if (strcmp(optarg, "ping") == 0) {
                mode = MODE_PING;
                probe_bytes = PROBE_PING;
                probe_len = sizeof(PROBE_PING) - 1;
                replies_per_probe = 1;
            } else {
                fprintf(stderr, "probe-floor: bad --mode %s (pingrole or ping)\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const unsigned slots = (unsigned)slots_l;

    raise_nofile();
    char **addrs;
    const size_t n = read_addrs(argv[optind], &addrs);
    if (n == 0) {
        fprintf(stderr, "probe-floor: %s: no addresses\n", argv[optind]);
        return EXIT_FAIL;
    }

    /*
     * Signals are blocked except inside epoll_pwait, so a SIGTERM can never slip in between
     * the check of the flag and the wait (and sleep a whole timeout); it interrupts the wait.
     */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGUSR1);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a dead peer is a write error, reported, not a crash */

    /* All connections and all memory before the loop; nothing is allocated in it. */
    struct conn *conns = calloc(n, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || ep < 0) {
        perror("probe-floor: start-up");
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        conns[i].addr = addrs[i];
        conns[i].fd = connect_addr(addrs[i]);
        if (conns[i].fd < 0)
            return EXIT_FAIL;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) {
            fprintf(stderr, "probe-floor: epoll_ctl %s: %s\n", addrs[i], strerror(errno));
            return EXIT_FAIL;
        }
    }
    static struct epoll_event events[MAX_EVENTS];
    static char buf[READ_BUF];
    struct counters cnt = {0};
    print_counters(&cnt, n, slots, interval_ms, "connected");

    /*
     * The schedule: group g (connections [g*n/S, (g+1)*n/S)) of period p is due at
     * t0 + p*interval + g*interval/S, on a fixed grid, so lateness never accumulates. A
     * group found more than a whole interval late is skipped (and counted), not sent in a
     * catch-up burst that no prober would make.
     */
    const int64_t interval_ns = (int64_t)interval_ms * 1000000;
    const int64_t t0 = now_ns();
    uint64_t period = 0;
    unsigned group = 0;
    while (group_lo(group, slots, n) == group_lo(group + 1, slots, n))
        group++; /* with S > N some groups are empty: they get no wake-up of their own */
    for (;;) {
        if (stop_requested)
            break;
        if (dump_requested) {
            dump_requested = 0;
            print_counters(&cnt, n, slots, interval_ms, "counters");
        }

        /* Send every group that is due; then sleep until the next one is. */
        int64_t now = now_ns(), due;
        while ((due = t0 + (int64_t)period * interval_ns +
                      (int64_t)group * interval_ns / (int64_t)slots) <= now) {
            size_t lo = group_lo(group, slots, n), hi = group_lo(group + 1, slots, n);
            cnt.periods = period + 1;
            if (now - due >= interval_ns) {
                cnt.skipped += hi - lo;
            } else {
                for (size_t i = lo; i < hi; i++) {
                    const char *why;
                    if (send_probe(&conns[i], &cnt, &why) < 0)
                        fail_conn(&conns[i], i, why, &cnt, n, slots, interval_ms);
                }
            }
            do {
                if (++group == slots) {
                    group = 0;
                    period++;
                }
            } while (group_lo(group, slots, n) == group_lo(group + 1, slots, n));
        }

        /*
         * Round the wait up to whole milliseconds: rounding down would return before the
         * group is due and spin on a zero timeout until it is; rounding up sends a group at
         * most 1 ms late, and since the grid is fixed the lateness never adds up.
         */
        int64_t wait_ns = due - now;
        int64_t wait_ms = (wait_ns + 999999) / 1000000;
        int timeout = wait_ms > INT_MAX ? INT_MAX : (int)wait_ms;
        int nev = epoll_pwait(ep, events, MAX_EVENTS, timeout, &waitmask);
        if (nev < 0) {
            if (errno == EINTR)
                continue;
            perror("probe-floor: epoll_pwait");
            return EXIT_FAIL;
        }
        for (int e = 0; e < nev; e++) {
            size_t i = (size_t)events[e].data.u64;
            struct conn *c = &conns[i];
            /* One read per readiness, as hiredis does; level-triggered epoll reports the
             * rest, if any, on the next round. */
            ssize_t r = read(c->fd, buf, sizeof(buf));
            if (r > 0) {
                const char *why;
                if (parse_replies(c, buf, (size_t)r, &cnt, &why) < 0)
                    fail_conn(c, i, why, &cnt, n, slots, interval_ms);
            } else if (r == 0) {
                fail_conn(c, i, "closed by the server", &cnt, n, slots, interval_ms);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                fail_conn(c, i, strerror(errno), &cnt, n, slots, interval_ms);
            }
        }
    }

    print_counters(&cnt, n, slots, interval_ms, "exit");
    for (size_t i = 0; i < n; i++) {
        close(conns[i].fd);
        free(addrs[i]);
    }
    free(addrs);
    free(conns);
    close(ep);
    return 0;
}
