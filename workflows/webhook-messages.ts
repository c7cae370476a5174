/** The webhook delivery workflow's input, shared with the code that starts it. */
export const WEBHOOK_DELIVERY_WORKFLOW_TYPE = 'webhookDeliveryWorkflow';

export interface WebhookDeliveryInput {
  deliveryId: string;
  retry: {
    /** Delay before the second attempt; each later one waits twice as long, up to an hour. */
    initialIntervalMs: number;
    /** The retry budget: attempts in all, after which the delivery is marked failed. */
    maximumAttempts: number;
  };
}
