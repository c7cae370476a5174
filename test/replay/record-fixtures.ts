/**
 * Records story workflow histories as replay fixtures: `npm run replay:record`. Re-record only on
 * purpose (a deliberate, patched workflow change); the replay test keeps old histories replaying.
 */
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { bundleWorkflowCode } from '@temporalio/worker';
import { keyRingOf, newSigningSeed, signEnvelope, signingKeyFromSeed } from '../../src/custody/identity.js';
import { locateTemporalCli } from '../../src/temporal/cli.js';
import { storyUpdates } from '../../workflows/messages.js';
import { startDevServer } from '../../src/temporal/dev-server.js';
import { WORKFLOWS_PATH } from '../../src/temporal/workflow-bundle.js';
import { freePort } from '../global-setup.js';
import { createTeam, driveToVerified, importBacklog } from '../support/api.js';
import { startStack } from '../support/stack.js';

const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));
/** Fixture file → its workflow id: a replay must run under the id the history ran under (signatures bind it). */
const WORKFLOW_IDS = fileURLToPath(new URL('./workflow-ids.json', import.meta.url));

const executable = await locateTemporalCli();
if (!executable) throw new Error('no Temporal CLI');
const server = await startDevServer({ executable, port: await freePort() });
const dir = mkdtempSync(join(tmpdir(), 'custody-record-'));
const bundlePath = join(dir, 'bundle.js');
writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH })).code);
const stack = await startStack({
  temporalAddress: server.address,
  workflowBundlePath: bundlePath,
  workflowSettings: { maxTransitionsPerRun: 6 },
  // Violation counts reach the story within the recording (the gateway's default is a minute).
  violationSignalIntervalMs: 300,
});

