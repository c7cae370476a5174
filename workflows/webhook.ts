/**
 * One webhook delivery: POST it until the receiver answers 2xx or the retry budget is spent,
 * with exponential backoff. Each attempt is recorded by the activity itself.
 */
import { ActivityFailure, proxyActivities } from '@temporalio/workflow';
import type { WebhookActivities } from '../activities/types.js';
import type { WebhookDeliveryInput } from './webhook-messages.js';

const BACKSTOP_FACTOR = 50;

export async function webhookDeliveryWorkflow(input: WebhookDeliveryInput): Promise<'delivered' | 'failed'> {
  const { deliverWebhook } = proxyActivities<WebhookActivities>({
    startToCloseTimeout: '30 seconds',
    retry: {
      initialInterval: input.retry.initialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: '1 hour',
      // The budget is counted by the activity in real attempts (it ends the delivery past it): a
      // turn missed while the tenant had its share of deliveries in flight is a retry here too,
      // kept on the server (no history), so this is only a backstop.
      maximumAttempts: input.retry.maximumAttempts * BACKSTOP_FACTOR,
    },
  });
  const { finishDelivery } = proxyActivities<WebhookActivities>({
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
  });
  try {
    await deliverWebhook(input.deliveryId, input.retry);
    await finishDelivery(input.deliveryId, 'delivered');
    return 'delivered';
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    await finishDelivery(input.deliveryId, 'failed');
    return 'failed';
  }
}
