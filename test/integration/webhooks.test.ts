/** Webhooks: signed deliveries through a Temporal workflow, retried with backoff, every attempt recorded. */
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, driveToVerified, importBacklog, oneStoryBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';
import { until } from '../support/until.js';

interface Received {
  body: string;
  signature: string;
  event: string;
}

/** A local receiver that fails the first `failures` attempts of each delivery with a 500. */
function receiver(
  failures: number,
): Promise<{ server: Server; url: string; received: Received[]; answered: number[] }> {
  const received: Received[] = [];
  const answered: number[] = [];
  const attemptsByDelivery = new Map<string, number>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const delivery = String(req.headers['x-custody-delivery']);
      const n = (attemptsByDelivery.get(delivery) ?? 0) + 1;
      attemptsByDelivery.set(delivery, n);
      const status = n <= failures ? 500 : 200;
      if (status === 200)
        received.push({
          body,
          signature: String(req.headers['x-signature']),
          event: String(req.headers['x-custody-event']),
        });
      answered.push(status);
      res.writeHead(status).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, answered }),
    ),
  );
}

let stack: Stack;
let team: Team;
beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'hooks');
});
afterAll(async () => stack?.stop());

describe('webhooks', () => {
  it('delivers signed events after failed attempts, records each attempt, and reports custody violations', async () => {
    const hook = await receiver(2);
    try {
      const created = await stack.api.post('/api/v1/webhooks', team.admin.key, {
        url: hook.url,
        events: ['story.verified', 'custody.violation'],
      });
      expect(created.status).toBe(201);
      const { id, secret } = created.body.data;
      expect(secret).toMatch(/^whsec_/);
      expect((await stack.api.get('/api/v1/webhooks', team.admin.key)).body.data[0]).not.toHaveProperty('secret');

      const story = (await importBacklog(stack.api, team, oneStoryBacklog())).get('1.1');
      const [implementer, reviewer] = team.agents;
      await driveToVerified(stack.api, story, {
        implementer: implementer.key,
        reviewer: reviewer.key,
        verifier: team.orchestrator.key,
      });
      const selfVerify = await stack.api.act(story.id, 'reject', implementer.key, { reason: 'x' });
      expect(selfVerify.status).toBe(403); // not a gate: no violation event
      const selfReview = await stack.api.act(story.id, 'report', implementer.key);
      expect(selfReview.status).toBe(409); // wrong state, not a violation either

      const received = await until('the verified event', async () =>
        hook.received.some((r) => r.event === 'story.verified') ? hook.received : undefined,
      );
      const verified = received.find((r) => r.event === 'story.verified')!;
      expect(verified.signature).toBe(`sha256=${createHmac('sha256', secret).update(verified.body).digest('hex')}`);
      const payload = JSON.parse(verified.body);
      expect(payload).toMatchObject({
        event: 'story.verified',
        data: { story: { id: story.id }, transition: { action: 'verify', actor: { agent_id: team.orchestrator.id } } },
      });

      const deliveries = await until('the delivery to be marked delivered', async () => {
        const r = await stack.api.get(`/api/v1/webhooks/${id}/deliveries`, team.admin.key);
        return r.body.data.every((d: any) => d.status === 'delivered') && r.body.data.length > 0
          ? r.body.data
          : undefined;
      });
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0].attempts.map((a: any) => a.status_code)).toEqual([500, 500, 200]);
    } finally {
      hook.server.close();
    }
  });

  it('fires custody.violation when a gate rejects, and gives up after the retry budget', async () => {
    const hook = await receiver(100);
    try {
      const created = await stack.api.post('/api/v1/webhooks', team.admin.key, {
        url: hook.url,
        events: ['custody.violation'],
      });
      const hookId = created.body.data.id;
      const story = (
        await importBacklog(stack.api, team, {
          epics: [{ number: 2, title: 'E', stories: [{ number: '2.1', title: 'Gate', acceptance_criteria: ['a'] }] }],
        })
      ).get('2.1');
      const implementer = team.agents[0];
      for (const [action, body] of [
        ['contract', { story_title: 'Gate', ac_count: 1 }],
        ['claim', {}],
        ['start', {}],
        ['request-review', {}],
      ] as const) {
        expect((await stack.api.act(story.id, action, implementer.key, body)).status).toBe(200);
      }
      const self = await stack.api.act(story.id, 'report', implementer.key);
      expect(self.body.error.code).toBe('self_report_blocked');
      const failed = await until('the delivery to fail for good', async () => {
        const r = await stack.api.get(`/api/v1/webhooks/${hookId}/deliveries`, team.admin.key);
        return r.body.data[0]?.status === 'failed' ? r.body.data[0] : undefined;
      });
      expect(failed.event).toBe('custody.violation');
      expect(failed.payload).toMatchObject({
        code: 'self_report_blocked',
        action: 'report',
        actor: { agent_id: implementer.id },
      });
      // The budget in tests is 4 attempts, each recorded.
      expect(failed.attempts.map((a: any) => a.status_code)).toEqual([500, 500, 500, 500]);
      expect(hook.answered).toHaveLength(4);
    } finally {
      hook.server.close();
    }
  });

  it('sends a test delivery on request, and refuses bad subscriptions', async () => {
    const hook = await receiver(0);
    try {
      const created = await stack.api.post('/api/v1/webhooks', team.admin.key, {
        url: hook.url,
        events: ['story.claimed'],
      });
      const test = await stack.api.post(`/api/v1/webhooks/${created.body.data.id}/test`, team.admin.key);
      expect(test.status).toBe(201);
      await until('the test delivery', async () => (hook.received.length > 0 ? true : undefined));
      expect(hook.received[0].event).toBe('webhook.test');
      expect(
        (await stack.api.post('/api/v1/webhooks', team.admin.key, { url: 'ftp://x', events: ['story.claimed'] }))
          .status,
      ).toBe(400);
      expect(
        (await stack.api.post('/api/v1/webhooks', team.admin.key, { url: hook.url, events: ['story.exploded'] }))
          .status,
      ).toBe(400);
      expect(
        (await stack.api.post('/api/v1/webhooks', team.orchestrator.key, { url: hook.url, events: ['story.claimed'] }))
          .status,
      ).toBe(403);
    } finally {
      hook.server.close();
    }
  });

  it('starts a delivery that was committed but never started (its start failed, or its process died)', async () => {
    const hook = await receiver(0);
    try {
      const own = await createTeam(stack.api, 1, 'forgotten');
      const created = await stack.api.post('/api/v1/webhooks', own.admin.key, {
        url: hook.url,
        events: ['story.claimed'],
      });
      // As the gateway leaves it when Temporal refuses the start: committed, pending, never dispatched.
      const { rows } = await stack.pool.query(
        `INSERT INTO webhook_deliveries (tenant_id, webhook_id, event, source_key, payload, created_at)
         VALUES ($1, $2, 'custody.violation', 'forgotten-1', '{"code":"self_verify_blocked"}', now() - interval '1 minute') RETURNING id`,
        [own.tenantId, created.body.data.id],
      );
      await until('the sweep to deliver it', async () =>
        hook.received.some((r) => r.event === 'custody.violation') ? true : undefined,
      );
      const row = await until('the delivery to be marked', async () => {
        const r = await stack.pool.query('SELECT status, dispatched_at FROM webhook_deliveries WHERE id = $1', [
          rows[0].id,
        ]);
        return r.rows[0].status === 'delivered' ? r.rows[0] : undefined;
      });
      expect(row.dispatched_at).not.toBeNull();
      expect(hook.received.filter((r) => r.event === 'custody.violation')).toHaveLength(1);
    } finally {
      hook.server.close();
    }
  });

  it("keeps a tenant's deliveries past its share (4 in flight) in the outbox, and sends them as earlier ones end", async () => {
    // A receiver that holds every request open until told to answer.
    const held: { delivery: string; answer: () => void }[] = [];
    const order: string[] = [];
    let holding = true;
    const server = createServer((req, res) => {
      req.resume();
      const delivery = String(req.headers['x-custody-delivery']);
      order.push(delivery);
      const answer = () => res.writeHead(200).end();
      if (holding) held.push({ delivery, answer });
      else answer();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const own = await createTeam(stack.api, 1, 'share');
      const created = await stack.api.post('/api/v1/webhooks', own.admin.key, {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hold`,
        events: ['story.claimed'],
      });
      for (let i = 0; i < 7; i++) {
        expect((await stack.api.post(`/api/v1/webhooks/${created.body.data.id}/test`, own.admin.key)).status).toBe(201);
      }
      const counts = async () =>
        (
          await stack.pool.query<{ in_flight: number; waiting: number; delivered: number }>(
            `SELECT count(*) FILTER (WHERE status = 'pending' AND dispatched_at IS NOT NULL)::int AS in_flight,
               count(*) FILTER (WHERE status = 'pending' AND dispatched_at IS NULL)::int AS waiting,
               count(*) FILTER (WHERE status = 'delivered')::int AS delivered
             FROM webhook_deliveries WHERE tenant_id = $1`,
            [own.tenantId],
          )
        ).rows[0];
      await until('four deliveries to be held open', async () => (held.length === 4 ? true : undefined));
      // A while later still four: the other three wait in the outbox, not on the Temporal server.
      await new Promise((r) => setTimeout(r, 1500));
      expect(held).toHaveLength(4);
      expect(await counts()).toEqual({ in_flight: 4, waiting: 3, delivered: 0 });
      const firstFour = held.map((h) => h.delivery);
      holding = false;
      for (const h of held) h.answer();
      await until('all seven delivered', async () => ((await counts()).delivered === 7 ? true : undefined));
      expect(await counts()).toEqual({ in_flight: 0, waiting: 0, delivered: 7 });
      // The oldest went first; each of the waiting ones was sent once, after a place came free.
      const oldest = await stack.pool.query<{ id: string }>(
        'SELECT id FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY created_at, id LIMIT 4',
        [own.tenantId],
      );
      expect(new Set(firstFour)).toEqual(new Set(oldest.rows.map((r) => r.id)));
      expect(order).toHaveLength(7);
      expect(new Set(order).size).toBe(7);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('frees the place of a delivery whose workflow was terminated from outside; the next ones go', async () => {
    // A receiver that holds every request open until told to answer.
    const held: { delivery: string; answer: () => void }[] = [];
    let holding = true;
    const server = createServer((req, res) => {
      req.resume();
      const delivery = String(req.headers['x-custody-delivery']);
      const answer = () => res.writeHead(200).end();
      if (holding) held.push({ delivery, answer });
      else answer();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const own = await createTeam(stack.api, 1, 'terminated');
      const created = await stack.api.post('/api/v1/webhooks', own.admin.key, {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hold`,
        events: ['story.claimed'],
      });
      for (let i = 0; i < 6; i++) {
        expect((await stack.api.post(`/api/v1/webhooks/${created.body.data.id}/test`, own.admin.key)).status).toBe(201);
      }
      const counts = async () =>
        (
          await stack.pool.query<{ in_flight: number; waiting: number; delivered: number; failed: number }>(
            `SELECT count(*) FILTER (WHERE status = 'pending' AND dispatched_at IS NOT NULL)::int AS in_flight,
               count(*) FILTER (WHERE status = 'pending' AND dispatched_at IS NULL)::int AS waiting,
               count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
               count(*) FILTER (WHERE status = 'failed')::int AS failed
             FROM webhook_deliveries WHERE tenant_id = $1`,
            [own.tenantId],
          )
        ).rows[0];
      await until('four deliveries to be held open', async () => (held.length === 4 ? true : undefined));
      expect(await counts()).toEqual({ in_flight: 4, waiting: 2, delivered: 0, failed: 0 });

      // An operator terminates one delivery's workflow (the Temporal UI's button does the same).
      const terminated = held[0].delivery;
      await stack.client.workflow.getHandle(`webhook-delivery/${terminated}`).terminate('operator');
      // The sweep sees the closed run: the delivery ends as failed, a waiting one takes its place.
      await until('the place to be freed', async () => {
        const c = await counts();
        return c.failed === 1 && c.in_flight === 4 && c.waiting === 1 ? true : undefined;
      });
      const status = await stack.pool.query<{ status: string }>('SELECT status FROM webhook_deliveries WHERE id = $1', [
        terminated,
      ]);
      expect(status.rows[0].status).toBe('failed');

      holding = false;
      for (const h of held.splice(0)) h.answer();
      await until('the rest delivered', async () => ((await counts()).delivered === 5 ? true : undefined));
      expect(await counts()).toEqual({ in_flight: 0, waiting: 0, delivered: 5, failed: 1 });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('removes a webhook: nothing more is sent, its pending deliveries end, its past stays readable', async () => {
    // A receiver that always fails, slowly: the retry budget (4 attempts) would take seconds.
    let attempts = 0;
    const server = createServer((_req, res) => {
      attempts += 1;
      setTimeout(() => res.writeHead(500).end(), 300);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const own = await createTeam(stack.api, 1, 'removal');
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const id = (await stack.api.post('/api/v1/webhooks', own.admin.key, { url, events: ['story.claimed'] })).body.data
        .id;
      expect((await stack.api.post(`/api/v1/webhooks/${id}/test`, own.admin.key)).status).toBe(201);
      await until('a first attempt', async () => (attempts > 0 ? true : undefined));
      expect((await stack.api.call('DELETE', `/api/v1/webhooks/${id}`, { key: own.orchestrator.key })).status).toBe(
        403,
      );
      const removed = await stack.api.call('DELETE', `/api/v1/webhooks/${id}`, { key: own.admin.key });
      expect(removed.status).toBe(200);
      expect(removed.body.data.id).toBe(id);
      expect((await stack.api.get('/api/v1/webhooks', own.admin.key)).body.data).toEqual([]);
      expect((await stack.api.post(`/api/v1/webhooks/${id}/test`, own.admin.key)).status).toBe(404);
      expect((await stack.api.call('DELETE', `/api/v1/webhooks/${id}`, { key: own.admin.key })).status).toBe(404);
      const deliveries = (await stack.api.get(`/api/v1/webhooks/${id}/deliveries`, own.admin.key)).body.data;
      expect(deliveries.map((d: any) => d.status)).toEqual(['failed']);
      // Left alone, the budget would reach 4 attempts within about 2 s.
      await new Promise((r) => setTimeout(r, 3000));
      expect(attempts).toBeLessThanOrEqual(2);
    } finally {
      server.close();
    }
  });

  it('holds a tenant to 25 webhooks (QUOTA_WEBHOOKS)', async () => {
    const own = await createTeam(stack.api, 1, 'many-hooks');
    for (let i = 0; i < 20; i++) {
      expect(
        (
          await stack.api.post('/api/v1/webhooks', own.admin.key, {
            url: `http://127.0.0.1:9/h${i}`,
            events: ['story.verified'],
          })
        ).status,
      ).toBe(201);
    }
    // Ten at once for the last five places: the count cannot be raced.
    const racing = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        stack.api.post('/api/v1/webhooks', own.admin.key, {
          url: `http://127.0.0.1:9/r${i}`,
          events: ['story.verified'],
        }),
      ),
    );
    expect(racing.map((r) => r.status).sort()).toEqual([201, 201, 201, 201, 201, 403, 403, 403, 403, 403]);
    const over = await stack.api.post('/api/v1/webhooks', own.admin.key, {
      url: 'http://127.0.0.1:9/h25',
      events: ['story.verified'],
    });
    expect(over.status).toBe(403);
    expect(over.body.error).toMatchObject({ code: 'quota_exceeded', context: { resource: 'webhooks', limit: 25 } });
    const first = (await stack.api.get('/api/v1/webhooks', own.admin.key)).body.data[0].id;
    expect((await stack.api.call('DELETE', `/api/v1/webhooks/${first}`, { key: own.admin.key })).status).toBe(200);
    expect(
      (
        await stack.api.post('/api/v1/webhooks', own.admin.key, {
          url: 'http://127.0.0.1:9/h25',
          events: ['story.verified'],
        })
      ).status,
    ).toBe(201);
  });
});

describe('a webhook for one project (F4)', () => {
  it('takes project_id (a project of the tenant), shows it, and hears only that project’s events', async () => {
    const t = await createTeam(stack.api, 0, 'hooks-scoped');
    const other = await stack.api.post('/api/v1/projects', t.admin.key, { name: 'Other', slug: 'other' });
    expect(other.status).toBe(201);
    const otherProject = other.body.data.id as string;
    const scopedHook = await receiver(0);
    const tenantHook = await receiver(0);
    try {
      const events = ['project.imported', 'agent.registered'];
      const scoped = await stack.api.post('/api/v1/webhooks', t.admin.key, {
        url: scopedHook.url,
        events,
        project_id: otherProject,
      });
      console.log(
        `POST /webhooks with project_id: ${scoped.status} ${JSON.stringify(scoped.body.data ?? scoped.body)}`,
      );
      expect(scoped.status).toBe(201);
      expect(scoped.body.data.project_id).toBe(otherProject);
      const unscoped = await stack.api.post('/api/v1/webhooks', t.admin.key, { url: tenantHook.url, events });
      expect(unscoped.body.data.project_id).toBeNull();
      const listed = (await stack.api.get('/api/v1/webhooks', t.admin.key)).body.data;
      expect(listed.map((w: any) => [w.id, w.project_id])).toEqual([
        [scoped.body.data.id, otherProject],
        [unscoped.body.data.id, null],
      ]);

      // Another tenant's project is not found; a malformed id is a bad body.
      const foreign = await stack.api.post('/api/v1/webhooks', t.admin.key, {
        url: scopedHook.url,
        events,
        project_id: team.projectId,
      });
      expect([foreign.status, foreign.body.error?.code]).toEqual([404, 'not_found']);
      const malformed = await stack.api.post('/api/v1/webhooks', t.admin.key, {
        url: scopedHook.url,
        events,
        project_id: 'p1',
      });
      expect([malformed.status, malformed.body.error?.code]).toEqual([400, 'invalid_body']);

      const backlog = (n: number) => ({
        epics: [
          { number: n, title: 'Site', stories: [{ number: `${n}.1`, title: 'Home', acceptance_criteria: ['a'] }] },
        ],
      });
      expect((await stack.api.post(`/api/v1/projects/${t.projectId}/import`, t.admin.key, backlog(1))).status).toBe(
        201,
      );
      expect((await stack.api.post(`/api/v1/projects/${otherProject}/import`, t.admin.key, backlog(2))).status).toBe(
        201,
      );
      const registered = await stack.api.post('/api/v1/agents/register', t.admin.key, { name: 'late', role: 'agent' });
      expect(registered.status).toBe(201);

      await until('the tenant webhook to hear all three', async () =>
        tenantHook.received.length >= 3 ? true : undefined,
      );
      const projectsOf = (hook: { received: Received[] }) =>
        hook.received.map((r) => `${r.event}:${JSON.parse(r.body).data.project_id ?? '-'}`).sort();
      expect(projectsOf(tenantHook)).toEqual(
        [`project.imported:${t.projectId}`, `project.imported:${otherProject}`, 'agent.registered:-'].sort(),
      );
      // Enqueued in the same transactions as the tenant webhook's: nothing more will come.
      const deliveries = await stack.api.get(`/api/v1/webhooks/${scoped.body.data.id}/deliveries`, t.admin.key);
      expect(deliveries.body.data.map((d: any) => d.event)).toEqual(['project.imported']);
      await until('the scoped delivery', async () => (scopedHook.received.length >= 1 ? true : undefined));
      expect(projectsOf(scopedHook)).toEqual([`project.imported:${otherProject}`]);
    } finally {
      scopedHook.server.close();
      tenantHook.server.close();
    }
  });
});
