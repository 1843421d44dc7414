/* progress.c - a one-line progress indicator for long mmsbctl operations
 * (export, verify, compact, restore, checkpoint), on stderr, only when
 * stderr is a terminal: nothing reaches a pipe, a file or a test log.
 *
 *   export: 1203 files, 16.0 MiB, 2.4 s
 *   verify: 3.1 s
 *
 * The line is redrawn at most 10 times a second ("\r" then clear to end
 * of line), and erased at the end, so the command's own output that
 * follows on stdout starts on a clean line.  MMSB_PROGRESS=0 turns it
 * off, MMSB_PROGRESS=1 forces it; MMSB_PROGRESS_DELAY_MS replaces the
 * 300 ms an operation runs before the line appears (tests: 0).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mmsbctl.h"

#define PROGRESS_EVERY_MS 100 /* least time between two redraws */
#define PROGRESS_AFTER_MS 300 /* nothing for operations quicker than this */

static int64_t progress_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mctl_progress_begin(struct mctl_progress *p, const char *what)
{
	const char *env = getenv("MMSB_PROGRESS");

	memset(p, 0, sizeof(*p));
	p->what = what;
	const char *delay = getenv("MMSB_PROGRESS_DELAY_MS");

	p->on = env != NULL && *env ? strcmp(env, "0") != 0 : isatty(STDERR_FILENO) == 1;
	p->t0_ms = progress_ms();
	p->delay_ms = delay != NULL && *delay ? atoi(delay) : PROGRESS_AFTER_MS;
}

static void progress_draw(struct mctl_progress *p, int64_t now)
{
	char bytes[32];
	double s = (double)(now - p->t0_ms) / 1000.0;

	if (p->items > 0) {
		mctl_human_bytes(p->bytes, bytes, sizeof(bytes));
		fprintf(stderr, "\r\033[K%s: %" PRIu64 " files, %s, %.1f s", p->what, p->items, bytes, s);
	} else {
		fprintf(stderr, "\r\033[K%s: %.1f s", p->what, s);
	}
	fflush(stderr);
	p->shown = true;
	p->last_ms = now;
}

void mctl_progress_add(struct mctl_progress *p, uint64_t items, uint64_t bytes)
{
	int64_t now;

	p->items += items;
	p->bytes += bytes;
	if (!p->on)
		return;
	now = progress_ms();
	if (now - p->t0_ms >= p->delay_ms && (!p->shown || now - p->last_ms >= PROGRESS_EVERY_MS))
		progress_draw(p, now);
}

void mctl_progress_end(struct mctl_progress *p)
{
	if (p->on && p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->shown = false;
}
