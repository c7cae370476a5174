/**
 * Now and then, while a worker runs, starts the webhook deliveries that were committed but never
 * started (the start failed after the commit, or the process died in between), and frees the
 * places in their tenants' shares of deliveries whose workflow was closed without ending them.
 */
import { Runtime } from '@temporalio/worker';
import type pg from 'pg';
import { dispatchForgotten, reclaimClosedDeliveries, type WebhookDispatch } from './outbox.js';

const STOPPED = ['STOPPING', 'DRAINING', 'DRAINED', 'STOPPED', 'FAILED'];

export function sweepForgottenDeliveries(
  worker: { getState(): string },
  pool: pg.Pool,
  dispatch: WebhookDispatch,
  everyMs = 30_000,
): void {
  const timer = setInterval(() => {
    if (STOPPED.includes(worker.getState())) {
      clearInterval(timer);
      return;
    }
    const olderThanMs = Math.max(everyMs, 1000) * 2;
    dispatchForgotten(pool, dispatch, olderThanMs)
      .then(() => reclaimClosedDeliveries(pool, dispatch, olderThanMs))
      .then((freed) => {
        if (freed > 0)
          Runtime.instance().logger.warn('webhook deliveries whose workflow was closed ended as failed', { freed });
      })
      .catch((err) =>
        Runtime.instance().logger.warn('webhook delivery sweep failed; will try again', { error: String(err) }),
      );
  }, everyMs);
  timer.unref();
}
