/**
 * What each route answers, as zod schemas for the OpenAPI document: the shapes `views.ts` and the
 * route handlers build, with examples taken from a real session, so /docs shows true examples.
 * `test/unit/openapi.test.ts` holds every route to having one; `test/integration/resources.test.ts`
 * checks real answers against them.
 */
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { AGENT_STATUSES, ROLES, VERIFIED_STATUSES } from '../custody/actions.js';
import { ROUTED_ACTIONS, actionPath } from '../custody/action-specs.js';

extendZodWithOpenApi(z);

const id = (example: string) => z.uuid().openapi({ example });
const time = z.iso.datetime().openapi({ example: '2026-12-01T02:31:07.412Z' });
const TENANT_ID = '0b8f3a52-1c4e-4d6b-9a77-2f0c1e5d8a10';
const AGENT_ID = '5d2c9e71-8b3a-4f60-a1d4-7e9b0c3f2a65';
const PROJECT_ID = 'c41e7a08-62f9-4b1d-8e35-9a0d7c2b6f14';
const EPIC_ID = 'e7a3b5c1-0d92-4e8f-b6a4-13c5d7e9f021';
const STORY_ID = '9f1d2b3c-4a5e-4f60-8b7a-6c5d4e3f2a1b';

export const TenantJson = z
  .object({ id: id(TENANT_ID), name: z.string().openapi({ example: 'acme' }), slug: z.string(), created_at: time })
  .openapi('Tenant');

export const AgentJson = z
  .object({
    id: id(AGENT_ID),
    name: z.string().openapi({ example: 'shop-implementer' }),
    role: z.enum(ROLES),
    created_at: time,
  })
  .openapi('Agent');

export const ApiKeyJson = z
  .object({
    id: id('2a4c6e80-1b3d-4f57-9a8c-0e2d4f6a8b1c'),
    agent_id: id(AGENT_ID),
    prefix: z.string().openapi({ example: 'cust_3kq9' }),
    created_at: time,
    revoked_at: time.nullable(),
  })
  .openapi('ApiKey');

/** A key as it is shown once: with its secret. */
export const NewApiKeyJson = ApiKeyJson.extend({
  key: z.string().openapi({ example: 'cust_3kq9x7…' }),
}).openapi('NewApiKey');

export const SignupJson = z.object({ tenant: TenantJson, agent: AgentJson, api_key: NewApiKeyJson });
export const RegisteredJson = z.object({ agent: AgentJson, api_key: NewApiKeyJson });
export const AgentWithKeysJson = AgentJson.extend({ api_keys: z.array(ApiKeyJson) });
export const MeJson = AgentJson.extend({
  tenant_id: id(TENANT_ID),
  key_id: id('2a4c6e80-1b3d-4f57-9a8c-0e2d4f6a8b1c'),
});
export const RotatedJson = z.object({ api_key: NewApiKeyJson, rotated_from: z.uuid() });

export const ProjectJson = z
  .object({
    id: id(PROJECT_ID),
    name: z.string().openapi({ example: 'Shop' }),
    slug: z.string().openapi({ example: 'shop' }),
    description: z.string().nullable(),
    repo_url: z.string().nullable(),
    tech_stack: z.string().nullable(),
    mission: z.string().nullable(),
    settings: z.record(z.string(), z.unknown()).nullable(),
    lease_ttl_seconds: z.number().int().openapi({ example: 1800, description: '0 = no lease' }),
    stall_after_seconds: z.number().int().openapi({ example: 86400 }),
    status: z.enum(['active', 'archived']),
    archived_at: time.nullable(),
    created_at: time,
  })
  .openapi('Project');

export const EpicJson = z
  .object({
    id: id(EPIC_ID),
    project_id: id(PROJECT_ID),
    number: z.number().int().openapi({ example: 1 }),
    title: z.string().openapi({ example: 'Checkout' }),
    description: z.string().nullable(),
    metadata: z.unknown(),
    created_at: time,
  })
  .openapi('Epic');

