/**
 * The MCP tools for agents, with loopctl's tool names, argument names and environment, so an
 * existing `.mcp.json` works by changing LOOPCTL_SERVER. Every tool is a thin call of the HTTP API
 * (shared/API.md); a refusal comes back as a tool error with its code, message, context and the
 * next step to take.
 */
import { readFile } from 'node:fs/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { ACTIONS, AGENT_STATUSES, VERIFIED_STATUSES, type Action } from '../custody/actions.js';
import { ACTION_SPECS, type ArgSpec, type McpKey, type McpToolSpec } from '../custody/action-specs.js';
import { CustodyApiError, CustodyClient, query, type PageMeta } from '../clients/http.js';
import type { ClaimKeeper } from './claim-keeper.js';

export const McpEnv = z.object({
  LOOPCTL_SERVER: z.url(),
  LOOPCTL_API_KEY: z.string().min(1).optional(),
  LOOPCTL_AGENT_KEY: z.string().min(1).optional(),
  LOOPCTL_REVIEW_KEY: z.string().min(1).optional(),
  LOOPCTL_ORCH_KEY: z.string().min(1).optional(),
});
export type McpEnv = z.infer<typeof McpEnv>;

/**
 * Which key a tool uses. `agent`: the implementer's (contract, claim, start, heartbeat,
 * request-review); `review`: the reviewer's, else the orchestrator's (report, review); `orch`: the
 * orchestrator's (verify, reject, import, projects); `read`: whichever is set, agent's first.
 */
type KeyKind = McpKey;

const KEY_NAMES: Record<KeyKind, string> = {
  agent: 'LOOPCTL_AGENT_KEY',
  review: 'LOOPCTL_REVIEW_KEY (else LOOPCTL_ORCH_KEY)',
  orch: 'LOOPCTL_ORCH_KEY',
  read: 'LOOPCTL_AGENT_KEY, else LOOPCTL_REVIEW_KEY, else LOOPCTL_ORCH_KEY',
};

export function keyFor(env: McpEnv, kind: KeyKind): string | undefined {
  if (env.LOOPCTL_API_KEY) return env.LOOPCTL_API_KEY;
  switch (kind) {
    case 'agent':
      return env.LOOPCTL_AGENT_KEY;
    case 'review':
      return env.LOOPCTL_REVIEW_KEY ?? env.LOOPCTL_ORCH_KEY;
    case 'orch':
      return env.LOOPCTL_ORCH_KEY;
    case 'read':
      return env.LOOPCTL_AGENT_KEY ?? env.LOOPCTL_REVIEW_KEY ?? env.LOOPCTL_ORCH_KEY;
  }
}

