/* The optional transform of echoed bytes (transform = upper). */
#ifndef ECHOD_TRANSFORM_H
#define ECHOD_TRANSFORM_H

#include <stddef.h>

#include "config.h"

/* In place; ASCII a-z only: every other byte, UTF-8 included, is left
 * alone. */
static inline void transform_apply(int transform, char *data, size_t len)
{
	if (transform != TRANSFORM_UPPER)
		return;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)(data[i] - 'a') < 26)
			data[i] = (char)(data[i] - ('a' - 'A'));
}

#endif