const ReviewJson = z
  .object({
    reviewer_agent_id: z.uuid(),
    review_type: z.string().openapi({ example: 'single_reviewer' }),
    findings_count: z.number().int(),
    fixes_count: z.number().int(),
    disproved_count: z.number().int(),
    summary: z.string(),
    iteration: z.number().int(),
    artifact: z
      .unknown()
      .optional()
      .openapi({ description: 'The reported artifact this review is of (null when the report named none)' }),
  })
  .openapi('Review');

export const StoryJson = z
  .object({
    id: id(STORY_ID),
    project_id: id(PROJECT_ID),
    epic_id: id(EPIC_ID),
    number: z.string().openapi({ example: '1.2' }),
    title: z.string().openapi({ example: 'Pay by card' }),
    description: z.string().nullable(),
    acceptance_criteria: z
      .array(z.union([z.string(), z.object({ id: z.string(), description: z.string() })]))
      .openapi({ example: ['A card payment succeeds', 'A declined card shows why'] }),
    agent_status: z.enum(AGENT_STATUSES),
    verified_status: z.enum(VERIFIED_STATUSES),
    assigned_agent_id: z.uuid().nullable(),
    reported_by_agent_id: z.uuid().nullable(),
    reviewer_agent_id: z.uuid().nullable(),
    verified_by_agent_id: z.uuid().nullable(),
    iteration: z.number().int().openapi({ example: 1 }),
    review: ReviewJson.nullable(),
    artifact: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .nullable()
      .openapi({ example: { artifact_type: 'pr', path: 'https://github.com/acme/shop/pull/7' } }),
    estimated_hours: z.number().nullable(),
    metadata: z.unknown(),
    backfilled: z.boolean(),
    lease_expires_at: time.nullable().openapi({
      description: "When the claim's lease runs out unless the assignee sends a heartbeat; null when no claim is held",
    }),
    stalled: z.boolean(),
    held: z.boolean().openapi({
      description:
        'The worker refused a batch of this story as forged or out of order: it takes no action until resumed',
    }),
    held_reason: z.string().nullable(),
    workflow_id: z.string().openapi({ example: `story-${STORY_ID}` }),
    epic_number: z.number().int().openapi({ example: 1 }),
    created_at: time,
    updated_at: time,
    token_usage: z
      .object({
        input_tokens: z.number().int(),
        output_tokens: z.number().int(),
        cost_millicents: z.number().int(),
        reports: z.number().int(),
        models: z.array(z.string()),
      })
      .optional()
      .openapi({ description: 'On a single story: the tokens its reports declared' }),
    depends_on: z.array(z.uuid()).optional().openapi({ description: 'On a single story: the ids it depends on' }),
    blocking_dependencies: z
      .array(z.object({ id: z.uuid(), number: z.string(), verified_status: z.enum(VERIFIED_STATUSES) }))
      .optional()
      .openapi({ description: 'On blocked stories: the dependencies not verified yet' }),
    next_actions: z
      .array(z.enum(ROUTED_ACTIONS))
      .optional()
      .openapi({ description: "On a single story: what the caller's key may do now", example: ['contract'] }),
  })
  .openapi('Story');

export const ImportJson = z.object({
  project_id: z.uuid(),
  merged: z.boolean(),
  stories_count: z.number().int(),
  created_count: z.number().int(),
  stories_updated: z.array(z.string()),
  stories_unchanged: z.array(z.string()),
  skipped: z.array(z.string()).openapi({ description: 'Numbers of the stories a merge left as they were' }),
  skipped_count: z.number().int(),
  skipped_details: z.array(
    z.object({
      number: z.string(),
      reason: z.enum(['story_in_progress', 'epic_changed', 'story_closed', 'story_held', 'story_withdrawn']),
      agent_status: z.enum(AGENT_STATUSES),
      verified_status: z.enum(VERIFIED_STATUSES),
    }),
  ),
  stories_orphaned: z.array(z.string()),
  dependencies_created: z.number().int(),
  stories: z.array(StoryJson),
});

