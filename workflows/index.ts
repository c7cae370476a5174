/** The worker's workflow bundle entry: workflow functions only. */
export { storyWorkflow } from './story.js';
export { webhookDeliveryWorkflow } from './webhook.js';
