/* test_queue.c - the asynchronous apply queue of a device table (kern.h:
 * enqueue, read) against a model kept on the host.
 *
 *   test_queue cpu   the CPU table posing as a device (flusher thread,
 *                    host memory): runs everywhere (suite unit)
 *   test_queue gpu   the cuda table (suite gpu; exits 77 without a GPU)
 *
 * Checks: every read sees every delta enqueued before it, in order (later
 * deltas to the same bytes win); the other operations (copy, zero,
 * recompute, compare, copy_out) see the queue; freeing a page with queued
 * deltas is safe; several threads enqueue and read their own pages at once;
 * the gpu_mem cap refuses page_alloc past it; deltas are batched (fewer
 * submissions than deltas when many are enqueued without a read).  Prints
 * the time an enqueue of a 4 KiB delta takes against a synchronous apply.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kern.h"

static int failures;

#define CHECK(c)                                                                                                   \
	do {                                                                                                       \
		if (!(c)) {                                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                      \
			failures++;                                                                                \
		}                                                                                                  \
	} while (0)

static uint64_t rng_state = 20261202;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t put_uv(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* A RUNS body of one run: src[0..len) at off.  Returns its length. */
static size_t one_run(uint8_t *body, uint64_t off, const uint8_t *src, size_t len)
{
	size_t n = put_uv(body, 1);

	n += put_uv(body + n, off);
	n += put_uv(body + n, len);
	memcpy(body + n, src, len);
	return n + len;
}

#define NPAGES 6
#define PSIZE (256u << 10)

struct page {
	uint8_t *dev;	/* page_alloc'd */
	uint8_t *model; /* what it must hold */
};

static const struct mmsb_kern_ops *k;

static void enqueue_rand(struct page *p, uint8_t *body, uint8_t *src)
{
	size_t len = 1 + rnd() % 6000, off = rnd() % (PSIZE - len), i, n;

	for (i = 0; i < len; i++)
		src[i] = (uint8_t)rnd();
	n = one_run(body, off, src, len);
	CHECK(k->enqueue(p->dev, PSIZE, 1, body, n) == 0);
	memcpy(p->model + off, src, len);
}

static void check_page(const struct page *p, uint8_t *tmp)
{
	size_t off = rnd() % PSIZE, n = 1 + rnd() % (PSIZE - off);

	CHECK(k->read(tmp, p->dev, 0, PSIZE) == 0);
	CHECK(memcmp(tmp, p->model, PSIZE) == 0);
	CHECK(k->read(tmp, p->dev, off, n) == 0);
	CHECK(memcmp(tmp, p->model + off, n) == 0);
}

