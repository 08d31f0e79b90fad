/* A binary min-heap of timers ordered by deadline: O(log n) arm, disarm
 * and expiry, nothing per tick. Timers are intrusive: no allocation per
 * timer, only the heap's array of pointers grows. */
#ifndef ECHOD_TIMER_HEAP_H
#define ECHOD_TIMER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timer;
typedef void timer_fn(struct timer *t);

struct timer {
	uint64_t deadline;
	uint32_t slot; /* position in the heap + 1; 0 when not armed */
	timer_fn *fn;
};

struct timer_heap {
	struct timer **v;
	size_t n, cap;
};

void timer_heap_init(struct timer_heap *h);
void timer_heap_free(struct timer_heap *h);

static inline bool timer_armed(const struct timer *t)
{
	return t->slot != 0;
}

/* Arms t at deadline, or moves it there if armed. 0 or -ENOMEM. */
int timer_heap_set(struct timer_heap *h, struct timer *t, uint64_t deadline);
void timer_heap_remove(struct timer_heap *h, struct timer *t);

static inline struct timer *timer_heap_top(const struct timer_heap *h)
{
	return h->n ? h->v[0] : NULL;
}

#endif
