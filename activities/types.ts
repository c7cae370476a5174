/** The persistence activities' contract, imported by the workflow as types only. */
import type { StoryState } from '../src/custody/rules.js';
import type { TransitionRecord } from '../workflows/messages.js';
import type { WebhookDeliveryInput } from '../workflows/webhook-messages.js';

export interface PersistBatch {
  workflowId: string;
  runId: string;
  state: StoryState;
  /** Waiting on others for longer than the project allows. */
  stalled?: boolean;
  /** The projection's new version: the last transition's sequence number. */
  version: number;
  transitions: TransitionRecord[];
}

export interface DependentsNotice {
  tenantId: string;
  storyId: string;
  verified: boolean;
  seq: number;
}

export interface StoryActivities {
  persistTransitions(batch: PersistBatch): Promise<void>;
  notifyDependents(notice: DependentsNotice): Promise<number>;
}

export interface WebhookActivities {
  /**
   * One attempt: POSTs the signed delivery; throws (to be retried) unless the receiver answers 2xx.
   * `retry`: the budget in real attempts and the backoff (deliveries started before it: Temporal's).
   */
  deliverWebhook(deliveryId: string, retry?: WebhookDeliveryInput['retry']): Promise<void>;
  finishDelivery(deliveryId: string, status: 'delivered' | 'failed'): Promise<void>;
}
