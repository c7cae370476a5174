/**
 * One story, one workflow. Every lifecycle action arrives as a Workflow Update whose validator
 * runs the custody rules, so a rejected action never enters the accepted history. An accepted one
 * changes the state at once (before any await, so two racing claims cannot both pass), goes to
 * an outbox, and the update returns only once the database has it.
 *
 * The story itself (state, rules applied, clocks, outbox) is a `StoryEntity` (story-entity.ts);
 * this module wires Temporal's messages to it, drains its outbox and continues as new.
 * Deterministic code only: no I/O, no Node imports; time is the workflow's own.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import type { StoryActivities } from '../activities/types.js';
import { ACTIONS } from '../src/custody/actions.js';
import {
  custodyViolationsSignal,
  dependencyStatusSignal,
  heartbeatUpdate,
  keyRingSignal,
  storyQuery,
  storyUpdates,
  type StoryWorkflowInput,
} from './messages.js';
import { StoryEntity } from './story-entity.js';

// A database outage is retried until the database is back; bad data is not retried.
const PERSISTENCE_RETRY = {
  initialInterval: '200 milliseconds',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
  nonRetryableErrorTypes: ['InvalidProjection'],
};
// Regular activities, not local ones: an activity is scheduled by the same workflow task that
// accepts the update, so nothing reaches the database before the transition is in history. A
// local activity would write during the task, and a task lost to a crash would leave a write for
// a transition that, replayed, might be judged differently (an envelope expired meanwhile).
const ACTIVITY_OPTIONS = { startToCloseTimeout: '30 seconds', retry: PERSISTENCE_RETRY } as const;

/** The activities with a one-line summary the Temporal UI shows for the event (say who and what). */
const summarised = (summary: string) => proxyActivities<StoryActivities>({ ...ACTIVITY_OPTIONS, summary });

/** How long the outbox waits before trying again after a non-retryable persistence failure. */
const PERSISTENCE_RETRY_AFTER = '1 minute';

export async function storyWorkflow(input: StoryWorkflowInput): Promise<void> {
  const story = new StoryEntity(input);
  for (const action of ACTIONS) {
    setHandler(storyUpdates[action], (envelope) => story.act(action, envelope), {
      validator: (envelope) => story.validateAction(action, envelope),
      description: `${action}: the story lifecycle action, judged by the custody rules`,
    });
  }
  setHandler(dependencyStatusSignal, (news) => story.onDependencyNews(news));
  setHandler(keyRingSignal, (news) => story.onKeyRing(news));
  setHandler(storyQuery, () => story.view(false));
  setHandler(custodyViolationsSignal, (news) => story.onViolations(news));
  if (story.keepsTime) {
    setHandler(heartbeatUpdate, (envelope) => story.heartbeat(envelope), {
      validator: (envelope) => story.validateHeartbeat(envelope),
      description: 'heartbeat: the assignee keeps its claim alive',
    });
  }

  story.begin();
  void persistOutbox(story);
  if (story.keepsTime) {
    void story.watchLease();
    void story.watchStall();
  }

  await condition(() => story.runIsFull());
  // Nothing may be dropped: every running update finishes and everything accepted is persisted.
  await condition(() => allHandlersFinished() && story.outbox.length === 0);
  await continueAsNew<typeof storyWorkflow>(story.continuation());
}

function isIntegrityViolation(err: unknown): boolean {
  return (
    err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'IntegrityViolation'
  );
}

/** Drains the outbox into the database, oldest first, as many transitions per activity as are waiting. */
async function persistOutbox(story: StoryEntity): Promise<never> {
  for (;;) {
    await condition(() => story.outbox.length > 0);
    const batch = story.outbox.slice();
    try {
      await summarised(story.persistSummary(batch)).persistTransitions(story.persistInput(batch));
    } catch (err) {
      // The worker judged the batch and refused it: the story holds still until an admin resumes it.
      if (isIntegrityViolation(err) && patched('integrity-hold')) {
        story.hold();
        await condition(() => false);
      }
      story.persistenceFailed();
      await sleep(PERSISTENCE_RETRY_AFTER, { summary: 'persistence failed: trying again in a minute' });
      continue;
    }
    // Before the update returns: once a verify is answered, its dependents can be claimed.
    const dependents = story.dependentsNews(batch);
    if (dependents) await summarised(dependents.summary).notifyDependents(dependents.news);
    story.persistedBatch(batch);
  }
}
