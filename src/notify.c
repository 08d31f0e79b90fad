#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "build-config.h"
#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static bool enabled;
static uint64_t watchdog_usec;

void notify_init(void)
{
#if HAVE_SYSTEMD
	uint64_t usec = 0;

	enabled = getenv("NOTIFY_SOCKET") != NULL;
	/* unset_environment: children must not feed our watchdog. */
	if (sd_watchdog_enabled(1, &usec) > 0)
		watchdog_usec = usec;
#endif
}

bool notify_enabled(void)
{
	return enabled;
}

uint64_t notify_watchdog_usec(void)
{
	return watchdog_usec;
}

static void send_state(const char *state)
{
#if HAVE_SYSTEMD
	if (enabled)
		sd_notify(0, state);
#else
	(void)state;
#endif
}

void notify_ready(void)
{
	send_state("READY=1");
}

void notify_reloading(void)
{
	char msg[64];
	struct timespec ts;

	/* MONOTONIC_USEC lets Type=notify-reload match this to its signal. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	send_state(msg);
}

void notify_stopping(void)
{
	send_state("STOPPING=1");
}

void notify_watchdog(void)
{
	send_state("WATCHDOG=1");
}

void notify_status(const char *text)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "STATUS=%s", text);
	send_state(msg);
}