/** The next step for each refusal a model can act on; the default covers the rest. */
const NEXT_STEP: Record<string, string> = {
  verifier_is_reviewer:
    'The key that verifies must belong to another agent than the one that reviewed: give review agents their own key (LOOPCTL_REVIEW_KEY) and keep LOOPCTL_ORCH_KEY for verify.',
  self_report_blocked: 'Another agent (LOOPCTL_REVIEW_KEY or LOOPCTL_ORCH_KEY) must report this story.',
  self_review_blocked: 'Another agent must review this story (LOOPCTL_REVIEW_KEY).',
  self_verify_blocked: 'Another agent (an orchestrator that did not implement it) must verify this story.',
  lease_expired:
    'Your claim ran out (no heartbeat within the lease). Call get_story; if it is contracted, claim_story again and start_story, then continue.',
  invalid_transition: 'Call get_story and look at agent_status and next_actions: they say what can happen now.',
  not_assigned_agent: 'Only the agent that claimed the story may do this: use the key of its assignee.',
  dependencies_not_met: 'Finish and verify its dependencies first (list_blocked_stories shows them).',
  contract_mismatch: "Call get_story and contract with the story's exact title and number of acceptance criteria.",
  review_required: 'Record a review with review_complete (another agent than the implementer) before verifying.',
  findings_math_mismatch:
    "fixes_count + disproved_count must equal findings_count (for an aggregation: the round's reviewers' findings).",
  duplicate_review: 'You already reviewed this round: another reviewer (another key) must review it.',
  aggregator_is_reviewer: "The round's summary must be signed by an agent who did not review the round.",
  round_incomplete: 'Call get_story_reviews: it says which round is open and which reviewers or labels it lacks.',
  round_not_current: 'Call get_story_reviews: it says which round is open now.',
  unknown_round: "Call get_review_policy: it lists the policy's rounds.",
  artifact_mismatch: 'Review the artifact reported last (get_story shows it), and name that one.',
  reason_required: 'Give a reason with at least one letter or digit.',
  forbidden: "This key's role may not do this: use the key the tool description names.",
  unauthorized: 'The key is missing, unknown or revoked: check the LOOPCTL_*_KEY variables.',
  not_found: 'Check the id (list_stories, list_projects); another tenant’s resources are not visible.',
  invalid_body: 'Fix the arguments as the context says.',
  invalid_query: 'Fix the arguments as the context says.',
  story_in_progress: 'Only a pending story can be edited.',
  rate_limited: 'Wait a little and try again.',
  timeout: 'Try again with the same arguments: a retry is safe.',
  unavailable: 'The service is starting or degraded: try again shortly.',
  unreachable: 'Check LOOPCTL_SERVER and that the service runs.',
};

type ToolResult = { content: { type: 'text'; text: string }[]; isError?: boolean };

export function errorText(err: CustodyApiError): string {
  const lines = [`${err.code}: ${err.message}`];
  if (Object.keys(err.context).length) lines.push(`context: ${JSON.stringify(err.context)}`);
  lines.push(`next step: ${NEXT_STEP[err.code] ?? 'Read the message and context, fix the call, and try again.'}`);
  return lines.join('\n');
}

/** The fields of a story worth a list row; get_story has the rest. */
const compactStory = (s: Record<string, unknown>) => ({
  id: s.id,
  number: s.number,
  title: s.title,
  agent_status: s.agent_status,
  verified_status: s.verified_status,
  epic_id: s.epic_id,
  assigned_agent_id: s.assigned_agent_id,
  ...(s.blocking_dependencies !== undefined ? { blocking_dependencies: s.blocking_dependencies } : {}),
});

/** A compact page: rows, and what fetches the next one (cursor, or offset for offset paging). */
function compactPage(page: { data: Record<string, unknown>[]; meta: PageMeta }, offset: number | undefined) {
  const limit = page.meta.limit ?? page.data.length;
  return {
    data: page.data.map(compactStory),
    meta: {
      count: page.data.length,
      limit,
      next_cursor: page.meta.next_cursor ?? null,
      offset: offset ?? 0,
      ...(page.meta.total_count !== undefined ? { total_count: page.meta.total_count } : {}),
      next_offset: page.data.length === limit ? (offset ?? 0) + page.data.length : null,
    },
  };
}