static void sequential(void)
{
	struct page pg[NPAGES];
	uint8_t *body = malloc(PSIZE + 64), *src = malloc(PSIZE), *tmp = malloc(PSIZE);
	uint64_t enq0, sub0, enq1, sub1;
	int64_t first;
	size_t i, round;

	for (i = 0; i < NPAGES; i++) {
		CHECK(k->page_alloc(PSIZE, (void **)&pg[i].dev) == 0);
		pg[i].model = calloc(1, PSIZE);
	}
	for (round = 0; round < 400; round++) {
		struct page *p = &pg[rnd() % NPAGES], *q = &pg[rnd() % NPAGES];
		unsigned what = (unsigned)(rnd() % 16);

		enqueue_rand(p, body, src);
		if (what == 0) {
			check_page(p, tmp);
		} else if (what == 1 && p != q) { /* copy sees the queue */
			CHECK(k->copy(q->dev, p->dev, PSIZE) == 0);
			memcpy(q->model, p->model, PSIZE);
		} else if (what == 2) { /* zero the tail */
			size_t off = rnd() % PSIZE;

			CHECK(k->zero(p->dev + off, PSIZE - off) == 0);
			memset(p->model + off, 0, PSIZE - off);
		} else if (what == 3 && p != q) { /* xor of two pages into a third */
			const void *in[2] = {p->dev, q->dev};
			size_t len[2] = {PSIZE, PSIZE}, j, oi = 0;
			struct page *o;

			while (&pg[oi] == p || &pg[oi] == q)
				oi++;
			o = &pg[oi];
			CHECK(k->recompute(MMSB_KERN_XOR, MMSB_KERN_U8, o->dev, PSIZE, in, len, 2) == 0);
			for (j = 0; j < PSIZE; j++)
				o->model[j] = p->model[j] ^ q->model[j];
		} else if (what == 4) { /* compare with its own model through copy_in */
			uint8_t *scratch;

			CHECK(k->page_alloc(PSIZE, (void **)&scratch) == 0);
			CHECK(k->copy_in(scratch, p->model, PSIZE) == 0);
			CHECK(k->compare(scratch, p->dev, PSIZE, &first) == 0);
			CHECK(first == -1);
			CHECK(k->page_free(scratch) == 0);
		} else if (what == 5) { /* free a page with deltas queued, then reuse the slot */
			CHECK(k->page_free(p->dev) == 0);
			CHECK(k->page_alloc(PSIZE, (void **)&p->dev) == 0);
			memset(p->model, 0, PSIZE);
		} else if (what == 6) {
			CHECK(k->copy_out(tmp, p->dev, PSIZE) == 0);
			CHECK(memcmp(tmp, p->model, PSIZE) == 0);
		}
	}
	/* later deltas to the same bytes win, in one batch */
	for (i = 0; i < 50; i++) {
		uint8_t v = (uint8_t)i;
		size_t n = one_run(body, 100, &v, 1);

		CHECK(k->enqueue(pg[0].dev, PSIZE, 1, body, n) == 0);
		pg[0].model[100] = v;
	}
	for (i = 0; i < NPAGES; i++)
		check_page(&pg[i], tmp);
	/* a malformed body is refused and queues nothing */
	body[0] = 0;
	CHECK(k->enqueue(pg[0].dev, PSIZE, 1, body, 3) == -EUCLEAN);
	check_page(&pg[0], tmp);

	/* batching: many deltas without a read take fewer submissions */
	CHECK(k->sync() == 0);
	mmsb_kern_queue_stats(k, &enq0, &sub0);
	for (i = 0; i < 2000; i++)
		enqueue_rand(&pg[i % NPAGES], body, src);
	CHECK(k->sync() == 0);
	mmsb_kern_queue_stats(k, &enq1, &sub1);
	CHECK(enq1 - enq0 == 2000);
	CHECK(sub1 - sub0 >= 1 && sub1 - sub0 <= 2000);
	printf("test_queue: 2000 deltas enqueued, %llu batches submitted\n", (unsigned long long)(sub1 - sub0));
	for (i = 0; i < NPAGES; i++)
		check_page(&pg[i], tmp);

	/* what a 4 KiB write costs: enqueue vs a synchronous batch apply */
	{
		uint64_t t0, te = 0, ts = 0;
		struct mmsb_kern_batch *b;
		int reps = getenv("MMSB_TEST_QUICK") ? 200 : 2000, r;

		for (r = 0; r < reps; r++) {
			size_t off = (size_t)(rnd() % (PSIZE / 4096)) * 4096, n;

			for (i = 0; i < 4096; i++)
				src[i] = (uint8_t)rnd();
			n = one_run(body, off, src, 4096);
			t0 = now_ns();
			CHECK(k->enqueue(pg[1].dev, PSIZE, 1, body, n) == 0);
			te += now_ns() - t0;
			memcpy(pg[1].model + off, src, 4096);
			CHECK(k->batch_new(&b) == 0);
			t0 = now_ns();
			CHECK(mmsb_kern_batch_add(b, pg[2].dev, PSIZE, 1, body, n) == 0);
			CHECK(k->apply_batch(b) == 0);
			CHECK(k->sync() == 0);
			ts += now_ns() - t0;
			CHECK(k->batch_free(b) == 0);
			memcpy(pg[2].model + off, src, 4096);
		}
		printf("test_queue: 4 KiB delta: enqueue %.2f us, batch apply + sync %.2f us (mean of %d)\n",
		       (double)te / reps / 1000, (double)ts / reps / 1000, reps);
		check_page(&pg[1], tmp);
		check_page(&pg[2], tmp);
	}
	for (i = 0; i < NPAGES; i++) {
		CHECK(k->page_free(pg[i].dev) == 0);
		free(pg[i].model);
	}
	free(body);
	free(src);
	free(tmp);
}

/* Threads, each with its own pages: enqueue and read at once. */
struct worker {
	struct page pg[2];
	uint64_t seed;
	int fails;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint8_t *body = malloc(PSIZE + 64), *tmp = malloc(PSIZE);
	uint64_t s = w->seed;
	int i, j;

	for (j = 0; j < 2; j++)
		if (k->page_alloc(PSIZE, (void **)&w->pg[j].dev) < 0 || !(w->pg[j].model = calloc(1, PSIZE)))
			w->fails++;
	for (i = 0; i < 300 && !w->fails; i++) {
		struct page *p = &w->pg[i & 1];
		size_t len, off, n, x;
		uint8_t src[512];

		s = s * 6364136223846793005ull + 1442695040888963407ull;
		len = 1 + (s >> 33) % sizeof(src);
		off = (s >> 13) % (PSIZE - len);
		for (x = 0; x < len; x++)
			src[x] = (uint8_t)(s >> (x % 56));
		n = one_run(body, off, src, len);
		if (k->enqueue(p->dev, PSIZE, 1, body, n) < 0)
			w->fails++;
		memcpy(p->model + off, src, len);
		if (i % 7 == 0) {
			if (k->read(tmp, p->dev, off, len) < 0 || memcmp(tmp, p->model + off, len) != 0)
				w->fails++;
		}
	}
	for (j = 0; j < 2; j++) {
		if (k->read(tmp, w->pg[j].dev, 0, PSIZE) < 0 || memcmp(tmp, w->pg[j].model, PSIZE) != 0)
			w->fails++;
		k->page_free(w->pg[j].dev);
		free(w->pg[j].model);
	}
	free(body);
	free(tmp);
	return NULL;
}

