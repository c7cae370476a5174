/**
 * One webhook delivery: POST it until the receiver answers 2xx or the retry budget is spent,
 * with exponential backoff. Each attempt is recorded by the activity itself.
 */
import { ActivityFailure, proxyActivities, sleep } from '@temporalio/workflow';
import type { WebhookActivities } from '../activities/types.js';
import type { WebhookDeliveryInput } from './webhook-messages.js';

const BUSY_WAIT_MS = 5_000;
const MAX_BUSY_WAIT_MS = 5 * 60_000;

export async function webhookDeliveryWorkflow(input: WebhookDeliveryInput): Promise<'delivered' | 'failed'> {
  const { deliverWebhook } = proxyActivities<WebhookActivities>({
    startToCloseTimeout: '30 seconds',
    retry: {
      initialInterval: input.retry.initialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: '1 hour',
      maximumAttempts: input.retry.maximumAttempts,
    },
  });
  const { finishDelivery } = proxyActivities<WebhookActivities>({
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
  try {
    // While the tenant has its share of deliveries in flight, wait (longer each time) without
    // spending an attempt. Histories from before the share completed with no result: no wait.
    for (let waits = 0; (await deliverWebhook(input.deliveryId)) === 'busy'; waits++)
      await sleep(Math.min(BUSY_WAIT_MS * 2 ** waits, MAX_BUSY_WAIT_MS));
    await finishDelivery(input.deliveryId, 'delivered');
    return 'delivered';
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    await finishDelivery(input.deliveryId, 'failed');
    return 'failed';
  }
}
