/**
 * A story's history is in the order its workflow judged each attempt. A rejected attempt's row is
 * written by the gateway as soon as it is refused; the transition it was judged against is written
 * by the worker, which can be later. Here the worker's write is held back (the story's row locked)
 * while a second claim is refused, so the rejected row is written first: the history must still
 * list the winning claim before the refusal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { createTeam, importBacklog, oneStoryBacklog, type Team } from '../support/api.js';
import { storyQuery } from '../../workflows/messages.js';
import { until } from '../support/until.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'history-order');
});
afterAll(async () => stack?.stop());

describe('GET /stories/:id/history', () => {
  it('lists a refusal after the accepted transition it was judged against, though its row was written first', async () => {
    const [winner, loser] = team.agents;
    const stories = await importBacklog(stack.api, team, oneStoryBacklog('Race', ['one']));
    const story = stories.get('1.1');
    expect((await stack.api.act(story.id, 'contract', winner.key, { story_title: 'Race', ac_count: 1 })).status).toBe(
      200,
    );

    // Hold the worker's write of the next transition: it locks the story's row first.
    const holder = await stack.pool.connect();
    let claimed: Promise<{ status: number }>;
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM stories WHERE id = $1 FOR UPDATE', [story.id]);
      claimed = stack.api.act(story.id, 'claim', winner.key);
      // The workflow has applied the claim (seq 2) though the database does not have it yet.
      const handle = stack.client.workflow.getHandle(story.workflow_id);
      await until('the claim applied', async () => ((await handle.query(storyQuery)).seq === 2 ? true : undefined));
      const refused = await stack.api.act(story.id, 'claim', loser.key);
      expect([refused.status, refused.body.error.code]).toEqual([409, 'invalid_transition']);
      const written = await stack.pool.query<{ outcome: string; action: string }>(
        'SELECT outcome, action FROM audit_events WHERE story_id = $1 ORDER BY chain_seq',
        [story.id],
      );
      // The refusal's row came before the claim's: the order the rows were written is not the story's.
      expect(written.rows.map((r) => `${r.action} ${r.outcome}`).slice(-1)).toEqual(['claim rejected']);
      // Until the claim is written the refusal is not listed: a reader whose cursor passed it
      // would never be given the claim, which sorts before it.
      const early = await stack.api.get(`/api/v1/stories/${story.id}/history`, team.orchestrator.key);
      expect(early.status).toBe(200);
      expect(early.body.data.map((h: any) => `${h.action} ${h.outcome}`)).toEqual(['contract accepted']);
    } finally {
      await holder.query('COMMIT');
      holder.release();
    }
    expect((await claimed).status).toBe(200);

    const history = await stack.api.get(`/api/v1/stories/${story.id}/history`, team.orchestrator.key);
    expect(history.status).toBe(200);
    const lifecycle = history.body.data.filter((h: any) => h.seq !== null || h.outcome === 'rejected');
    expect(
      lifecycle.map((h: any) => [
        h.action,
        h.outcome,
        h.actor.agent_id,
        h.seq,
        h.judged_after_seq,
        h.from.agent_status,
      ]),
    ).toEqual([
      ['contract', 'accepted', winner.id, 1, null, 'pending'],
      ['claim', 'accepted', winner.id, 2, null, 'contracted'],
      ['claim', 'rejected', loser.id, null, 2, 'assigned'],
    ]);

    // Page by page (one row a page), the same order, every row once.
    const paged: any[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: any } = await stack.api.get(
        `/api/v1/stories/${story.id}/history?limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        team.orchestrator.key,
      );
      expect(page.status).toBe(200);
      paged.push(...page.body.data);
      cursor = page.body.meta.next_cursor;
    } while (cursor);
    expect(paged.map((h) => h.id)).toEqual(history.body.data.map((h: any) => h.id));

    // The audit trail keeps the order the rows were written (its hash chain), and the chain holds.
    const verify = await stack.api.get('/api/v1/audit/verify', team.admin.key);
    expect(verify.body.data).toMatchObject({ ok: true });
  });
});
