/**
 * What ops see of a story in Temporal, read back from the real server: who sent each update (the
 * event identity), what each activity and timer is for (summaries), the custody chain by agent
 * names (current details), and the CustodyViolations search attribute, raised by a bounded number
 * of history events however many attempts are rejected.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, driveToVerified, importBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';
import { CustodyViolations } from '../../workflows/search-attributes.js';
import { getStory } from '../../src/db/story-repo.js';
import { ViolationSignals } from '../../src/gateway/violation-signals.js';
import { keyRingOf, newSigningSeed, signingKeyFromSeed } from '../../src/custody/identity.js';

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];
type Payload = NonNullable<NonNullable<HistoryEvent['userMetadata']>['summary']>;
// History event types, as the proto enum numbers them.
const UPDATE_ACCEPTED = 41;
const SIGNALED = 26;
const SIGNAL_INTERVAL_MS = 2000;

let stack: Stack;
let team: Team;
let stories: Map<string, any>;
beforeAll(async () => {
  stack = await startStack({ violationSignalIntervalMs: SIGNAL_INTERVAL_MS });
  team = await createTeam(stack.api, 2, 'acme');
  stories = await importBacklog(stack.api, team, {
    epics: [
      {
        number: 1,
        title: 'Ops',
        stories: ['Identities', 'Violations', 'Forged', 'Held', 'Gate', 'Rotated'].map((title, i) => ({
          number: `1.${i + 1}`,
          title,
          acceptance_criteria: ['a'],
        })),
      },
    ],
  });
});
afterAll(async () => {
  await stack?.stop();
});

const decode = (payload: Payload | null | undefined): string =>
  payload?.data ? JSON.parse(Buffer.from(payload.data).toString('utf8')) : '';

async function events(workflowId: string) {
  const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  return history.events ?? [];
}

async function currentDetails(workflowId: string): Promise<string> {
  const meta = await stack.client.workflow
    .getHandle(workflowId)
    .query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  return meta.currentDetails ?? '';
}

describe('a story in the Temporal UI', () => {
  it('names the acting agent on each update, summarises activities and timers, and shows the chain by name', async () => {
    const story = stories.get('1.1');
    const tenantSlug = story.workflow_id.split('/')[1];
    const [implementer, reviewer] = team.agents;
    await driveToVerified(stack.api, story, {
      implementer: implementer.key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });

    const all = await events(story.workflow_id);
    const accepted = all
      .filter((e) => Number(e.eventType) === UPDATE_ACCEPTED)
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest!.meta!.identity);
    expect(accepted).toEqual([
      `agent-1 (agent) @ ${tenantSlug}`, // contract
      `agent-1 (agent) @ ${tenantSlug}`, // claim
      `agent-1 (agent) @ ${tenantSlug}`, // start
      `agent-1 (agent) @ ${tenantSlug}`, // request-review
      `agent-2 (agent) @ ${tenantSlug}`, // report
      `agent-2 (agent) @ ${tenantSlug}`, // review-complete
      `orchestrator (orchestrator) @ ${tenantSlug}`, // verify
    ]);

    const summaries = all.map((e) => decode(e.userMetadata?.summary)).filter(Boolean);
    expect(summaries).toContain('persist review-complete by agent-2, seq 6');
    expect(summaries).toContain('persist verify by orchestrator, seq 7');
    expect(summaries.some((s) => /^claim lease of agent-1 until \d\d:\d\d UTC$/.test(s))).toBe(true);
    expect(summaries.some((s) => /^waiting for review since \d\d:\d\d UTC$/.test(s))).toBe(true);
    expect(summaries.some((s) => /^waiting for verification since \d\d:\d\d UTC$/.test(s))).toBe(true);

    const details = await currentDetails(story.workflow_id);
    expect(details).toContain(
      'custody chain: implementer `agent-1` → reporter `agent-2` → reviewer `agent-2` → verifier `orchestrator`',
    );
    expect(details).toContain('reviewed by `agent-2`');
    expect(details).toContain('verified by `orchestrator`');
  });

  it('counts custody violations in a search attribute, with a bounded number of events for a flood', async () => {
    const story = stories.get('1.2');
    const [implementer] = team.agents;
    await stack.api.act(story.id, 'contract', implementer.key, { story_title: story.title, ac_count: 1 });
    await stack.api.act(story.id, 'claim', implementer.key);
    await stack.api.act(story.id, 'start', implementer.key);
    await stack.api.act(story.id, 'request-review', implementer.key);
    const started = Date.now();
    // The implementer tries to report its own work, 12 times at once: 12 custody violations.
    const replies = await Promise.all(
      Array.from({ length: 12 }, () => stack.api.act(story.id, 'report', implementer.key, { artifact: 'x' })),
    );
    expect(replies.map((r) => r.body.error?.code)).toEqual(Array(12).fill('self_report_blocked'));

    const handle = stack.client.workflow.getHandle(story.workflow_id);
    let count: number | undefined;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      count = (await handle.describe()).typedSearchAttributes.get(CustodyViolations);
      if (count === 12) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(count).toBe(12);
    const elapsed = Date.now() - started;
    const signals = (await events(story.workflow_id)).filter((e) => Number(e.eventType) === SIGNALED);
    // At most one signal per interval: the first at once, the rest coalesced into the next.
    expect(signals.length).toBeGreaterThanOrEqual(1);
    expect(signals.length).toBeLessThanOrEqual(1 + Math.ceil(elapsed / SIGNAL_INTERVAL_MS));
    expect(signals.length).toBeLessThanOrEqual(3);
    expect(await currentDetails(story.workflow_id)).toContain('**custody violations: 12**');

    // Ops find it by the attribute.
    const found: string[] = [];
    const query = `TenantId = "${team.tenantId}" AND CustodyViolations > 0`;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && found.length === 0;) {
      for await (const wf of stack.client.workflow.list({ query })) found.push(wf.workflowId);
      if (found.length === 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(found).toEqual([story.workflow_id]);
  });

  it('ignores a violation count that the gateway did not sign', async () => {
    const story = stories.get('1.3');
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    await handle.signal('custodyViolations', { count: 99, signature: 'A'.repeat(86) });
    await handle.query('story'); // the signal has been handled once a later query is answered
    expect((await handle.describe()).typedSearchAttributes.get(CustodyViolations)).toBeUndefined();
    expect(await currentDetails(story.workflow_id)).not.toContain('violations');
  });

  it("answers the README's saved list queries", async () => {
    const [implementer] = team.agents;
    const held = stories.get('1.4');
    await stack.api.act(held.id, 'contract', implementer.key, { story_title: held.title, ac_count: 1 });
    expect((await stack.api.act(held.id, 'claim', implementer.key)).status).toBe(200);
    const number = (workflowId: string) => workflowId.split('/').at(-1);
    const list = async (query: string) => {
      const found: string[] = [];
      for await (const wf of stack.client.workflow.list({ query: `TenantId = "${team.tenantId}" AND (${query})` })) {
        found.push(number(wf.workflowId)!);
      }
      return found.sort();
    };
    const expected: [string, string[]][] = [
      ['StoryStatus="review_requested"', ['1.2']],
      ['StoryStatus="reported_done" AND VerifiedStatus="unverified"', []],
      ['VerifiedStatus="verified"', ['1.1']],
      ['Stalled="true"', []],
      ['CustodyViolations > 0', ['1.2']],
      [`AssignedAgent="${implementer.id}" AND StoryStatus IN ("assigned", "implementing")`, ['1.4']],
    ];
    for (const [query, numbers] of expected) {
      let found: string[] = [];
      // Visibility follows the history within moments.
      for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
        found = await list(query);
        if (JSON.stringify(found) === JSON.stringify(numbers)) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect([query, found]).toEqual([query, numbers]);
    }
  });

  it('gives one story one signal per interval across gateway processes, the others coalesced into the next', async () => {
    const story = (await getStory(stack.pool, team.tenantId, stories.get('1.5').id))!;
    const signalCount = async () =>
      (await events(story.workflow_id)).filter((e) => Number(e.eventType) === SIGNALED).length;
    // Two gateways (each with its own in-process throttle) on one database.
    const gateways = [1, 2].map(() => new ViolationSignals(stack.client, stack.pool, () => stack.signingKey, 3000));
    const started = Date.now();
    for (const gateway of gateways) gateway.raised(story);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await signalCount()).toBe(1);
    // The second gateway's count goes once the interval is over, not before.
    while ((await signalCount()) < 2 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 200));
    expect(await signalCount()).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
  });

  // Last: it rotates the stack's signing key.
  it('counts violations after a signing key rotation: they are signed with the current key of the ring', async () => {
    const story = stories.get('1.6');
    const [implementer] = team.agents;
    const k1 = stack.keyRing.current;
    const k2 = signingKeyFromSeed(newSigningSeed(), 'k2');
    expect(
      (await stack.api.act(story.id, 'contract', implementer.key, { story_title: story.title, ac_count: 1 })).status,
    ).toBe(200);
    // Added, then the first key retired: the story, told by its next actions, trusts k2 alone.
    await stack.useKeyRing(keyRingOf(k2, k1));
    expect((await stack.api.act(story.id, 'claim', implementer.key)).status).toBe(200);
    await stack.useKeyRing(keyRingOf(k2));
    expect((await stack.api.act(story.id, 'start', implementer.key)).status).toBe(200);
    expect((await stack.api.act(story.id, 'request-review', implementer.key)).status).toBe(200);
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    expect((await handle.query<{ trustedKeys: string[] }>('story')).trustedKeys).toEqual([k2.publicKey]);

    for (let i = 0; i < 3; i++) {
      const r = await stack.api.act(story.id, 'report', implementer.key, { artifact: 'x' });
      expect(r.body.error?.code).toBe('self_report_blocked');
    }
    let count: number | undefined;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline && count !== 3;) {
      count = (await handle.describe()).typedSearchAttributes.get(CustodyViolations);
      if (count !== 3) await new Promise((r) => setTimeout(r, 250));
    }
    expect(count).toBe(3);
    expect(await currentDetails(story.workflow_id)).toContain('**custody violations: 3**');
  });
});
