/* ingest.h - the request pipeline of a webhook. */
#ifndef WB_INGEST_H
#define WB_INGEST_H

#include "worker.h"

/* Call first on each worker thread, before its loop has a socket: sizes
 * libh2o's (thread-local) socket input buffers for keep_reading. */
void wb_ingest_thread_init(void);
/* h2o handler of POST /webhooks/NAME[/TOKEN]. */
int wb_ingest_on_req(h2o_handler_t *self, h2o_req_t *req);
/* h2o handler of every other path: 404. */
int wb_ingest_not_found(h2o_handler_t *self, h2o_req_t *req);
/* The delivery report of a record produced by wb_ingest_on_req. */
void wb_ingest_on_report(void *opaque, const wb_report_t *rep, void *ctx);
/* Once per loop turn: produces the records whose topics became known. */
void wb_ingest_tick(wb_worker_t *w);
/* Makes this turn's spooled records durable (one fsync) and answers them. */
void wb_ingest_spool_turn(wb_worker_t *w);
/* 1 when w has nothing left to answer (and, on the first worker, nothing
 * left in the spool): the drain may end. */
int wb_ingest_drained(wb_worker_t *w);
/* Answers 503 to every request of w still waiting for its report. */
void wb_ingest_abort_pending(wb_worker_t *w);

#endif