export const DependencyEdgeJson = z.object({
  id: z.uuid(),
  story_id: z.uuid(),
  depends_on_story_id: z.uuid(),
  story_number: z.string().openapi({ example: '1.2' }),
  depends_on_number: z.string().openapi({ example: '1.1' }),
  depends_on_verified_status: z.enum(VERIFIED_STATUSES),
  created_at: time,
});
export const DependencyJson = z.object({ id: z.uuid().optional(), story_id: z.uuid(), depends_on_story_id: z.uuid() });
export const RemovedDependencyJson = z.object({
  id: z.uuid(),
  story_id: z.uuid(),
  depends_on_story_id: z.uuid(),
  removed: z.literal(true),
});
export const CriteriaJson = z.object({
  story_id: z.uuid(),
  number: z.string(),
  title: z.string(),
  ac_count: z.number().int(),
  acceptance_criteria: StoryJson.shape.acceptance_criteria,
});
export const DeletedStoryJson = z.object({ id: z.uuid(), number: z.string(), deleted: z.literal(true) });
export const VerifyAllJson = z.object({
  epic_id: z.uuid(),
  verified_count: z.number().int(),
  results: z.array(
    z.object({
      story_id: z.uuid(),
      number: z.string(),
      outcome: z.string().openapi({ description: '`verified`, or the error code that refused it' }),
      message: z.string().optional(),
    }),
  ),
});
/** The import format (loopctl's), so an export can be imported again. */
export const ExportJson = z.object({
  epics: z.array(z.record(z.string(), z.unknown())),
  story_dependencies: z.array(z.object({ story: z.string(), depends_on: z.string() })).optional(),
});

const Counts = {
  total: z.number().int(),
  verified: z.number().int(),
  backfilled: z.number().int().openapi({ description: 'Verified by attestation, not through custody' }),
  by_agent_status: z.record(z.string(), z.number().int()).openapi({ example: { pending: 3, contracted: 1 } }),
  by_verified_status: z.record(z.string(), z.number().int()).openapi({ example: { unverified: 4 } }),
  percent_verified: z.number().openapi({ example: 25 }),
};
export const EpicProgressJson = z
  .object({ epic_id: z.uuid(), number: z.number().int(), title: z.string(), ...Counts })
  .openapi('EpicProgress');
export const ProgressJson = z
  .object({
    project_id: z.uuid(),
    total: z.object(Counts),
    epics: z.array(EpicProgressJson),
    cost: z
      .object({
        input_tokens: z.number().int(),
        output_tokens: z.number().int(),
        cost_millicents: z.number().int(),
        reports: z.number().int(),
        stories_with_usage: z.number().int(),
      })
      .optional()
      .openapi({ description: 'With ?include_cost=true' }),
  })
  .openapi('Progress');

export const HistoryJson = z
  .object({
    id: z.number().int().openapi({ example: 42, description: "The row's place in its tenant's audit sequence" }),
    story_id: z.uuid().nullable(),
    action: z.string().openapi({ example: 'claim' }),
    outcome: z.enum(['accepted', 'rejected', 'integrity_violation', 'resumed']),
    code: z.string().nullable().openapi({ description: 'The error code of a rejected attempt' }),
    actor: z.object({ agent_id: z.uuid().nullable(), role: z.string().nullable().openapi({ example: 'agent' }) }),
    from: z.object({ agent_status: z.string().nullable(), verified_status: z.string().nullable() }),
    to: z.object({ agent_status: z.string().nullable(), verified_status: z.string().nullable() }).nullable(),
    iteration: z.number().int().nullable(),
    payload: z.unknown(),
    seq: z.number().int().nullable(),
    judged_after_seq: z.number().int().nullable().openapi({
      description:
        "A rejected attempt's: the seq of the accepted transition it was judged after (the story's history lists it there)",
    }),
    update_id: z.string().nullable(),
    workflow_id: z.string().nullable(),
    run_id: z.string().nullable(),
    occurred_at: time,
    artifact: z
      .object({
        kind: z.enum(['report', 'review', 'aggregation', 'verify']),
        round: z.string().nullable(),
        artifact_key: z.string().nullable().openapi({ example: 'commit:3f2a1b…' }),
      })
      .optional()
      .openapi({ description: 'The artifact chain: what a report, review, sign-off or verify concerned' }),
  })
  .openapi('HistoryEntry');

