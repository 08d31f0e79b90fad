/* Prints a sample of the metrics text to stdout, for `promtool check
 * metrics` (the meson test metrics_promtool when promtool is installed). */
#include <stdio.h>

#include "metrics_text.h"

int main(void)
{
	struct metrics_snapshot m = {
		.connections = 2,
		.connections_total = 1000,
		.bytes_echoed_total = 123456789,
		.accept_waits_total = 3,
		.udp_datagrams_total = 77,
		.version = "0.1.0",
		.start_time_ms = 1764655975042ull,
	};
	char buf[METRICS_TEXT_MAX];

	for (int r = 0; r < REFUSE_N; r++)
		m.refused[r] = (uint64_t)r * 7;
	int n = metrics_text_write(&m, buf, sizeof(buf));
	if (n < 0)
		return 1;
	return fwrite(buf, 1, (size_t)n, stdout) == (size_t)n && fflush(stdout) == 0 ? 0 : 1;
}
