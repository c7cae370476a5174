/**
 * The MCP server for agents (stdio), with loopctl's tool names and environment, so an existing
 * `.mcp.json` works by changing LOOPCTL_SERVER. Every tool is a thin call of the HTTP API; a
 * refusal comes back as a tool error that starts with the error code, for the model to act on.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { CustodyApiError, CustodyClient, query } from '../clients/http.js';

const Env = z.object({
  LOOPCTL_SERVER: z.url(),
  LOOPCTL_API_KEY: z.string().min(1).optional(),
  LOOPCTL_AGENT_KEY: z.string().min(1).optional(),
  LOOPCTL_REVIEW_KEY: z.string().min(1).optional(),
  LOOPCTL_ORCH_KEY: z.string().min(1).optional(),
});
type Env = z.infer<typeof Env>;
type KeyKind = 'agent' | 'review' | 'orch';

const KEY_VARIABLE: Record<KeyKind, string> = {
  agent: 'LOOPCTL_AGENT_KEY',
  review: 'LOOPCTL_REVIEW_KEY',
  orch: 'LOOPCTL_ORCH_KEY',
};

function keyFor(env: Env, kind: KeyKind): string | undefined {
  if (env.LOOPCTL_API_KEY) return env.LOOPCTL_API_KEY;
  if (kind === 'agent') return env.LOOPCTL_AGENT_KEY;
  if (kind === 'review') return env.LOOPCTL_REVIEW_KEY ?? env.LOOPCTL_ORCH_KEY;
  return env.LOOPCTL_ORCH_KEY;
}

const ADVICE: Record<string, string> = {
  verifier_is_reviewer:
    'The key that verifies must belong to another agent than the one that reviewed: give review agents their own key (LOOPCTL_REVIEW_KEY) and keep LOOPCTL_ORCH_KEY for verify.',
  self_report_blocked: 'Another agent (LOOPCTL_REVIEW_KEY or LOOPCTL_ORCH_KEY) must report this story.',
  self_review_blocked: 'Another agent must review this story.',
  self_verify_blocked: 'Another agent (an orchestrator that did not implement it) must verify this story.',
};

type ToolResult = { content: { type: 'text'; text: string }[]; isError?: boolean };

export function createMcpServer(env: Env): McpServer {
  const server = new McpServer({ name: 'custody', version: '0.1.0' });

  function tool<S extends z.ZodRawShape>(
    name: string,
    description: string,
    key: KeyKind,
    shape: S,
    call: (client: CustodyClient, args: z.infer<z.ZodObject<S>>) => Promise<unknown>,
  ): void {
    server.registerTool(name, { description, inputSchema: shape }, (async (
      args: z.infer<z.ZodObject<S>>,
    ): Promise<ToolResult> => {
      const apiKey = keyFor(env, key);
      if (!apiKey) {
        return {
          isError: true,
          content: [{ type: 'text', text: `missing_key: set ${KEY_VARIABLE[key]} (or LOOPCTL_API_KEY) for ${name}` }],
        };
      }
      try {
        const data = await call(new CustodyClient(env.LOOPCTL_SERVER, apiKey), args);
        return { content: [{ type: 'text', text: JSON.stringify(data, null, 2) }] };
      } catch (err) {
        if (!(err instanceof CustodyApiError)) throw err;
        const advice = ADVICE[err.code] ? ` ${ADVICE[err.code]}` : '';
        const context = Object.keys(err.context).length ? ` context: ${JSON.stringify(err.context)}` : '';
        return { isError: true, content: [{ type: 'text', text: `${err.code}: ${err.message}${advice}${context}` }] };
      }
    }) as never);
  }

  const id = z.string().describe('id (UUID)');
  const storyId = { story_id: id };
  const act = (action: string) => (client: CustodyClient, args: { story_id: string } & Record<string, unknown>) => {
    const { story_id, ...body } = args;
    return client.post(`/stories/${encodeURIComponent(story_id)}/${action}`, body);
  };

  tool('get_tenant', "The caller's tenant", 'orch', {}, (c) => c.get('/tenants/me'));
  tool('list_projects', 'Projects of the tenant', 'orch', {}, (c) => c.get('/projects'));
  tool(
    'create_project',
    'Create a project (admin key)',
    'orch',
    { name: z.string(), slug: z.string(), description: z.string().optional() },
    (c, a) => c.post('/projects', a),
  );
  tool('get_progress', 'Counts by status per epic and in total, and % verified', 'agent', { project_id: id }, (c, a) =>
    c.get(`/projects/${encodeURIComponent(a.project_id)}/progress`),
  );
  tool(
    'list_stories',
    'Stories, filtered',
    'agent',
    {
      project_id: id.optional(),
      status: z.string().optional().describe('agent_status'),
      verified_status: z.string().optional(),
      limit: z.number().int().min(1).max(500).optional(),
    },
    (c, a) =>
      c.get(
        `/stories${query({ project_id: a.project_id, agent_status: a.status, verified_status: a.verified_status, limit: a.limit })}`,
      ),
  );
  tool(
    'list_ready_stories',
    'Stories ready to be worked on (dependencies verified)',
    'agent',
    { project_id: id.optional(), limit: z.number().int().min(1).max(500).optional() },
    (c, a) => c.get(`/stories/ready${query({ project_id: a.project_id, limit: a.limit })}`),
  );
  tool('get_story', 'A story, with next_actions for this key', 'agent', storyId, (c, a) =>
    c.get(`/stories/${encodeURIComponent(a.story_id)}`),
  );
  tool(
    'get_story_history',
    "A story's chain of custody: accepted transitions and rejected attempts",
    'agent',
    storyId,
    (c, a) => c.get(`/stories/${encodeURIComponent(a.story_id)}/history`),
  );
  tool('get_acceptance_criteria', "A story's acceptance criteria", 'agent', storyId, async (c, a) => {
    const story = await c.get<{ acceptance_criteria: unknown[] }>(`/stories/${encodeURIComponent(a.story_id)}`);
    return story.acceptance_criteria;
  });
  tool(
    'create_story',
    'Create a story in an epic (orchestrator key)',
    'orch',
    {
      epic_id: id,
      number: z.string(),
      title: z.string(),
      acceptance_criteria: z.array(z.string()),
      description: z.string().optional(),
      depends_on: z.array(z.string()).optional(),
    },
    (c, { epic_id, ...story }) => c.post(`/epics/${encodeURIComponent(epic_id)}/stories`, story),
  );
  tool(
    'import_stories',
    'Import a backlog into a project, all or nothing (orchestrator key)',
    'orch',
    { project_id: id, epics: z.array(z.record(z.string(), z.unknown())) },
    (c, a) => c.post(`/projects/${encodeURIComponent(a.project_id)}/import`, { epics: a.epics }),
  );
  tool(
    'contract_story',
    'Contract a story: its exact title and number of acceptance criteria',
    'agent',
    { ...storyId, story_title: z.string(), ac_count: z.number().int() },
    act('contract'),
  );
  tool('claim_story', 'Claim a contracted story whose dependencies are verified', 'agent', storyId, act('claim'));
  tool('start_story', 'Start implementing a story you claimed', 'agent', storyId, act('start'));
  tool('request_review', 'Ask for review of a story you implemented', 'agent', storyId, act('request-review'));
  tool(
    'report_story',
    'Report a story done (never by its implementer)',
    'review',
    { ...storyId, artifact: z.string().optional() },
    act('report'),
  );
  tool(
    'review_complete',
    'Record a review: fixes_count + disproved_count must equal findings_count',
    'review',
    {
      ...storyId,
      review_type: z.string(),
      findings_count: z.number().int(),
      fixes_count: z.number().int(),
      disproved_count: z.number().int(),
      summary: z.string(),
    },
    act('review-complete'),
  );
  tool(
    'verify_story',
    'Verify a reviewed story (orchestrator; not its implementer nor its reviewer)',
    'orch',
    { ...storyId, summary: z.string().optional() },
    act('verify'),
  );
  tool(
    'reject_story',
    'Reject a story back to pending, with a reason',
    'orch',
    { ...storyId, reason: z.string() },
    act('reject'),
  );
  return server;
}

const parsed = Env.safeParse(process.env);
if (!parsed.success) {
  const issue = parsed.error.issues[0];
  process.stderr.write(`configuration error: ${issue.path.join('.')} ${issue.message}\n`);
  process.exit(1);
}
await createMcpServer(parsed.data).connect(new StdioServerTransport());
