/* Service manager notifications (sd_notify). Every call is a no-op when
 * NOTIFY_SOCKET is unset or echod is built without systemd. */
#ifndef ECHOD_NOTIFY_H
#define ECHOD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

void notify_init(void);
bool notify_enabled(void);
/* WATCHDOG_USEC for this process, 0 when the watchdog is off. */
uint64_t notify_watchdog_usec(void);

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_watchdog(void);
void notify_status(const char *text);

#endif