export function createMcpServer(env: McpEnv, keeper?: ClaimKeeper): McpServer {
  const server = new McpServer({ name: 'loopctl', version: '0.1.0' });

  function tool<S extends z.ZodRawShape>(
    name: string,
    description: string,
    key: KeyKind,
    shape: S,
    call: (client: CustodyClient, args: z.infer<z.ZodObject<S>>) => Promise<unknown>,
  ): void {
    const fullDescription = `${description} Uses ${KEY_NAMES[key]}${key === 'read' ? '' : ' (LOOPCTL_API_KEY overrides)'}.`;
    server.registerTool(name, { description: fullDescription, inputSchema: shape }, (async (
      args: z.infer<z.ZodObject<S>>,
    ): Promise<ToolResult> => {
      const apiKey = keyFor(env, key);
      if (!apiKey) {
        return {
          isError: true,
          content: [
            {
              type: 'text',
              text: `missing_key: no key for ${name}\nnext step: set ${KEY_NAMES[key]} (or LOOPCTL_API_KEY) in the MCP server's environment.`,
            },
          ],
        };
      }
      try {
        const data = await call(new CustodyClient(env.LOOPCTL_SERVER, apiKey), args);
        return { content: [{ type: 'text', text: JSON.stringify(data, null, 2) }] };
      } catch (err) {
        if (err instanceof CustodyApiError) return { isError: true, content: [{ type: 'text', text: errorText(err) }] };
        if (err instanceof LocalError) return { isError: true, content: [{ type: 'text', text: err.message }] };
        throw err;
      }
    }) as never);
  }

  const id = (what: string) => z.string().describe(`The UUID of the ${what}.`);
  const storyId = { story_id: id('story') };
  const limit = z.number().int().min(1).max(500).optional().describe('At most this many (default 20).');
  const offset = z.number().int().min(0).optional().describe('Skip this many (offset paging).');
  const cursor = z.string().optional().describe('The next_cursor of the previous page (cursor paging).');
  const path = (...parts: string[]) => parts.map((p) => `/${encodeURIComponent(p)}`).join('');
  const act =
    (action: string, after?: (storyId: string, answer: Record<string, unknown>) => void) =>
    async (c: CustodyClient, args: object) => {
      const { story_id, ...body } = args as { story_id: string } & Record<string, unknown>;
      const answer = await c.post<Record<string, unknown>>(
        `${path('stories', story_id)}/${action}`,
        stripUndefined(body),
      );
      after?.(story_id, answer);
      return answer;
    };
  const list = async (c: CustodyClient, route: string, params: Record<string, string | number | undefined>) =>
    compactPage(
      await c.page<Record<string, unknown>>(`${route}${query(params)}`),
      typeof params.offset === 'number' ? params.offset : undefined,
    );

  // Tenant and projects.
  tool('get_tenant', "The caller's tenant; use to check connectivity.", 'read', {}, (c) => c.get('/tenants/me'));
  tool('list_projects', 'Projects of the tenant.', 'read', {}, (c) => c.get('/projects'));
  tool(
    'create_project',
    'Create a project (admin or orchestrator). lease_ttl_seconds: how long a claim lives without a heartbeat (default 1800; 0 = no lease).',
    'orch',
    {
      name: z.string(),
      slug: z.string().describe('URL-safe: lowercase letters, digits and dashes.'),
      description: z.string().optional(),
      repo_url: z.string().optional(),
      tech_stack: z.string().optional(),
      lease_ttl_seconds: z.number().int().min(0).optional(),
    },
    (c, a) => c.post('/projects', stripUndefined(a)),
  );
  tool(
    'get_progress',
    'Counts by status per epic and in total, and % verified.',
    'read',
    { project_id: id('project'), include_cost: z.boolean().optional() },
    (c, a) =>
      c.get(`${path('projects', a.project_id)}/progress${query({ include_cost: a.include_cost || undefined })}`),
  );
  tool(
    'create_epic',
    'Create an epic in a project (orchestrator).',
    'orch',
    {
      project_id: id('project'),
      number: z.number().int().min(0),
      title: z.string(),
      description: z.string().optional(),
    },
    (c, { project_id, ...epic }) => c.post(`${path('projects', project_id)}/epics`, stripUndefined(epic)),
  );

  // Stories: reads.
  tool(
    'list_stories',
    'Stories, filtered, compact (use get_story for details). Pages with offset or cursor; meta has next_offset and next_cursor. ' +
      'status is accepted as loopctl seeds write it: an agent_status, a verified_status, "ready" or "blocked".',
    'read',
    {
      project_id: id('project').optional(),
      agent_status: z
        .string()
        .optional()
        .describe(`One of ${AGENT_STATUSES.join(', ')}.`),
      verified_status: z
        .string()
        .optional()
        .describe(`One of ${VERIFIED_STATUSES.join(', ')}.`),
      status: z.string().optional().describe('Shorthand: an agent_status, a verified_status, "ready" or "blocked".'),
      epic_id: id('epic').optional(),
      limit,
      offset,
      cursor,
    },
    (c, a) => {
      const common = { project_id: a.project_id, epic_id: a.epic_id, limit: a.limit ?? 20 };
      if (a.status === 'ready') return list(c, '/stories/ready', common);
      if (a.status === 'blocked') return list(c, '/stories/blocked', common);
      let { agent_status, verified_status } = a;
      // loopctl lists verified and rejected among agent statuses: they are verified statuses here.
      if (agent_status !== undefined && isVerifiedStatus(agent_status)) {
        verified_status ??= agent_status;
        agent_status = undefined;
      }
      if (a.status !== undefined) {
        if ((AGENT_STATUSES as readonly string[]).includes(a.status)) agent_status ??= a.status;
        else if (isVerifiedStatus(a.status)) verified_status ??= a.status;
        else
          throw new LocalError(
            `invalid_arguments: status "${a.status}" is none of ${[...AGENT_STATUSES, ...VERIFIED_STATUSES, 'ready', 'blocked'].join(', ')}\nnext step: use one of those, or agent_status / verified_status.`,
          );
      }
      return list(c, '/stories', { ...common, agent_status, verified_status, offset: a.offset, cursor: a.cursor });
    },
  );
  tool(
    'list_ready_stories',
    'Stories ready to be worked on (pending or unclaimed contracted, dependencies verified), compact.',
    'read',
    { project_id: id('project').optional(), epic_id: id('epic').optional(), limit },
    (c, a) => list(c, '/stories/ready', { project_id: a.project_id, epic_id: a.epic_id, limit: a.limit ?? 20 }),
  );
  tool(
    'list_blocked_stories',
    'Stories waiting on dependencies that are not verified yet, compact.',
    'read',
    { project_id: id('project').optional(), epic_id: id('epic').optional(), limit },
    (c, a) => list(c, '/stories/blocked', { project_id: a.project_id, epic_id: a.epic_id, limit: a.limit ?? 20 }),
  );
  tool('get_story', 'A story in full, with next_actions for this key.', 'read', storyId, (c, a) =>
    c.get(path('stories', a.story_id)),
  );
  tool(
    'get_acceptance_criteria',
    "A story's acceptance criteria (their count is what contract_story needs).",
    'read',
    storyId,
    async (c, a) => (await c.get<{ acceptance_criteria: unknown[] }>(path('stories', a.story_id))).acceptance_criteria,
  );
  // Review policies, labels and each reviewer's findings.
  const round = z.object({
    name: z.string().describe('Lowercase letters, digits, - and _ (e.g. team, adversarial).'),
    min_reviewers: z.number().int().min(1).describe('Distinct reviewers the round needs.'),
    required_labels: z.array(z.string()).optional().describe('Each held by one of its reviewers.'),
    aggregator_required: z.boolean().optional().describe('An agent who reviewed none of it signs its summary.'),
    deadline_seconds: z.number().int().min(1).optional().describe('How long before the story is stalled.'),
  });
  tool(
    'get_review_policy',
    "A project's review policy now: its rounds, in order (version 0 is the default: one review).",
    'read',
    { project_id: id('project') },
    (c, a) => c.get(`${path('projects', a.project_id)}/review_policy`),
  );
  tool(
    'set_review_policy',
    "Set a project's review policy (an admin key as LOOPCTL_ORCH_KEY): a new version; each story iteration keeps the version it was contracted under.",
    'orch',
    { project_id: id('project'), rounds: z.array(round).min(1) },
    (c, a) => c.put(`${path('projects', a.project_id)}/review_policy`, { rounds: a.rounds }),
  );
  tool(
    'set_agent_labels',
    "Set an agent's labels (an admin key as LOOPCTL_ORCH_KEY; never the agent's own), e.g. security-adversary.",
    'orch',
    { agent_id: id('agent'), labels: z.array(z.string()) },
    (c, a) => c.put(`${path('agents', a.agent_id)}/labels`, { labels: a.labels }),
  );
  tool(
    'get_story_reviews',
    "A story's reviews: the policy and rounds of its iteration (complete, or which reviewers and labels are missing), each reviewer's findings, and the artifact chain.",
    'read',
    storyId,
    (c, a) => c.get(`${path('stories', a.story_id)}/reviews`),
  );
  tool(
    'get_story_history',
    "A story's chain of custody, oldest first: accepted transitions and rejected attempts.",
    'read',
    { ...storyId, limit, cursor },
    async (c, a) => {
      const page = await c.page(`${path('stories', a.story_id)}/history${query({ limit: a.limit, cursor: a.cursor })}`);
      return { data: page.data, meta: { next_cursor: page.meta.next_cursor ?? null, count: page.data.length } };
    },
  );
  tool(
    'get_audit',
    "The tenant's audit trail (admin or orchestrator): creations, imports, edits, keys, transitions, rejected attempts.",
    'orch',
    {
      project_id: id('project').optional(),
      story_id: id('story').optional(),
      since: z.string().optional(),
      limit,
      cursor,
    },
    async (c, a) => {
      const page = await c.page(`/audit${query({ ...a, limit: a.limit ?? 50 })}`);
      return { data: page.data, meta: { next_cursor: page.meta.next_cursor ?? null, count: page.data.length } };
    },
  );

  // Stories: creation.
  tool(
    'create_story',
    'Create a story in an epic (orchestrator).',
    'orch',
    {
      epic_id: id('epic'),
      number: z.string(),
      title: z.string(),
      acceptance_criteria: z.array(z.string()).optional(),
      description: z.string().optional(),
      depends_on: z.array(z.string()).optional().describe('Story numbers in the same project.'),
    },
    (c, { epic_id, ...story }) => c.post(`${path('epics', epic_id)}/stories`, stripUndefined(story)),
  );
  tool(
    'import_stories',
    'Import a backlog into a project, all or nothing (orchestrator). Give payload (the import object) or payload_path (a JSON file); merge=true updates pending stories.',
    'orch',
    {
      project_id: id('project'),
      payload: z.record(z.string(), z.unknown()).optional(),
      payload_path: z.string().optional().describe('A JSON file holding the payload.'),
      merge: z.boolean().optional(),
    },
    async (c, a) => {
      let payload = a.payload;
      if (payload === undefined && a.payload_path !== undefined) {
        try {
          payload = JSON.parse(await readFile(a.payload_path, 'utf8')) as Record<string, unknown>;
        } catch (err) {
          throw new LocalError(
            `invalid_arguments: cannot read payload_path: ${err instanceof Error ? err.message : String(err)}\nnext step: give a readable JSON file, or payload.`,
          );
        }
      }
      if (payload === undefined) throw new LocalError('invalid_arguments: give payload or payload_path');
      return c.post(`${path('projects', a.project_id)}/import${query({ merge: a.merge || undefined })}`, payload);
    },
  );
  tool(
    'add_dependency',
    'Make a story depend on another (orchestrator); a cycle is refused.',
    'orch',
    { story_id: id('story'), depends_on_story_id: id('story it depends on') },
    (c, a) => c.post('/story_dependencies', a),
  );

  // The lifecycle: one tool per action with one (src/custody/action-specs.ts), the story's id and the body's fields.
  const afterAction = (claim: McpToolSpec['claim']) =>
    claim === 'hold'
      ? (story: string) => keeper?.hold(story)
      : claim === 'release'
        ? (story: string) => keeper?.release(story)
        : undefined;
  for (const action of ACTIONS) {
    const spec = ACTION_SPECS[action].mcp;
    if (!spec) continue;
    if (spec.args === 'custom') {
      const custom = CUSTOM_ACTION_TOOLS[action];
      if (!custom) throw new Error(`the MCP tool of ${action} maps its arguments itself, but has no mapping`);
      tool(spec.name, spec.description, spec.key, { ...storyId, ...custom.shape }, (c, args) =>
        c.post(`${path('stories', args.story_id)}/${action}`, custom.body(args)),
      );
      continue;
    }
    tool(
      spec.name,
      spec.description,
      spec.key,
      { ...storyId, ...argsShape(spec.args) },
      act(action, afterAction(spec.claim)),
    );
  }
  tool(
    'heartbeat_story',
    "Keep your claim alive for another lease (the project's lease_ttl_seconds). This server already does it every third of the lease while it runs.",
    'agent',
    storyId,
    act('heartbeat', (story, answer) => keeper?.hold(story, answer.lease_expires_at as string | null)),
  );
  tool(
    'verify_all_in_epic',
    'Verify every story of an epic that can be verified, each judged by the same gates; lists each outcome.',
    'orch',
    { epic_id: id('epic'), review_type: z.string(), summary: z.string() },
    (c, { epic_id, ...body }) => c.post(`${path('epics', epic_id)}/verify-all`, body),
  );
  return server;
}

