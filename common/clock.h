/* clock.h - the two clocks: monotonic for intervals and RTT, wall for
 * timestamps people read and for the replay window. */
#ifndef FULCRUM_CLOCK_H
#define FULCRUM_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t clock_mono_ms(void);
/* Monotonic microseconds, for RTT. */
uint64_t clock_mono_us(void);
/* Wall clock, milliseconds since the epoch (CLOCK_REALTIME). */
uint64_t clock_wall_ms(void);

#endif
