/**
 * Now and then, while a worker runs, starts the webhook deliveries that were committed but never
 * started (the start failed after the commit, or the process died in between).
 */
import { Runtime } from '@temporalio/worker';
import type pg from 'pg';
import { dispatchForgotten, type WebhookDispatch } from './outbox.js';

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
    dispatchForgotten(pool, dispatch, Math.max(everyMs, 1000) * 2).catch((err) =>
      Runtime.instance().logger.warn('webhook delivery sweep failed; will try again', { error: String(err) }),
    );
  }, everyMs);
  timer.unref();
}