/** The shape of a tool's arguments, from its spec. */
function argsShape(args: readonly ArgSpec[]): z.ZodRawShape {
  return Object.fromEntries(
    args.map((arg) => {
      const type = arg.kind === 'integer' ? z.number().int() : z.string();
      return [arg.field, arg.required ? type : type.optional()];
    }),
  );
}

/** The action tools whose arguments are loopctl's, not the body's: their shape, and the body they make. */
const CUSTOM_ACTION_TOOLS: Partial<
  Record<Action, { shape: z.ZodRawShape; body: (args: Record<string, unknown>) => Record<string, unknown> }>
> = {
  report: {
    shape: {
      artifact_type: z.string().optional().describe('e.g. branch, pr, test_run.'),
      artifact_path: z.string().optional().describe('Path or URL of the artifact.'),
      artifact: z.string().optional().describe('The artifact as one string (instead of type and path).'),
      token_usage: z
        .object({
          input_tokens: z.number().int().optional(),
          output_tokens: z.number().int().optional(),
          model_name: z.string().optional(),
          cost_millicents: z.number().int().optional(),
        })
        .optional(),
    },
    body: ({ artifact_type, artifact_path, artifact, token_usage }) => {
      const body: Record<string, unknown> = {};
      if (artifact !== undefined) body.artifact = artifact;
      else if (artifact_type !== undefined || artifact_path !== undefined)
        body.artifact = stripUndefined({ artifact_type, path: artifact_path });
      if (token_usage !== undefined) body.token_usage = token_usage;
      return body;
    },
  },
  'review-complete': {
    shape: {
      review_type: z.string(),
      findings_count: z.number().int().optional(),
      fixes_count: z.number().int().optional(),
      disproved_count: z.number().int().optional(),
      summary: z.string().optional(),
      artifact: z.string().optional().describe('The artifact reviewed (a commit SHA): another one is refused.'),
      round: z.string().optional().describe("The review policy's round (default: the round now open)."),
    },
    // The counts default to 0, as the contract says; sent explicitly so any server takes them.
    body: ({ story_id: _story, findings_count = 0, fixes_count = 0, disproved_count = 0, ...rest }) =>
      stripUndefined({ ...rest, findings_count, fixes_count, disproved_count }),
  },
};

const isVerifiedStatus = (s: string) => (VERIFIED_STATUSES as readonly string[]).includes(s);

/** A refusal the server makes itself, before calling the service (already formatted). */
class LocalError extends Error {}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
