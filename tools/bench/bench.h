/*
 * echod-bench: what the files of the load generator share.
 *
 * Data walks one way: options.c fills `opt`; main.c runs the epoll loop and
 * hands socket events to the mode's engine (conn.c for stream sockets, udp.c
 * for datagrams); the mode files (pingpong.c, streaming.c, connect.c,
 * idle.c, udp.c) decide what to send and what a verified echo means;
 * stream.c makes and checks the bytes; phases.c moves the run from opening
 * to draining; report.c prints what was counted. The run's state is one
 * struct, `g`, because every part of a single-threaded load generator looks
 * at the same counters and phase.
 */
#ifndef ECHOD_BENCH_H
#define ECHOD_BENCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hist.h"

#define PROG "echod-bench"
#define EXIT_ERRORS 1 /* the run failed or counted errors */
#define EXIT_USAGE 2

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

#define MAX_CONNS 1000000u
#define MAX_PIPELINE 65536u
#define MAX_SIZE (64u << 20)
#define MAX_SECONDS 86400.0
#define MAX_SOURCE_ADDRS 250u
#define DEFAULT_SOURCE_ADDRS 16u /* IPv4 loopback: connect mode, many conns */
#define MANY_CONNS 1000u

#define RBUF_SIZE (256u << 10) /* one read buffer for every connection */
#define MAX_WRITE (256u << 10) /* bytes per writev */
#define MAX_EVENTS 4096
#define READ_BUDGET 16  /* reads per wakeup per connection, then requeue */
#define WRITE_BUDGET 4  /* writes per wakeup per connection, then requeue */
#define STREAM_PRIME 1024u /* stream: size of the first (opening) echo */
#define STALL_SCAN_NS (250 * NS_PER_MS)
#define UDP_MAX_SIZE 65507u /* the largest UDP payload over IPv4 */
#define UDP_HEADER_SIZE 16u /* sequence, slot and socket tag (udp.c) */
#define RETRY_NS NS_PER_MS

enum phase { PH_OPEN, PH_WARMUP, PH_MEASURE, PH_HOLD, PH_DRAIN, PH_DONE };

enum cstate {
	C_FREE,       /* no socket */
	C_RETRY,      /* connect() said "try again" (full Unix backlog, no port) */
	C_CONNECTING, /* waiting for the connection to complete */
	C_OPEN,       /* connected */
	C_DEAD,       /* failed; not reopened */
};

struct conn {
	int fd;
	uint8_t state;
	uint8_t primed;   /* first echo verified (pingpong, stream, idle) */
	uint8_t pending;  /* counted in g.opening */
	uint8_t wblocked; /* a write found the socket full: wait for EPOLLOUT */
	uint8_t rmore;    /* the read budget ran out: data may be waiting */
	uint8_t queued;   /* on the run queue */
	uint8_t stalled;  /* already counted as stalled */
	uint8_t retrying; /* on the retry queue */
	uint64_t key;     /* selects this connection's byte stream */
	uint64_t target;  /* stream bytes issued (to be sent) */
	uint64_t sent;    /* stream bytes written */
	uint64_t recvd;   /* stream bytes echoed back and verified */
	uint64_t t_start;    /* socket() of this connection, ns */
	uint64_t t_progress; /* last echoed byte (or connect), ns */
	uint64_t *ts;     /* pingpong: issue time of message m at ts[m % P] */
};

struct counters {
	uint64_t t;
	uint64_t msgs, bytes_rx, bytes_tx, conns_done;
	double cpu; /* seconds of our own CPU time */
};

/* What the run measured, in the units the reports print. */
struct result {
	double window, open_s, msgs_per_s, mb_per_s, conns_per_s, cpu;
	uint64_t msgs, bytes;
	double lat[7]; /* min p50 p90 p99 p99.9 max mean, microseconds */
};

/* Mode flags. */
#define BM_RECYCLES 0x1 /* a slot whose connection ends gets a new one */
#define BM_HOLDS 0x2    /* no warm-up or measure: hold, then drain */
#define BM_NODELAY 0x4  /* TCP_NODELAY on every connection */
#define BM_ENDLESS 0x8  /* writes never run out while load is issued */
#define BM_WINDOW 0x10  /* --pipeline: messages in flight per connection */
#define BM_DGRAM 0x20   /* datagram sockets: IP targets, no TCP options */

/*
 * A mode: the hooks that make a socket engine (conn.c, udp.c) and the
 * phases (phases.c) into ping-pong, streaming, a connect storm, idle
 * holding or UDP echo. The table of modes is in options.c. Every hook is
 * optional unless said otherwise.
 */
