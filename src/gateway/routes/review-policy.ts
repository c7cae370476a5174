/**
 * Review policies (per project, versioned, audited), agent labels (set by an admin, never by the
 * agent itself) and a story's reviews round by round, with its artifact chain.
 */
import { z } from 'zod';
import {
  NAME_PATTERN,
  POLICY_LIMITS,
  DEFAULT_POLICY,
  roundStatuses,
  type ReviewProgress,
} from '../../custody/policy.js';
import * as repo from '../../db/review-policy-repo.js';
import { getAgent } from '../../db/identity-repo.js';
import { getProject, getStory } from '../../db/story-repo.js';
import type { GatewayDeps } from '../app.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import { withUuid } from './params.js';

const Name = z.string().regex(NAME_PATTERN, 'lowercase letters, digits, - and _ (1 to 64)');

export const RoundBody = z.strictObject({
  name: Name.describe('Unique within the policy, e.g. `team` or `adversarial`'),
  min_reviewers: z.number().int().min(1).max(POLICY_LIMITS.minReviewers).describe('Distinct reviewers needed'),
  required_labels: z
    .array(Name)
    .max(POLICY_LIMITS.labels)
    .refine((labels) => new Set(labels).size === labels.length, 'labels are distinct')
    .default([])
    .describe('Each held by at least one of the round’s reviewers (labels an admin set)'),
  aggregator_required: z
    .boolean()
    .default(false)
    .describe('An agent who reviewed none of the round signs its summary (POST /stories/:id/aggregate)'),
  deadline_seconds: z
    .number()
    .int()
    .min(1)
    .max(POLICY_LIMITS.deadlineSeconds)
    .optional()
    .describe("How long the round may wait before the story is stalled (default: the project's stall_after)"),
});

export const ReviewPolicyBody = z.strictObject({
  rounds: z
    .array(RoundBody)
    .min(1)
    .max(POLICY_LIMITS.rounds)
    .refine((rounds) => new Set(rounds.map((r) => r.name)).size === rounds.length, 'round names are unique'),
});

export const LabelsBody = z.strictObject({
  labels: z
    .array(Name)
    .max(POLICY_LIMITS.labels * 2)
    .describe('The agent’s labels, e.g. `security-adversary`, `architect`; replaces the earlier ones'),
});

function policyJson(row: repo.PolicyVersionRow) {
  return {
    project_id: row.project_id,
    version: row.version,
    default: row.version === 0,
    rounds: row.rounds,
    created_by: row.created_by,
    created_at: row.created_at,
  };
}

export function reviewPolicyRoutes(book: RouteBook, deps: GatewayDeps): void {
  const { pool } = deps;

  async function projectOr404(tenantId: string, id: unknown) {
    const project = await withUuid(id, (id) => getProject(pool, tenantId, id));
    if (!project) throw notFound('Project');
    return project;
  }

  book.add(
    {
      method: 'put',
      path: '/projects/:id/review_policy',
      summary:
        "Set the project's review policy: a new version (audited); each story iteration keeps the version it was contracted under",
      tag: 'Review policies',
      roles: ['admin'],
      body: ReviewPolicyBody,
      errors: ['project_archived'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const body = parseOr400(ReviewPolicyBody, req.body);
      if (project.archived_at) {
        throw new ApiError('project_archived', 'The project is archived: it is read-only.', {
          project_id: project.id,
        });
      }
      const row = await repo.setPolicy(pool, caller.tenantId, project.id, body, {
        agentId: caller.agentId,
        role: caller.role,
      });
      res.json({ data: policyJson(row) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects/:id/review_policy',
      summary: "The project's review policy now (version 0 is the default: one round, one reviewer)",
      tag: 'Review policies',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      res.json({ data: policyJson(await repo.currentPolicy(pool, caller.tenantId, project.id)) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects/:id/review_policy/versions',
      summary: "Every version of the project's review policy, newest first",
      tag: 'Review policies',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const rows = await repo.policyVersions(pool, caller.tenantId, project.id);
      res.json({ data: rows.map(policyJson), meta: { limit: rows.length, next_cursor: null } });
    },
  );

  book.add(
    {
      method: 'put',
      path: '/agents/:id/labels',
      summary: "Set an agent's labels (admin; audited). Labels are identity: an agent never sets its own",
      tag: 'Agents',
      roles: ['admin'],
      body: LabelsBody,
    },
    async (req, res) => {
      const caller = callerOf(res);
      // Another tenant's agent is not found whatever the body holds.
      const agent = await withUuid(req.params.id, (id) => getAgent(pool, caller.tenantId, id));
      if (!agent) throw notFound('Agent');
      const body = parseOr400(LabelsBody, req.body);
      if (agent.id === caller.agentId) {
        throw new ApiError('forbidden', 'An agent never sets its own labels; another admin must.', {
          agent_id: agent.id,
        });
      }
      const set = await repo.setLabels(pool, caller.tenantId, agent.id, body.labels, {
        agentId: caller.agentId,
        role: caller.role,
      });
      if (!set) throw notFound('Agent');
      res.json({ data: { id: agent.id, name: agent.name, role: agent.role, labels: set.labels } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/:id/reviews',
      summary:
        "A story's reviews: its iteration's policy and rounds (complete or what is missing), and every report, review, sign-off and verify with the artifact it concerns",
      tag: 'Stories',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await withUuid(req.params.id, (id) => getStory(pool, caller.tenantId, id));
      if (!story) throw notFound('Story');
      const records = await repo.reviewRecords(pool, caller.tenantId, story.id);
      res.json({ data: storyReviewsJson(story, records) });
    },
  );
}

/** The reviews of a story as `GET /stories/:id/reviews` shows them. */
export function storyReviewsJson(
  story: {
    id: string;
    iteration: number;
    review_policy: { version: number; rounds: typeof DEFAULT_POLICY.rounds } | null;
    review_progress: ReviewProgress | null;
    artifact: unknown;
    verified_artifact: string | null;
  },
  records: repo.ReviewRecordRow[],
) {
  const policy = story.review_policy ?? DEFAULT_POLICY;
  const progress = story.review_progress ?? { reviews: [], aggregations: [] };
  const rounds = story.review_policy ? roundStatuses(policy, progress) : null;
  // Whether a record of this iteration still counts (a later report voids what the open round had).
  const voided = (r: repo.ReviewRecordRow) => {
    if (r.iteration !== story.iteration || r.position === null) return r.iteration !== story.iteration;
    const entries: { voided?: boolean }[] = r.kind === 'review' ? progress.reviews : progress.aggregations;
    return entries[r.position]?.voided === true;
  };
  return {
    story_id: story.id,
    iteration: story.iteration,
    policy: { version: policy.version, default: story.review_policy === null, rounds: policy.rounds },
    rounds,
    artifact: story.artifact ?? null,
    verified_artifact: story.verified_artifact,
    records: records.map((r) => ({
      seq: Number(r.seq),
      iteration: r.iteration,
      kind: r.kind,
      round: r.round,
      agent_id: r.agent_id,
      agent_labels: r.agent_labels,
      review_type: r.review_type,
      findings_count: r.findings_count,
      fixes_count: r.fixes_count,
      disproved_count: r.disproved_count,
      summary: r.summary,
      artifact: r.artifact ?? null,
      artifact_key: r.artifact_key,
      counts: (r.kind === 'review' || r.kind === 'aggregation') && !voided(r),
      occurred_at: r.occurred_at,
    })),
  };
}
