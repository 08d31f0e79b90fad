/* What the run shows: the progress line, the final table and the JSON line. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "bench.h"

uint64_t total_errors(void)
{
	return g.mismatches + g.conn_errors + g.stalled + g.not_opened;
}

static void progress_tick(uint64_t now)
{
	char line[256], a[32], b[32];
	double dt = (double)(now - g.tick.t) / NS_PER_S;
	uint64_t errs = total_errors();
	int n = 0;

	if (dt <= 0)
		dt = 1;
	switch (g.phase) {
	case PH_OPEN:
		n = snprintf(line, sizeof(line), "opening connections: %s of %s",
			     fmt_count(a, sizeof(a), g.opened),
			     fmt_count(b, sizeof(b), opt.conns));
		break;
	case PH_WARMUP:
	case PH_MEASURE: {
		double t = g.phase == PH_WARMUP
				   ? (double)(now - g.t_opened) / NS_PER_S
				   : (double)(now - g.t_measure) / NS_PER_S;
		const char *ph = g.phase == PH_WARMUP ? "warm-up" : "measure";
		double total = g.phase == PH_WARMUP ? opt.warmup : opt.duration;

		if (strcmp(opt.mode->unit, "MB") == 0)
			n = snprintf(line, sizeof(line),
				     "%s %.0f/%.0f s  %.1f MB/s  errors %" PRIu64, ph, t,
				     total, (double)(g.bytes_rx - g.tick.bytes_rx) / dt / 1e6,
				     errs);
		else
			n = snprintf(line, sizeof(line),
				     "%s %.0f/%.0f s  %s %s/s  p50 %.1f us  p99 %.1f us  "
				     "errors %" PRIu64,
				     ph, t, total,
				     fmt_count(a, sizeof(a),
					       (uint64_t)((double)(g.msgs - g.tick.msgs) / dt)),
				     opt.mode->unit,
				     (double)hist_percentile(&g.interval, 50) / 1e3,
				     (double)hist_percentile(&g.interval, 99) / 1e3, errs);
		break;
	}
	case PH_HOLD:
		n = snprintf(line, sizeof(line),
			     "holding %s connections  %.0f/%.0f s  errors %" PRIu64,
			     fmt_count(a, sizeof(a), g.opened),
			     (double)(now - g.t_measure) / NS_PER_S, opt.duration, errs);
		break;
	case PH_DRAIN:
	case PH_DONE:
		n = snprintf(line, sizeof(line), "draining  errors %" PRIu64, errs);
		break;
	}
	if (n > 0) {
		printf("\r%s\033[K", line);
		fflush(stdout);
		g.progress_drawn = 1;
	}
}

void tick(uint64_t now)
{
	if (g.progress)
		progress_tick(now);
	hist_flush(g.measuring);
	snapshot(&g.tick, now);
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}


void compute(struct result *r)
{
	static const double pct[] = { 0, 50, 90, 99, 99.9, 100 };
	unsigned i;

	memset(r, 0, sizeof(*r));
	r->open_s = (double)(g.t_opened - g.t_begin) / NS_PER_S;
	r->window = (double)(g.m1.t - g.m0.t) / NS_PER_S;
	r->msgs = g.m1.msgs - g.m0.msgs;
	r->bytes = g.m1.bytes_rx - g.m0.bytes_rx;
	if (r->window > 0) {
		r->msgs_per_s = (double)r->msgs / r->window;
		r->mb_per_s = (double)r->bytes / r->window / 1e6;
		r->conns_per_s =
			(double)(g.m1.conns_done - g.m0.conns_done) / r->window;
		r->cpu = (g.m1.cpu - g.m0.cpu) / r->window;
	}
	if (opt.mode->compute)
		opt.mode->compute(r);
	for (i = 0; i < 6; i++)
		r->lat[i] = (double)hist_percentile(&g.total, pct[i]) / 1e3;
	r->lat[6] = hist_mean(&g.total) / 1e3;
}

void report_json(const struct result *r)
{
	printf("{\"tool\":\"" PROG "\",\"version\":");
	json_string(ECHOD_VERSION);
	printf(",\"mode\":\"%s\",\"target\":", opt.mode->name);
	json_string(opt.target);
	printf(",\"connections\":%u,\"pipeline\":%u,\"size\":%zu,\"warmup_s\":%.3f,"
	       "\"duration_s\":%.3f,\"opened\":%u,\"open_s\":%.3f,\"held\":%u,"
	       "\"messages\":%" PRIu64 ",\"msgs_per_s\":%.1f,\"bytes\":%" PRIu64
	       ",\"mb_per_s\":%.3f,",
	       opt.conns, opt.pipeline, opt.size,
	       (opt.mode->flags & BM_HOLDS) ? 0.0 : opt.warmup, r->window, g.opened,
	       r->open_s, g.held, r->msgs, r->msgs_per_s, r->bytes, r->mb_per_s);
	if (opt.mode->json)
		opt.mode->json(r);
	printf("\"latency_us\":{\"count\":%" PRIu64 ",\"min\":%.2f,\"p50\":%.2f,"
	       "\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f,\"mean\":%.2f},",
	       g.total.count, r->lat[0], r->lat[1], r->lat[2], r->lat[3], r->lat[4],
	       r->lat[5], r->lat[6]);
	printf("\"errors\":%" PRIu64 ",\"mismatches\":%" PRIu64
	       ",\"conn_errors\":%" PRIu64 ",\"stalled\":%" PRIu64
	       ",\"not_opened\":%" PRIu64 ",\"addr_retries\":%" PRIu64
	       ",\"client_cpu\":%.3f,\"interrupted\":%s}\n",
	       total_errors(), g.mismatches, g.conn_errors, g.stalled, g.not_opened,
	       g.addr_retries, r->cpu, g.interrupted ? "true" : "false");
}

/* A rate of connections, for the modes that open them as their work. */
void json_conns_per_s(const struct result *r)
{
	printf("\"conns_per_s\":%.1f,", r->conns_per_s);
}

