/* hist.h - the in-memory index of the retained log.
 *
 * For every retained epoch: its time, source and records; for every record:
 * where its frame is (segment, offset, length) and the page size after it;
 * for every node: the sequence numbers of its records.  Time travel reads a
 * page from a checkpoint plus exactly that page's own records, found here,
 * so it never scans the log.  Memory: about 56 bytes per record.
 * Not thread-safe: the store's lock protects it.
 */
#ifndef MMSB_HIST_H
#define MMSB_HIST_H

#include <stddef.h>
#include <stdint.h>

struct hist_rec {
	uint64_t epoch;
	uint64_t node;
	uint64_t off;	  /* frame offset in its segment */
	uint64_t size;	  /* WRITE/TRUNCATE: page size after */
	uint32_t seg;	  /* segment ordinal */
	uint32_t len;	  /* frame length */
	uint32_t changed; /* WRITE: bytes changed (saturated) */
	uint8_t type;	  /* MMSB_FR_* */
	uint8_t flags;	  /* MMSB_FRF_* */
};

struct hist_epoch {
	int64_t time;
	uint64_t changed; /* bytes changed by its writes */
	uint64_t first;	  /* sequence number of its first record */
	uint32_t n;	  /* records */
	uint8_t source;	  /* enum mmsb_source; HIST_LOST: its records are lost (damaged log) */
};

#define HIST_LOST 0xffu /* hist_epoch.source of an epoch whose records are lost */

struct hist_node {
	uint64_t id;	/* 0: empty slot */
	uint64_t *seqs; /* increasing */
	uint32_t n, cap;
};

struct mmsb_hist {
	struct hist_rec *recs; /* recs[i] has sequence number base + i */
	uint64_t base, n, cap;
	struct hist_epoch *eps; /* eps[i] is epoch ebase + i */
	uint64_t ebase, en, ecap;
	struct hist_node *nodes; /* open addressing by id */
	size_t nodes_cap, n_nodes;
};

/* Start an empty index whose next epoch is `next`. */
void hist_init(struct mmsb_hist *h, uint64_t next);
void hist_free(struct mmsb_hist *h);
/* Add epoch (which must be the next one) and its records.  -ENOMEM. */
int hist_add_epoch(struct mmsb_hist *h, uint64_t epoch, int64_t time, uint8_t source, uint64_t changed);
int hist_add_rec(struct mmsb_hist *h, const struct hist_rec *r);
/* Mark the epochs from the next one up to epoch - 1 lost (no records),
 * so that epoch can be added next.  -ENOMEM. */
int hist_skip_to(struct mmsb_hist *h, uint64_t epoch);
/* NULL when not retained. */
const struct hist_epoch *hist_epoch(const struct mmsb_hist *h, uint64_t epoch);
const struct hist_rec *hist_rec(const struct mmsb_hist *h, uint64_t seq);
/* Sequence number of the first record with an epoch > e; index into hn->seqs
 * of the first of its records with an epoch > e. */
uint32_t hist_node_index_after(const struct hist_node *hn, const struct mmsb_hist *h, uint64_t e);
uint64_t hist_global_seq_after(const struct mmsb_hist *h, uint64_t e);
const struct hist_node *hist_node(const struct mmsb_hist *h, uint64_t id);
/* Put the index p of the epochs right before h's first one in front of h
 * (p is consumed, even on error).  h->base must leave room: p->n <= h->base
 * (start h with HIST_PREFIX_ROOM).  -ENOMEM, -EINVAL. */
int hist_prepend(struct mmsb_hist *h, struct mmsb_hist *p);
#define HIST_PREFIX_ROOM (1ull << 48) /* sequence numbers left free for a prefix */
/* Forget epochs <= e (compaction). */
void hist_drop_upto(struct mmsb_hist *h, uint64_t e);

#endif
