/**
 * A webhook receiver written for loopctl, unchanged: it verifies `x-signature-256` as loopctl
 * documents it (`sha256=` and the lowercase hex HMAC-SHA256 of the raw body with the webhook's
 * secret, compared in constant time), takes `x-webhook-id` as the event id and
 * `x-webhook-timestamp` (Unix seconds) against replays, and reads `{id, event, timestamp, data}`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, driveToVerified, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';
import { until } from '../support/until.js';

interface Delivery {
  id: string;
  event: string;
  timestamp: string;
  data: any;
}

/** loopctl's receiver: refuses (401) anything whose signature, id or timestamp does not hold. */
function loopctlReceiver(secret: () => string) {
  const accepted: Delivery[] = [];
  const refused: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const given = String(req.headers['x-signature-256'] ?? '');
      const expected = `sha256=${createHmac('sha256', secret()).update(raw).digest('hex')}`;
      const signed = given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
      const age = Math.abs(Date.now() / 1000 - Number(req.headers['x-webhook-timestamp']));
      const body = signed ? (JSON.parse(raw.toString('utf8')) as Delivery) : null;
      if (!signed || !(age < 300) || !body || req.headers['x-webhook-id'] !== body.id) {
        refused.push(given);
        res.writeHead(401).end();
        return;
      }
      accepted.push(body);
      res.writeHead(200).end();
    });
  });
  return new Promise<{ server: Server; url: string; accepted: Delivery[]; refused: string[] }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/loopctl`, accepted, refused }),
    ),
  );
}

let stack: Stack;
let team: Team;
beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'loopctl-hooks');
});
afterAll(async () => stack?.stop());

describe("webhooks as loopctl's receivers expect them", () => {
  it("verify under loopctl's signature scheme and carry loopctl's event names beside custody's", async () => {
    let secret = '';
    const hook = await loopctlReceiver(() => secret);
    try {
      const created = await stack.api.post('/api/v1/webhooks', team.admin.key, {
        url: hook.url,
        events: [
          'project.imported',
          'story.status_changed',
          'artifact.reported',
          'story.review_completed',
          'story.verified',
          'epic.completed',
          'story.backfilled',
          'agent.registered',
          'story.reported',
        ],
      });
      expect(created.status).toBe(201);
      secret = created.body.data.secret;

      const imported = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, {
        epics: [
          {
            number: 4,
            title: 'Hooks',
            stories: [
              { number: '4.1', title: 'Send', acceptance_criteria: ['sends'] },
              { number: '4.2', title: 'Old work', acceptance_criteria: [] },
            ],
          },
        ],
      });
      expect(imported.status).toBe(201);
      const [send, old] = imported.body.data.stories;
      const [implementer, reviewer] = team.agents;
      await driveToVerified(stack.api, send, {
        implementer: implementer.key,
        reviewer: reviewer.key,
        verifier: team.orchestrator.key,
      });
      const backfill = await stack.api.act(old.id, 'backfill', team.orchestrator.key, { reason: 'done before' });
      expect(backfill.status).toBe(200);
      expect(
        (await stack.api.post('/api/v1/agents/register', team.admin.key, { name: 'late', role: 'agent' })).status,
      ).toBe(201);

      const names = await until('every event', () => {
        const seen = new Set(hook.accepted.map((d) => d.event));
        const wanted = [
          'project.imported',
          'story.status_changed',
          'artifact.reported',
          'story.review_completed',
          'story.verified',
          'story.backfilled',
          'epic.completed',
          'agent.registered',
          'story.reported',
        ];
        return wanted.every((e) => seen.has(e)) ? seen : undefined;
      });
      expect(names.size).toBe(9);
      expect(hook.refused).toEqual([]);
      for (const d of hook.accepted) expect(Object.keys(d).sort()).toEqual(['data', 'event', 'id', 'timestamp']);
      // One status change per transition that changed a status: contract, claim, start,
      // request-review, report, verify of 4.1, and the backfill of 4.2 (review-complete changes none).
      const changes = hook.accepted.filter((d) => d.event === 'story.status_changed');
      expect(changes).toHaveLength(7);
      expect(changes.find((d) => d.data.new_status === 'assigned')!.data).toMatchObject({
        story_id: send.id,
        project_id: team.projectId,
        old_status: 'contracted',
        agent_id: implementer.id,
      });
      expect(hook.accepted.find((d) => d.event === 'epic.completed')!.data).toMatchObject({
        number: 4,
        stories_count: 2,
      });
      // A forged delivery fails the same check.
      const forged = await fetch(hook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-signature-256': `sha256=${'0'.repeat(64)}`,
          'x-webhook-id': 'x',
          'x-webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        },
        body: JSON.stringify({ id: 'x', event: 'story.verified', timestamp: new Date().toISOString(), data: {} }),
      });
      expect(forged.status).toBe(401);
    } finally {
      hook.server.close();
    }
  });
});
