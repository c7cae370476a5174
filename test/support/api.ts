/** A small HTTP client for tests: every call returns status, headers and parsed body. */
export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export class Api {
  constructor(readonly baseUrl: string) {}

  async call<T = any>(
    method: string,
    path: string,
    options: { key?: string; body?: unknown; headers?: Record<string, string>; raw?: string } = {},
  ): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let payload: string | undefined = options.raw;
    if (options.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      payload = JSON.stringify(options.body);
    }
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload });
    const text = await res.text();
    let body: any = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: keep the text so the test can show it.
    }
    return { status: res.status, body, headers: res.headers };
  }

  get<T = any>(path: string, key?: string) {
    return this.call<T>('GET', path, { key });
  }

  post<T = any>(path: string, key: string | undefined, body: unknown = {}, headers: Record<string, string> = {}) {
    return this.call<T>('POST', path, { key, body, headers });
  }

  act<T = any>(storyId: string, action: string, key: string, body: unknown = {}, headers: Record<string, string> = {}) {
    return this.post<T>(`/api/v1/stories/${storyId}/${action}`, key, body, headers);
  }
}

export interface Team {
  tenantId: string;
  admin: { id: string; key: string; keyId: string };
  orchestrator: { id: string; key: string; keyId: string };
  agents: { id: string; key: string; keyId: string }[];
  projectId: string;
}

function expectStatus(reply: Reply, status: number, what: string): void {
  if (reply.status !== status)
    throw new Error(`${what}: expected ${status}, got ${reply.status} ${JSON.stringify(reply.body)}`);
}

/** Signs up a tenant with an orchestrator, `agentCount` agents and one project. */
export async function createTeam(api: Api, agentCount = 3, name = 'acme'): Promise<Team> {
  const signup = await api.post('/api/v1/tenants', undefined, { name });
  expectStatus(signup, 201, 'signup');
  const adminKey = signup.body.data.api_key.key as string;
  const register = async (agentName: string, role: string) => {
    const r = await api.post('/api/v1/agents/register', adminKey, { name: agentName, role });
    expectStatus(r, 201, `register ${agentName}`);
    return {
      id: r.body.data.agent.id as string,
      key: r.body.data.api_key.key as string,
      keyId: r.body.data.api_key.id as string,
    };
  };
  const orchestrator = await register('orchestrator', 'orchestrator');
  const agents = [];
  for (let i = 0; i < agentCount; i++) agents.push(await register(`agent-${i + 1}`, 'agent'));
  const project = await api.post('/api/v1/projects', adminKey, { name: 'Web', slug: 'web' });
  expectStatus(project, 201, 'project');
  return {
    tenantId: signup.body.data.tenant.id,
    admin: { id: signup.body.data.agent.id, key: adminKey, keyId: signup.body.data.api_key.id },
    orchestrator,
    agents,
    projectId: project.body.data.id,
  };
}

/** Imports a backlog and returns its stories by number. */
export async function importBacklog(api: Api, team: Team, backlog: unknown): Promise<Map<string, any>> {
  const r = await api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, backlog);
  expectStatus(r, 201, 'import');
  return new Map((r.body.data.stories as any[]).map((s) => [s.number, s]));
}

/** A team's orchestrator over backlogs: a fresh project per test, calls with its key, imports (merging or not). */
export class OrchestratorSession {
  private projects = 0;

  constructor(
    private readonly api: Api,
    private readonly key: string,
    private readonly slugPrefix: string,
  ) {}

  async newProject(): Promise<string> {
    const slug = `${this.slugPrefix}-${++this.projects}`;
    const r = await this.api.post('/api/v1/projects', this.key, { name: 'P', slug });
    expectStatus(r, 201, 'create project');
    return r.body.data.id;
  }

  call(method: string, path: string, body?: unknown): Promise<Reply> {
    return this.api.call(method, path, { key: this.key, body });
  }

  importInto(projectId: string, payload: unknown, merge = false): Promise<Reply> {
    return this.api.post(`/api/v1/projects/${projectId}/import${merge ? '?merge=true' : ''}`, this.key, payload);
  }
}

/** A story of a loopctl backlog: its number, its title and one criterion from it, and `extra` fields. */
export const backlogStory = (number: string, title: string, extra: Record<string, unknown> = {}) => ({
  number,
  title,
  acceptance_criteria: [`${title} works`],
  ...extra,
});

export const oneStoryBacklog = (title = 'Landing page', criteria = ['renders', 'links work', 'is fast']) => ({
  epics: [{ number: 1, title: 'Site', stories: [{ number: '1.1', title, acceptance_criteria: criteria }] }],
});

/** Drives a story from pending to verified with three distinct parties; returns each reply. */
export async function driveToVerified(
  api: Api,
  story: { id: string; title: string; acceptance_criteria: unknown[] },
  parties: { implementer: string; reviewer: string; verifier: string; reporter?: string },
): Promise<Reply[]> {
  const steps: [string, string, unknown][] = [
    ['contract', parties.implementer, { story_title: story.title, ac_count: story.acceptance_criteria.length }],
    ['claim', parties.implementer, {}],
    ['start', parties.implementer, {}],
    ['request-review', parties.implementer, {}],
    ['report', parties.reporter ?? parties.reviewer, { artifact: 'https://example.test/pr/1' }],
    [
      'review-complete',
      parties.reviewer,
      { review_type: 'standard', findings_count: 2, fixes_count: 1, disproved_count: 1, summary: 'ok' },
    ],
    ['verify', parties.verifier, { summary: 'all criteria met' }],
  ];
  const replies: Reply[] = [];
  for (const [action, key, body] of steps) {
    const r = await api.act(story.id, action, key, body);
    if (r.status !== 200) throw new Error(`${action}: ${r.status} ${JSON.stringify(r.body)}`);
    replies.push(r);
  }
  return replies;
}