try {
  const team = await createTeam(stack.api, 4, 'replay');
  const stories = await importBacklog(stack.api, team, {
    epics: [
      {
        number: 1,
        title: 'Replay',
        stories: [
          { number: '1.1', title: 'Full lifecycle', acceptance_criteria: ['a', 'b'] },
          { number: '1.2', title: 'Rework and continue-as-new', acceptance_criteria: ['a'], depends_on: ['1.1'] },
        ],
      },
    ],
  });
  const [implementer, reviewer, second] = team.agents;
  const first = stories.get('1.1')!;
  const rework = stories.get('1.2')!;
  // Rejections (gates, wrong states) and a claim race, then the whole lifecycle.
  await stack.api.act(first.id, 'claim', implementer.key);
  await stack.api.act(first.id, 'contract', implementer.key, { story_title: 'wrong', ac_count: 2 });
  await stack.api.act(first.id, 'contract', implementer.key, { story_title: first.title, ac_count: 2 });
  await Promise.all(team.agents.map((a) => stack.api.act(first.id, 'claim', a.key)));
  const holder = team.agents.find((a) => a.id === stories.get('1.1')!.assigned_agent_id) ?? (await holderOf(first.id));
  await stack.api.act(first.id, 'unclaim', holder.key);
  await driveToVerifiedFromContracted(first.id, first.title);

  async function holderOf(storyId: string) {
    const story = (await stack.api.get(`/api/v1/stories/${storyId}`, implementer.key)).body.data;
    return team.agents.find((a) => a.id === story.assigned_agent_id)!;
  }

  async function driveToVerifiedFromContracted(storyId: string, title: string) {
    const story = (await stack.api.get(`/api/v1/stories/${storyId}`, implementer.key)).body.data;
    if (story.agent_status === 'contracted') {
      await stack.api.act(storyId, 'claim', implementer.key);
      await stack.api.act(storyId, 'start', implementer.key);
      await stack.api.act(storyId, 'request-review', implementer.key);
      await stack.api.act(storyId, 'report', implementer.key); // self-report: rejected
      await stack.api.act(storyId, 'report', implementer.key); // again: one coalesced violation count
      await new Promise((r) => setTimeout(r, 1000));
      await stack.api.act(storyId, 'report', reviewer.key);
      await stack.api.act(storyId, 'review-complete', reviewer.key, {
        review_type: 'standard',
        findings_count: 1,
        fixes_count: 1,
        disproved_count: 0,
        summary: 'ok',
      });
      await stack.api.act(storyId, 'verify', team.orchestrator.key, { summary: `${title} done` });
    }
  }

  await driveToVerified(stack.api, rework, {
    implementer: implementer.key,
    reviewer: reviewer.key,
    verifier: team.orchestrator.key,
  });
  await stack.api.act(rework.id, 'reject', team.orchestrator.key, { reason: 'regression' });
  await driveToVerified(stack.api, rework, {
    implementer: second.key,
    reviewer: reviewer.key,
    verifier: team.orchestrator.key,
  });

  // Time: heartbeats, a lease that runs out, a stall, and a late start judged after the expiry.
  const clocks = (
    await stack.api.post('/api/v1/projects', team.admin.key, {
      name: 'Clocks',
      slug: 'clocks',
      lease_ttl_seconds: 2,
      stall_after_seconds: 2,
    })
  ).body.data;
  const timed = (
    await stack.api.post(`/api/v1/projects/${clocks.id}/import`, team.orchestrator.key, {
      epics: [
        {
          number: 2,
          title: 'Clocks',
          stories: [{ number: '2.1', title: 'Leases and stalls', acceptance_criteria: ['a'] }],
        },
      ],
    })
  ).body.data.stories[0];
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await stack.api.act(timed.id, 'contract', implementer.key, { story_title: timed.title, ac_count: 1 });
  await stack.api.act(timed.id, 'claim', implementer.key);
  for (let i = 0; i < 2; i++) {
    await pause(800);
    await stack.api.post(`/api/v1/stories/${timed.id}/heartbeat`, implementer.key);
  }
  await pause(3500); // the lease runs out
  await stack.api.act(timed.id, 'start', implementer.key); // refused: no longer the holder
  await stack.api.act(timed.id, 'claim', second.key);
  await stack.api.act(timed.id, 'start', second.key);
  await stack.api.act(timed.id, 'request-review', second.key);
  await pause(3500); // the review waits too long: stalled
  await stack.api.act(timed.id, 'report', reviewer.key);
  await stack.api.act(timed.id, 'review-complete', reviewer.key, {
    review_type: 'standard',
    findings_count: 0,
    fixes_count: 0,
    disproved_count: 0,
    summary: 'ok',
  });
  await stack.api.act(timed.id, 'verify', team.orchestrator.key, {});

  // Integrity: a story learns a new key from key ring news; once the old key is retired from the
  // worker's ring, an action signed with it (sent straight to the workflow) is refused by the
  // worker, the run is held, and an admin's resume starts a new run from the database.
  const guarded = (
    await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, {
      epics: [{ number: 1, title: 'Replay', stories: [{ number: '1.3', title: 'Held', acceptance_criteria: ['a'] }] }],
    })
  ).body.data.stories.find((s: { number: string }) => s.number === '1.3');
  const oldKey = stack.keyRing.current;
  const newKey = signingKeyFromSeed(newSigningSeed(), 'k2');
  await stack.useKeyRing(keyRingOf(newKey, oldKey));
  await stack.api.act(guarded.id, 'contract', implementer.key, { story_title: guarded.title, ac_count: 1 });
  await stack.useKeyRing(keyRingOf(newKey));
  const leaked = signEnvelope(oldKey, guarded.workflow_id, {
    updateId: 'leaked-claim',
    action: 'claim',
    actor: { tenantId: team.tenantId, agentId: implementer.id, role: 'agent' },
    body: {},
    issuedAt: Date.now(),
  });
  await stack.client.workflow
    .getHandle(guarded.workflow_id)
    .executeUpdate(storyUpdates.claim, { args: [leaked], updateId: leaked.updateId })
    .catch(() => undefined); // held: refused
  await stack.api.post(`/api/v1/stories/${guarded.id}/resume`, team.admin.key, { reason: 'key retired' });
  await stack.api.act(guarded.id, 'claim', second.key);

  // Review policies (patched 'review-policies'): two rounds with labels and an aggregator, a round
  // that stalls on its own deadline (named in the stall), a stale review refused, fixes reported
  // again, the last round signed again, verify.
  const third = team.agents[3];
  await stack.api.call('PUT', `/api/v1/agents/${second.id}/labels`, {
    key: team.admin.key,
    body: { labels: ['security-adversary'] },
  });
  const governed = (await stack.api.post('/api/v1/projects', team.admin.key, { name: 'Policies', slug: 'policies' }))
    .body.data;
  await stack.api.call('PUT', `/api/v1/projects/${governed.id}/review_policy`, {
    key: team.admin.key,
    body: {
      rounds: [
        { name: 'team', min_reviewers: 2, aggregator_required: true, deadline_seconds: 2 },
        { name: 'adversarial', min_reviewers: 1, required_labels: ['security-adversary'] },
      ],
    },
  });
  const policed = (
    await stack.api.post(`/api/v1/projects/${governed.id}/import`, team.orchestrator.key, {
      epics: [
        { number: 3, title: 'Policies', stories: [{ number: '3.1', title: 'Pipeline', acceptance_criteria: ['a'] }] },
      ],
    })
  ).body.data.stories[0];
  const sha = (n: number) => `${n}`.repeat(40);
  const review = { review_type: 'team', findings_count: 1, fixes_count: 1, disproved_count: 0, summary: 'ok' };
  await stack.api.act(policed.id, 'contract', implementer.key, { story_title: policed.title, ac_count: 1 });
  for (const action of ['claim', 'start', 'request-review']) await stack.api.act(policed.id, action, implementer.key);
  await stack.api.act(policed.id, 'report', team.orchestrator.key, {
    artifact: { artifact_type: 'commit', path: sha(1) },
  });
  await stack.api.act(policed.id, 'review-complete', reviewer.key, review);
  await stack.api.act(policed.id, 'review-complete', reviewer.key, review); // refused: duplicate_review
  await pause(3500); // the team round waits too long: stalled, naming the round
  await stack.api.act(policed.id, 'review-complete', third.key, review);
  await stack.api.act(policed.id, 'aggregate', reviewer.key, { summary: 'x', findings_count: 2, fixes_count: 2 }); // refused
  await stack.api.act(policed.id, 'aggregate', second.key, {
    summary: 'both fixed',
    findings_count: 2,
    fixes_count: 2,
  });
  await stack.api.act(policed.id, 'report', team.orchestrator.key, {
    artifact: { artifact_type: 'commit', path: sha(2) },
  });
  await stack.api.act(policed.id, 'review-complete', third.key, { ...review, artifact: sha(1) }); // refused: stale
  await stack.api.act(policed.id, 'verify', team.orchestrator.key, {}); // refused: round_incomplete
  await stack.api.act(policed.id, 'review-complete', second.key, { ...review, findings_count: 0, fixes_count: 0 });
  await stack.api.act(policed.id, 'verify', team.orchestrator.key, {});

  mkdirSync(FIXTURES, { recursive: true });
  const ids: Record<string, string> = existsSync(WORKFLOW_IDS) ? JSON.parse(readFileSync(WORKFLOW_IDS, 'utf8')) : {};
  let written = 0;
  // Named for what each holds: when it was recorded, the story and its scenario (its title), and
  // which run of it (started, continued as new, or resumed by an admin).
  const recordedAt = new Date().toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  for (const story of [first, rework, timed, guarded, policed]) {
    const runs = [];
    for await (const run of stack.client.workflow.list({ query: `WorkflowId="${story.workflow_id}"` })) runs.push(run);
    runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    for (const [index, run] of runs.entries()) {
      // The CLI writes the standard JSON history format that replay reads.
      const json = execFileSync(
        executable,
        [
          'workflow',
          'show',
          '--address',
          server.address,
          '--workflow-id',
          story.workflow_id,
          '--run-id',
          run.runId,
          '--output',
          'json',
        ],
        { maxBuffer: 64 << 20 },
      );
      const name = `${recordedAt}-${story.number.replace('.', '_')}-${slug(story.title)}-run${index + 1}-${runKind(json)}.json`;
      writeFileSync(join(FIXTURES, name), json);
      ids[name] = story.workflow_id;
      written++;
    }
  }
  writeFileSync(WORKFLOW_IDS, `${JSON.stringify(ids, null, 2)}\n`);
  process.stdout.write(`wrote ${written} histories to ${FIXTURES}\n`);
} finally {
  await stack.stop();
  await server.stop();
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/** How the run began: started, continued as new from the run before, or resumed by an admin. */
function runKind(historyJson: Buffer): 'started' | 'continued' | 'resumed' {
  const started = (
    JSON.parse(historyJson.toString('utf8')) as {
      events: {
        workflowExecutionStartedEventAttributes: {
          continuedExecutionRunId?: string;
          input: { payloads: { data: string }[] };
        };
      }[];
    }
  ).events[0].workflowExecutionStartedEventAttributes;
  if (started.continuedExecutionRunId) return 'continued';
  const input = JSON.parse(Buffer.from(started.input.payloads[0].data, 'base64').toString('utf8')) as {
    carried?: unknown;
  };
  return input.carried ? 'resumed' : 'started';
}
