/* What every harness defines: libFuzzer's entry point, also driven by
 * replay.c over a corpus when libFuzzer is not there. */
#ifndef ECHOD_FUZZ_H
#define ECHOD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: abort, so that both libFuzzer and the replay
 * driver report the input. */
#define FUZZ_ASSERT(cond)         \
	do {                      \
		if (!(cond))      \
			abort();  \
	} while (0)

#endif
