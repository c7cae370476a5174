/**
 * Prometheus metrics (prom-client) of the custody path, plus the Temporal SDK's own worker
 * metrics when the process runs a worker with its Prometheus exporter on.
 */
import client from 'prom-client';
import { ACTIONS } from '../custody/actions.js';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

export const transitions = new client.Counter({
  name: 'custody_transitions_total',
  help: 'Story actions by action and outcome (accepted or rejected)',
  labelNames: ['action', 'outcome'] as const,
  registers: [registry],
});

/** Every action a story takes (its spec's name) and the heartbeat: each series is there from the start, at 0. */
const ACTION_LABELS = [...ACTIONS, 'heartbeat'] as const;
for (const action of ACTION_LABELS) {
  for (const outcome of ['accepted', 'rejected']) transitions.inc({ action, outcome }, 0);
}

export const rejections = new client.Counter({
  name: 'custody_rejections_total',
  help: 'Rejected story actions by error code',
  labelNames: ['code'] as const,
  registers: [registry],
});

export const transitionSeconds = new client.Histogram({
  name: 'custody_transition_duration_seconds',
  help: 'Gateway-to-workflow round trip of a story action, persisted',
  labelNames: ['action'] as const,
  buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 15],
  registers: [registry],
});

export const httpSeconds = new client.Histogram({
  name: 'custody_http_request_duration_seconds',
  help: 'HTTP requests by method, route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5],
  registers: [registry],
});

export const auditWriteFailures = new client.Counter({
  name: 'custody_audit_write_failures_total',
  help: 'Rejected attempts whose audit row could not be written after retries (the database was unreachable)',
  registers: [registry],
});

export const integrityViolations = new client.Counter({
  name: 'custody_integrity_violations_total',
  help: 'Batches of transitions the worker refused to write (bad signature, broken sequence, or against the rules)',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const activityRetries = new client.Counter({
  name: 'custody_activity_retries_total',
  help: 'Activity attempts after the first, by activity',
  labelNames: ['activity'] as const,
  registers: [registry],
});

/** Our metrics, followed by the SDK's (fetched from its exporter) when one is configured. */
export async function metricsText(sdkMetricsUrl?: string): Promise<string> {
  const own = await registry.metrics();
  if (!sdkMetricsUrl) return own;
  try {
    const res = await fetch(sdkMetricsUrl, { signal: AbortSignal.timeout(1000) });
    return `${own}\n${await res.text()}`;
  } catch {
    return own;
  }
}
