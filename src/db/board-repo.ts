/**
 * What the board reads: a project's stories with the names of the agents in their chain, their
 * violation counts, and one story's whole history. Every query takes the tenant id.
 */
import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { STORY_PLACE } from './audit-repo.js';
import type { Role } from '../custody/actions.js';
import { CUSTODY_VIOLATIONS } from '../custody/errors.js';

export interface BoardSession {
  tenantId: string;
  agentId: string;
  keyId: string;
  role: Role;
  agentName: string;
  tenantName: string;
  csrfToken: string;
}

const digest = (token: string) => createHash('sha256').update(token).digest();

/** A new session for a key; returns the token for the cookie (only its digest is stored). */
export async function createBoardSession(
  pool: pg.Pool,
  caller: { tenantId: string; agentId: string; keyId: string },
  ttlMs: number,
): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await pool.query(
    `INSERT INTO board_sessions (token_hash, tenant_id, agent_id, key_id, csrf_token, expires_at)
     VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond')`,
    [digest(token), caller.tenantId, caller.agentId, caller.keyId, randomBytes(24).toString('base64url'), ttlMs],
  );
  // Expired sessions of anyone are swept now and then, here, where sessions are made.
  await pool.query('DELETE FROM board_sessions WHERE expires_at < now()');
  return token;
}

/** The live session a token stands for: not expired, its key not revoked. */
export async function boardSession(pool: pg.Pool, token: string): Promise<BoardSession | null> {
  const { rows } = await pool.query<BoardSession>(
    `SELECT s.tenant_id AS "tenantId", s.agent_id AS "agentId", s.key_id AS "keyId", a.role,
       a.name AS "agentName", t.name AS "tenantName", s.csrf_token AS "csrfToken"
     FROM board_sessions s
     JOIN api_keys k ON k.id = s.key_id AND k.revoked_at IS NULL
     JOIN agents a ON a.id = s.agent_id AND a.tenant_id = s.tenant_id
     JOIN tenants t ON t.id = s.tenant_id
     WHERE s.token_hash = $1 AND s.expires_at > now()`,
    [digest(token)],
  );
  return rows[0] ?? null;
}

export async function endBoardSession(pool: pg.Pool, token: string): Promise<void> {
  await pool.query('DELETE FROM board_sessions WHERE token_hash = $1', [digest(token)]);
}

export interface BoardStory {
  id: string;
  number: string;
  title: string;
  workflow_id: string;
  epic_number: number;
  agent_status: string;
  verified_status: string;
  assigned_agent_id: string | null;
  implementer_agent_id: string | null;
  reported_by_agent_id: string | null;
  reviewer_agent_id: string | null;
  verified_by_agent_id: string | null;
  iteration: number;
  stalled: boolean;
  violations: number;
  updated_at: Date;
}

const BOARD_STORY_COLUMNS = `s.id, s.number, s.title, s.workflow_id, e.number AS epic_number, s.agent_status,
  s.verified_status, s.assigned_agent_id,
  coalesce(s.assigned_agent_id, s.implementer_agent_ids[array_length(s.implementer_agent_ids, 1)]) AS implementer_agent_id,
  s.reported_by_agent_id, s.reviewer_agent_id, s.verified_by_agent_id, s.iteration, s.stalled, s.updated_at,
  (SELECT count(*)::int FROM audit_events v WHERE v.tenant_id = s.tenant_id AND v.story_id = s.id
     AND v.outcome = 'rejected' AND v.code = ANY($3)) AS violations`;

export async function boardStories(pool: pg.Pool, tenantId: string, projectId: string): Promise<BoardStory[]> {
  const { rows } = await pool.query<BoardStory>(
    `SELECT ${BOARD_STORY_COLUMNS}
     FROM stories s JOIN epics e ON e.id = s.epic_id
     WHERE s.tenant_id = $1 AND s.project_id = $2
     ORDER BY e.number, s.position`,
    [tenantId, projectId, [...CUSTODY_VIOLATIONS]],
  );
  return rows;
}

export async function boardStory(
  pool: pg.Pool,
  tenantId: string,
  storyId: string,
): Promise<(BoardStory & { project_id: string; review: Record<string, unknown> | null }) | null> {
  const { rows } = await pool.query<BoardStory & { project_id: string; review: Record<string, unknown> | null }>(
    `SELECT ${BOARD_STORY_COLUMNS}, s.project_id, s.review
     FROM stories s JOIN epics e ON e.id = s.epic_id
     WHERE s.tenant_id = $1 AND s.id = $2`,
    [tenantId, storyId, [...CUSTODY_VIOLATIONS]],
  );
  return rows[0] ?? null;
}

export interface TimelineEntry {
  id: string;
  outcome: 'accepted' | 'rejected';
  code: string | null;
  action: string;
  actor_agent_id: string | null;
  actor_role: string | null;
  from_agent_status: string | null;
  to_agent_status: string | null;
  from_verified_status: string | null;
  to_verified_status: string | null;
  seq: string | null;
  payload: Record<string, unknown>;
  occurred_at: Date;
}

/** Every attempt on the story, accepted and rejected, in the order the API's history lists them (the newest 500). */
export async function storyTimeline(pool: pg.Pool, tenantId: string, storyId: string): Promise<TimelineEntry[]> {
  const { rows } = await pool.query<TimelineEntry>(
    `SELECT * FROM (
       SELECT * FROM (
         SELECT e.id, e.outcome, e.code, e.action, e.actor_agent_id, e.actor_role, e.from_agent_status,
           e.to_agent_status, e.from_verified_status, e.to_verified_status, e.seq, e.payload, e.occurred_at,
           e.chain_seq, ${STORY_PLACE}
         FROM audit_events e WHERE e.tenant_id = $1 AND e.story_id = $2
       ) placed ORDER BY place DESC, after_transition DESC, chain_seq DESC LIMIT 500
     ) newest ORDER BY place, after_transition, chain_seq`,
    [tenantId, storyId],
  );
  return rows;
}

export async function agentNames(pool: pg.Pool, tenantId: string): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ id: string; name: string }>('SELECT id, name FROM agents WHERE tenant_id = $1', [
    tenantId,
  ]);
  return new Map(rows.map((r) => [r.id, r.name]));
}