const RoundJson = z.object({
  name: z.string().openapi({ example: 'adversarial' }),
  min_reviewers: z.number().int().openapi({ example: 4 }),
  required_labels: z.array(z.string()).openapi({ example: ['security-adversary'] }),
  aggregator_required: z.boolean(),
  deadline_seconds: z.number().int().optional(),
});
export const ReviewPolicyJson = z
  .object({
    project_id: z.uuid(),
    version: z.number().int().openapi({ description: '0 is the default policy (one round, one reviewer)' }),
    default: z.boolean(),
    rounds: z.array(RoundJson),
    created_by: z.uuid().nullable(),
    created_at: time.nullable(),
  })
  .openapi('ReviewPolicy');
export const AgentLabelsJson = z.object({
  id: z.uuid(),
  name: z.string(),
  role: z.enum(ROLES),
  labels: z.array(z.string()).openapi({ example: ['security-adversary'] }),
});
const RoundStatusJson = z.object({
  name: z.string(),
  index: z.number().int(),
  reviewers: z.array(z.string()),
  missing_reviewers: z.number().int(),
  missing_labels: z.array(z.string()),
  aggregator_required: z.boolean(),
  aggregated_by: z.string().nullable(),
  complete: z.boolean(),
  findings_count: z.number().int(),
  fixes_count: z.number().int(),
  disproved_count: z.number().int(),
});
export const StoryReviewsJson = z
  .object({
    story_id: z.uuid(),
    iteration: z.number().int(),
    policy: z.object({ version: z.number().int(), default: z.boolean(), rounds: z.array(RoundJson) }),
    rounds: z
      .array(RoundStatusJson)
      .nullable()
      .openapi({ description: 'Where each round stands (null without a policy: the one review is `review`)' }),
    artifact: z.unknown(),
    verified_artifact: z.string().nullable().openapi({ example: 'commit:3f2a1b…' }),
    records: z.array(
      z.object({
        seq: z.number().int(),
        iteration: z.number().int(),
        kind: z.enum(['report', 'review', 'aggregation', 'verify']),
        round: z.string().nullable(),
        agent_id: z.uuid(),
        agent_labels: z.array(z.string()),
        review_type: z.string().nullable(),
        findings_count: z.number().int().nullable(),
        fixes_count: z.number().int().nullable(),
        disproved_count: z.number().int().nullable(),
        summary: z.string().nullable(),
        artifact: z.unknown(),
        artifact_key: z
          .string()
          .nullable()
          .openapi({ description: 'The artifact’s identity: commit SHA or file-set digest' }),
        counts: z
          .boolean()
          .openapi({ description: 'A review or sign-off that still counts (not voided by a later report)' }),
        occurred_at: time,
      }),
    ),
  })
  .openapi('StoryReviews');

export const HeartbeatJson = z.object({
  story_id: z.uuid(),
  lease_expires_at: time.nullable().openapi({ description: 'null when the project has no lease' }),
});

export const ChainReportJson = z.object({
  ok: z.boolean(),
  rows_checked: z.number().int(),
  first_broken: z
    .object({
      id: z.string(),
      chain_seq: z.number().int(),
      reason: z.enum(['hash_mismatch', 'prev_hash_mismatch', 'missing_row']),
    })
    .nullable(),
  head: z.object({ chain_seq: z.number().int(), hash: z.string() }).nullable(),
});