static void threads(void)
{
	struct worker w[4];
	pthread_t th[4];
	int i;

	memset(w, 0, sizeof(w));
	for (i = 0; i < 4; i++) {
		w[i].seed = 1000 + (uint64_t)i;
		CHECK(pthread_create(&th[i], NULL, work, &w[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].fails == 0);
	}
}

/* Large deltas (batches fill up and are submitted by the writers
 * themselves) from two threads while a third allocates, writes and frees
 * pages (page_free waits for its page and recycles finished batches): no
 * thread may be left waiting for a batch that came back (alarm below). */
#define BIG (1u << 20) /* a whole-page delta of BIG bytes fills a batch (KQ_MAX_LANES) */

static void *big_writer(void *arg)
{
	struct worker *w = arg;
	uint8_t *body = malloc(BIG + 64), *src = malloc(BIG), *tmp = malloc(BIG);
	int i;

	if (k->page_alloc(BIG, (void **)&w->pg[0].dev) < 0 || !(w->pg[0].model = calloc(1, BIG))) {
		w->fails++;
		return NULL;
	}
	usleep(5000); /* let the flusher fall asleep: the writers' own submissions must wake it */
	for (i = 0; i < (getenv("MMSB_TEST_QUICK") ? 12 : 40); i++) { /* quick: still past KQ_BATCHES */
		size_t n, x;

		for (x = 0; x < BIG; x++)
			src[x] = (uint8_t)(w->seed + (uint64_t)i + x);
		n = one_run(body, 0, src, BIG);
		if (k->enqueue(w->pg[0].dev, BIG, 1, body, n) < 0)
			w->fails++;
		memcpy(w->pg[0].model, src, BIG);
	}
	if (k->read(tmp, w->pg[0].dev, 0, BIG) < 0 || memcmp(tmp, w->pg[0].model, BIG) != 0)
		w->fails++;
	k->page_free(w->pg[0].dev);
	free(w->pg[0].model);
	free(body);
	free(src);
	free(tmp);
	return NULL;
}

static void *churner(void *arg)
{
	struct worker *w = arg;
	uint8_t body[64], v = 7, got = 0;
	int i;

	for (i = 0; i < 300; i++) {
		uint8_t *p;
		size_t n = one_run(body, 5, &v, 1);

		if (k->page_alloc(4096, (void **)&p) < 0) {
			w->fails++;
			break;
		}
		if (k->enqueue(p, 4096, 1, body, n) < 0 || k->read(&got, p, 5, 1) < 0 || got != v)
			w->fails++;
		if (k->page_free(p) < 0)
			w->fails++;
	}
	return NULL;
}

static void stress(void)
{
	struct worker w[3];
	pthread_t th[3];
	int i;

	memset(w, 0, sizeof(w));
	for (i = 0; i < 3; i++) {
		w[i].seed = 77 + (uint64_t)i;
		CHECK(pthread_create(&th[i], NULL, i < 2 ? big_writer : churner, &w[i]) == 0);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].fails == 0);
	}
}

static void cap(void)
{
	uint64_t used = mmsb_kern_gpu_used();
	void *a = NULL, *b = NULL;

	mmsb_kern_gpu_limit(used + (1u << 20));
	CHECK(k->page_alloc(768u << 10, &a) == 0);
	CHECK(mmsb_kern_gpu_used() == used + (768u << 10));
	CHECK(k->page_alloc(512u << 10, &b) == -ENOSPC);
	CHECK(b == NULL);
	CHECK(k->page_alloc(256u << 10, &b) == 0);
	CHECK(k->page_free(a) == 0);
	CHECK(k->page_alloc(512u << 10, &a) == 0);
	CHECK(k->page_free(a) == 0);
	CHECK(k->page_free(b) == 0);
	CHECK(mmsb_kern_gpu_used() == used);
	mmsb_kern_gpu_limit(0);
}

int main(int argc, char **argv)
{
	bool gpu = argc > 1 && strcmp(argv[1], "gpu") == 0;
	struct mmsb_kern_gpu_info gi;

	if (gpu) {
		if (mmsb_kern_gpu_probe(&gi) < 0 || strcmp((k = mmsb_kern_select(true))->name, "cuda") != 0) {
			printf("test_queue: no GPU: skipped\n");
			return 77;
		}
		printf("test_queue: %s\n", gi.name);
	} else {
		k = mmsb_kern_cpu_dev();
	}
	alarm(240); /* a hang is a failure */
	sequential();
	threads();
	stress();
	cap();
	if (failures) {
		fprintf(stderr, "test_queue: %d failures\n", failures);
		return 1;
	}
	printf("test_queue %s: ok\n", k->name);
	return 0;
}