struct bench_mode {
	const char *name;
	const char *unit;          /* of the rate: "msg", "conn" or "MB" */
	const char *count_unit;    /* of conn's counters; NULL: "bytes" */
	const char *latency_label; /* heading of the latency row of the table */
	unsigned flags;            /* BM_* */
	size_t default_size;       /* of --size; 0 for the common default */
	/* The socket engine: open slot c; handle its epoll events (ev is 0
	 * for a connection taken off the run queue). conn_start and conn_event
	 * for stream sockets. Required. */
	int (*start)(struct conn *c, uint64_t now);
	void (*on_event)(struct conn *c, uint32_t ev, uint64_t now);
	/* After the options, before the loop: allocate per-connection state. */
	void (*setup)(void);
	void (*cleanup)(void);
	/* Stream sockets (conn.c), required there. The connection is up:
	 * issue its first (opening) echo. */
	void (*on_established)(struct conn *c, uint64_t now);
	/* Verified bytes arrived: c->recvd grew from before. Returns -1 if the
	 * hook closed c. */
	int (*on_readable)(struct conn *c, uint64_t before, uint64_t now);
	/* Everything issued is written: issue more? Returns 1 if it did. */
	int (*on_writable)(struct conn *c);
	/* Opening is over and c is open: start the load on it. */
	void (*begin_load)(struct conn *c, uint64_t now);
	/* The measured time is over and c is open: last words before the drain. */
	void (*begin_drain)(struct conn *c, uint64_t now);
	/* Every stall scan, for each open connection: the mode's own timeouts. */
	void (*scan)(struct conn *c, uint64_t now);
	/* Adjust the generic figures (report.c) to what the mode measures. */
	void (*compute)(struct result *r);
	/* The mode's lines of the table, between the size and the latencies. */
	void (*report)(const struct result *r);
	/* The mode's own members of the JSON line, each followed by a comma. */
	void (*json)(const struct result *r);
};

extern const struct bench_mode mode_pingpong, mode_stream, mode_connect, mode_idle,
	mode_udp;

struct options {
	const struct bench_mode *mode;
	const char *target;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned conns;
	unsigned pipeline;
	size_t size;
	double duration, warmup, open_timeout, stall, loss_timeout;
	unsigned open_concurrency;
	unsigned source_addrs;
	uint64_t seed;
	int json, quiet, verbose, reset;
};

struct state {
	enum phase phase;
	int ep;
	int timer;            /* timerfd for every wake-up that is not I/O */
	uint64_t timer_at;    /* what it is set to (CLOCK_MONOTONIC ns) */
	struct conn *conns;
	uint32_t *runq, *runq_work;
	unsigned runq_n;
	uint32_t *retryq, *retryq_work;
	unsigned retryq_n;
	uint64_t t_last_retry;
	uint64_t serial;      /* connections ever started */
	unsigned next_open;   /* open phase: next slot to open */
	unsigned opening;     /* started, not yet through their first echo */
	unsigned opened;      /* through their first echo */
	unsigned active;      /* connect mode: slots with a connection */
	int measuring;        /* merge latencies into g.total */
	int interrupted;
	int progress;         /* draw the progress line (stdout is a terminal) */
	int progress_drawn;
	uint64_t t_begin, t_opened, t_deadline, t_measure, t_end;
	uint64_t t_next_tick, t_next_scan;
	uint64_t scan_ns;     /* period of stall_scan() */
	struct counters m0, m1, tick;
	/* totals */
	uint64_t msgs, bytes_rx, bytes_tx, conns_done;
	uint64_t mismatches, conn_errors, stalled, not_opened, addr_retries;
	unsigned held;
	int first_errno;
	struct hist interval, total;
};

extern struct options opt;
extern struct state g;
extern volatile sig_atomic_t stop_requested;

static inline const char *count_unit(void)
{
	return opt.mode->count_unit ? opt.mode->count_unit : "bytes";
}

/* util.c */
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_clear(void);
uint64_t now_ns(void);
double cpu_seconds(void);
const char *fmt_count(char *buf, size_t len, uint64_t v);

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* options.c */
void parse_options(int argc, char **argv);

/* conn.c: stream-socket connections */
static inline int issuing(void)
{
	return g.phase == PH_WARMUP || g.phase == PH_MEASURE;
}
void runq_push(struct conn *c);
void retry_push(struct conn *c);
enum fail { FAIL_MISMATCH, FAIL_EOF, FAIL_ERRNO };

int conn_start(struct conn *c, uint64_t now);
void conn_fail(struct conn *c, enum fail why, int err);
void conn_close(struct conn *c, enum cstate next);
void conn_primed(struct conn *c);
int conn_write(struct conn *c);
void conn_event(struct conn *c, uint32_t ev, uint64_t now);

/* phases.c */
void snapshot(struct counters *s, uint64_t now);
void hist_flush(int keep);
void open_more(uint64_t now);
void begin_measure(uint64_t now);
void stall_scan(uint64_t now);
void phase_step(uint64_t now);

/* report.c */
uint64_t total_errors(void);
void tick(uint64_t now);
void compute(struct result *r);
void report_json(const struct result *r);
void json_conns_per_s(const struct result *r);
void report_table(const struct result *r);
void report_size(const char *label);
void report_measured(const struct result *r);
void report_rate(const struct result *r, const char *count_label);
void report_cpu(const struct result *r);

#endif