export const WebhookJson = z
  .object({
    id: z.uuid(),
    url: z.url().openapi({ example: 'https://hooks.example.com/custody' }),
    events: z.array(z.string()).openapi({ example: ['story.verified'] }),
    project_id: z
      .uuid()
      .nullable()
      .openapi({ description: "Only this project's events are delivered; null: every event of the tenant" }),
    created_at: time,
  })
  .openapi('Webhook');
export const NewWebhookJson = WebhookJson.extend({ secret: z.string().openapi({ description: 'Shown once' }) });
export const DeliveryJson = z
  .object({
    id: z.uuid(),
    event: z.string(),
    status: z.string().openapi({ example: 'delivered' }),
    payload: z.unknown(),
    created_at: time,
    finished_at: time.nullable(),
    attempts: z.array(
      z.object({
        attempt: z.number().int(),
        status_code: z.number().int().nullable(),
        error: z.string().nullable(),
        duration_ms: z.number().int().nullable(),
        attempted_at: time,
      }),
    ),
  })
  .openapi('WebhookDelivery');
export const WebhookTestJson = z.object({
  webhook_id: z.uuid(),
  event: z.literal('webhook.test'),
  source_key: z.string(),
});

export const HealthJson = z.object({
  status: z.enum(['ok', 'unavailable']),
  checks: z.object({ database: z.string(), temporal: z.string() }),
});

const listOf = (item: z.ZodType) =>
  z.object({
    data: z.array(item),
    meta: z.object({
      limit: z.number().int(),
      next_cursor: z.string().nullable().openapi({ description: 'Pass as cursor for the next page; null at the end' }),
      offset: z.number().int().optional(),
      total_count: z.number().int().optional(),
      page: z.number().int().optional().openapi({ description: "loopctl's page numbering, when asked by page" }),
      page_size: z.number().int().optional(),
      total_pages: z.number().int().optional(),
    }),
  });
const one = (item: z.ZodType) => z.object({ data: item });