void report_size(const char *label)
{
	printf("  %-16s %zu bytes\n", label, opt.size);
}

void report_measured(const struct result *r)
{
	printf("  %-16s %.3f s after %.3g s of warm-up\n", "measured", r->window,
	       opt.warmup);
}

/* Rate in the mode's unit, and the count behind it. */
void report_rate(const struct result *r, const char *count_label)
{
	char a[32];

	printf("  %-16s %s %s/s, %.2f MB/s\n", "throughput",
	       fmt_count(a, sizeof(a), (uint64_t)(r->msgs_per_s + 0.5)),
	       opt.mode->unit, r->mb_per_s);
	printf("  %-16s %s\n", count_label, fmt_count(a, sizeof(a), r->msgs));
}

void report_cpu(const struct result *r)
{
	printf("  %-16s %.2f cores\n", "own CPU", r->cpu);
}

void report_table(const struct result *r)
{
	char a[32], b[32];

	printf(PROG " %s: %s to %s\n", ECHOD_VERSION, opt.mode->name, opt.target);
	printf("  %-16s %s", "connections", fmt_count(a, sizeof(a), opt.conns));
	if (opt.mode->flags & BM_RECYCLES)
		printf(" at once");
	else
		printf(" (%s opened in %.3f s)", fmt_count(b, sizeof(b), g.opened),
		       r->open_s);
	printf("\n");
	opt.mode->report(r);
	if (g.total.count) {
		printf("  %-16s %9s %9s %9s %9s %9s %9s %9s\n", opt.mode->latency_label,
		       "min", "p50", "p90", "p99", "p99.9", "max", "mean");
		printf("  %-16s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", "",
		       r->lat[0], r->lat[1], r->lat[2], r->lat[3], r->lat[4], r->lat[5],
		       r->lat[6]);
	}
	printf("  %-16s %" PRIu64 " (mismatches %" PRIu64 ", stalled %" PRIu64
	       ", connection errors %" PRIu64 ", not opened %" PRIu64 ")%s\n",
	       "errors", total_errors(), g.mismatches, g.stalled, g.conn_errors,
	       g.not_opened, g.interrupted ? "  [interrupted]" : "");
	if (g.addr_retries)
		printf("  %-16s %" PRIu64 " connects retried for want of a local port\n",
		       "note", g.addr_retries);
}
