/** The tamper-evident audit trail: a per-tenant hash chain, append-only for the application. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, driveToVerified, importBacklog, oneStoryBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let team: Team;
let other: Team;
beforeAll(async () => {
  stack = await startStack();
  [team, other] = await Promise.all([createTeam(stack.api, 2, 'chain'), createTeam(stack.api, 2, 'other-chain')]);
  for (const t of [team, other]) {
    const story = (await importBacklog(stack.api, t, oneStoryBacklog())).get('1.1');
    await driveToVerified(stack.api, story, {
      implementer: t.agents[0].key,
      reviewer: t.agents[1].key,
      verifier: t.orchestrator.key,
    });
    expect((await stack.api.act(story.id, 'verify', t.orchestrator.key, {})).status).toBe(409); // a rejected attempt joins the chain too
  }
});
afterAll(async () => stack?.stop());

const verify = async (key: string) => (await stack.api.get('/api/v1/audit/verify', key)).body.data;

describe('the audit hash chain', () => {
  it('holds over accepted and rejected rows, per tenant', async () => {
    const report = await verify(team.orchestrator.key);
    const { rows } = await stack.pool.query(
      `SELECT chain_seq, encode(hash, 'hex') AS hash, action, outcome FROM audit_events
       WHERE tenant_id = $1 ORDER BY chain_seq`,
      [team.tenantId],
    );
    // The tenant's signup, agents, project and import, then 7 accepted transitions and 1 rejected attempt.
    const transitions = rows.filter((r) => r.outcome === 'accepted' || r.outcome === 'rejected');
    expect(transitions.map((r) => `${r.action} ${r.outcome}`).slice(-8)).toEqual([
      ...['contract', 'claim', 'start', 'request-review', 'report', 'review-complete', 'verify'].map(
        (a) => `${a} accepted`,
      ),
      'verify rejected',
    ]);
    expect(rows.map((r) => Number(r.chain_seq))).toEqual(rows.map((_, i) => i + 1));
    // The head is what an auditor records: a later head that does not extend it shows a cut tail.
    expect(report).toEqual({
      ok: true,
      rows_checked: rows.length,
      first_broken: null,
      head: { chain_seq: rows.length, hash: rows[rows.length - 1].hash },
    });
  });

  it('cannot be changed or deleted through the application', async () => {
    await expect(
      stack.pool.query(`UPDATE audit_events SET code = 'x' WHERE tenant_id = $1`, [team.tenantId]),
    ).rejects.toThrow(/append-only/);
    await expect(stack.pool.query(`DELETE FROM audit_events WHERE tenant_id = $1`, [team.tenantId])).rejects.toThrow(
      /append-only/,
    );
    await expect(stack.pool.query(`TRUNCATE audit_events`)).rejects.toThrow(/append-only/);
    const { rows } = await stack.pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1`, [
      team.tenantId,
    ]);
    expect((await verify(team.orchestrator.key)).rows_checked).toBe(rows[0].n);
  });

  it('reports the first broken link after a superuser edits a row behind its back', async () => {
    const superuser = new pg.Client({ connectionString: stack.databaseUrl });
    await superuser.connect();
    try {
      const { rows } = await superuser.query(
        `SELECT id, chain_seq FROM audit_events WHERE tenant_id = $1 AND action = 'verify' AND outcome = 'accepted'`,
        [team.tenantId],
      );
      // Triggers off for this session only (superuser), then the verifier's identity is forged.
      await superuser.query(`SET session_replication_role = replica`);
      await superuser.query(`UPDATE audit_events SET actor_agent_id = $2 WHERE id = $1`, [
        rows[0].id,
        team.agents[0].id,
      ]);
      const report = await verify(team.admin.key);
      expect(report.ok).toBe(false);
      expect(report.first_broken).toEqual({
        id: String(rows[0].id),
        chain_seq: Number(rows[0].chain_seq),
        reason: 'hash_mismatch',
      });
      // Another tenant's chain is untouched.
      expect((await verify(other.admin.key)).ok).toBe(true);
      // A deleted row is found too: the chain has a gap.
      await superuser.query(`DELETE FROM audit_events WHERE tenant_id = $1 AND chain_seq = 2`, [other.tenantId]);
      expect((await verify(other.admin.key)).first_broken).toMatchObject({ chain_seq: 3, reason: 'missing_row' });
    } finally {
      await superuser.end();
    }
  });
});