/** A route's operationId and what it answers on success, keyed by `METHOD path` (express syntax, under /api/v1). */
export const OPERATIONS: Record<string, { operationId: string; response: z.ZodType }> = {
  'POST /tenants': { operationId: 'createTenant', response: one(SignupJson) },
  'GET /tenants/me': { operationId: 'getTenant', response: one(TenantJson) },
  'POST /agents/register': { operationId: 'registerAgent', response: one(RegisteredJson) },
  'GET /agents': { operationId: 'listAgents', response: listOf(AgentJson) },
  'GET /agents/me': { operationId: 'whoami', response: one(MeJson) },
  'GET /agents/:id': { operationId: 'getAgent', response: one(AgentWithKeysJson) },
  'POST /api_keys/:id/rotate': { operationId: 'rotateApiKey', response: one(RotatedJson) },
  'DELETE /api_keys/:id': { operationId: 'revokeApiKey', response: one(ApiKeyJson) },
  'POST /projects': { operationId: 'createProject', response: one(ProjectJson) },
  'GET /projects': { operationId: 'listProjects', response: listOf(ProjectJson) },
  'GET /projects/:id': { operationId: 'getProject', response: one(ProjectJson) },
  'POST /projects/:id/import': { operationId: 'importStories', response: one(ImportJson) },
  'POST /projects/:project_id/epics': { operationId: 'createEpic', response: one(EpicJson) },
  'GET /projects/:project_id/epics': { operationId: 'listEpics', response: listOf(EpicJson) },
  'POST /epics/:epic_id/stories': { operationId: 'createStory', response: one(StoryJson) },
  'GET /epics/:epic_id/stories': { operationId: 'listEpicStories', response: listOf(StoryJson) },
  'POST /story_dependencies': { operationId: 'addDependency', response: one(DependencyJson) },
  'GET /projects/:id/progress': { operationId: 'getProgress', response: one(ProgressJson) },
  'GET /stories': { operationId: 'listStories', response: listOf(StoryJson) },
  'GET /stories/ready': { operationId: 'listReadyStories', response: listOf(StoryJson) },
  'GET /stories/blocked': { operationId: 'listBlockedStories', response: listOf(StoryJson) },
  'GET /stories/:id': { operationId: 'getStory', response: one(StoryJson) },
  'GET /stories/:id/history': { operationId: 'getStoryHistory', response: listOf(HistoryJson) },
  'POST /stories/:id/heartbeat': { operationId: 'heartbeatStory', response: one(HeartbeatJson) },
  'POST /stories/:id/resume': { operationId: 'resumeStory', response: one(StoryJson) },
  'GET /audit/verify': { operationId: 'verifyAuditChain', response: one(ChainReportJson) },
  'GET /audit': { operationId: 'getAudit', response: listOf(HistoryJson) },
  'POST /webhooks': { operationId: 'createWebhook', response: one(NewWebhookJson) },
  'GET /webhooks': { operationId: 'listWebhooks', response: listOf(WebhookJson) },
  'GET /webhooks/:id/deliveries': { operationId: 'listWebhookDeliveries', response: listOf(DeliveryJson) },
  'POST /webhooks/:id/test': { operationId: 'testWebhook', response: one(WebhookTestJson) },
  'DELETE /webhooks/:id': { operationId: 'deleteWebhook', response: one(WebhookJson) },
  'GET /projects/:id/export': { operationId: 'exportProject', response: one(ExportJson) },
  'PATCH /projects/:id': { operationId: 'updateProject', response: one(ProjectJson) },
  'DELETE /projects/:id': { operationId: 'archiveProject', response: one(ProjectJson) },
  'POST /projects/:id/stories': { operationId: 'createProjectStory', response: one(StoryJson) },
  'PATCH /epics/:epic_id': { operationId: 'updateEpic', response: one(EpicJson) },
  'GET /epics/:epic_id/progress': { operationId: 'getEpicProgress', response: one(EpicProgressJson) },
  'DELETE /story_dependencies/:id': { operationId: 'removeDependency', response: one(RemovedDependencyJson) },
  'GET /story_dependencies': { operationId: 'listDependencies', response: listOf(DependencyEdgeJson) },
  'GET /epics/:epic_id/story_dependencies': {
    operationId: 'listEpicDependencies',
    response: listOf(DependencyEdgeJson),
  },
  'GET /stories/:id/acceptance_criteria': { operationId: 'getAcceptanceCriteria', response: one(CriteriaJson) },
  'PATCH /stories/:id': { operationId: 'updateStory', response: one(StoryJson) },
  'DELETE /stories/:id': { operationId: 'deleteStory', response: one(DeletedStoryJson) },
  'POST /epics/:epic_id/verify-all': { operationId: 'verifyAllInEpic', response: one(VerifyAllJson) },
  'PUT /projects/:id/review_policy': { operationId: 'setReviewPolicy', response: one(ReviewPolicyJson) },
  'GET /projects/:id/review_policy': { operationId: 'getReviewPolicy', response: one(ReviewPolicyJson) },
  'GET /projects/:id/review_policy/versions': {
    operationId: 'listReviewPolicyVersions',
    response: listOf(ReviewPolicyJson),
  },
  'PUT /agents/:id/labels': { operationId: 'setAgentLabels', response: one(AgentLabelsJson) },
  'GET /stories/:id/reviews': { operationId: 'getStoryReviews', response: one(StoryReviewsJson) },
  ...Object.fromEntries(
    ROUTED_ACTIONS.map((action) => [
      `POST ${actionPath(action)}`,
      { operationId: `${camel(action)}Story`, response: one(StoryJson) },
    ]),
  ),
};

function camel(text: string): string {
  return text.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
}
