/**
 * `custody`: the command line for humans. Configuration from the environment (CUSTODY_URL or
 * LOOPCTL_SERVER; CUSTODY_API_KEY or LOOPCTL_API_KEY) or the flags --url and --key. An error is
 * `error <code>: <message>` and its context, one detail a line. Exit codes: 0 done; 1 the service
 * refused (a 4xx); 2 bad usage (unknown command, missing option); 3 the service could not answer
 * (unreachable, 5xx, timeout).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ACTIONS } from '../custody/actions.js';
import { ACTION_SPECS, type ArgSpec } from '../custody/action-specs.js';
import { CustodyApiError, CustodyClient, query } from '../clients/http.js';
import { InitError, initRepository } from './init.js';

interface Story {
  id: string;
  number: string;
  title: string;
  agent_status: string;
  verified_status: string;
  iteration: number;
  assigned_agent_id: string | null;
  next_actions?: string[];
}
interface Project {
  id: string;
  name: string;
  slug: string;
  description: string | null;
  lease_ttl_seconds: number;
  stall_after_seconds: number;
}
interface HistoryRow {
  action: string;
  outcome: string;
  code: string | null;
  actor: { agent_id: string | null; role: string };
  occurred_at: string;
  story_id?: string | null;
}
interface Progress {
  total: { total: number; verified: number; percent_verified: number };
  epics: { number: number; title: string; total: number; verified: number; percent_verified: number }[];
}

const program = new Command('custody')
  .description('Chain of custody for AI-agent stories')
  .option(
    '--url <url>',
    'gateway URL',
    process.env.CUSTODY_URL ?? process.env.LOOPCTL_SERVER ?? 'http://localhost:3000',
  )
  // Read from the environment when not given, never shown as a default: help text is pasted around.
  .option('--key <key>', 'API key (default: $CUSTODY_API_KEY or $LOOPCTL_API_KEY; prefer those to a flag)')
  .option('--json', 'print JSON');

const client = () =>
  new CustodyClient(
    program.opts().url as string,
    (program.opts().key as string | undefined) ?? process.env.CUSTODY_API_KEY ?? process.env.LOOPCTL_API_KEY,
  );
const json = () => Boolean(program.opts().json);
// Titles come from other people's imports: control characters (terminal escapes) are not printed.
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;
const out = (line: string) => process.stdout.write(`${line.replace(CONTROL, '\ufffd')}\n`);
// JSON escapes C0 characters itself; C1 ones are escaped here, so the data survives intact.
const escapeC1 = (text: string) =>
  text.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
const print = (data: unknown, human: () => void) => (json() ? out(escapeC1(JSON.stringify(data, null, 2))) : human());

function bar(percent: number, width = 20): string {
  const filled = Math.round((Math.max(0, Math.min(100, percent)) / 100) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

const storyLine = (s: Story) =>
  `${s.number.padEnd(8)} ${s.agent_status.padEnd(17)} ${s.verified_status.padEnd(10)} ${s.title}  (${s.id})`;

program
  .command('tenant')
  .description('tenants')
  .command('create <name>')
  .description('sign up: a new tenant and its admin key (shown once)')
  .action(async (name: string) => {
    const data = await client().post<{ tenant: { id: string; name: string }; api_key: { key: string } }>('/tenants', {
      name,
    });
    print(data, () =>
      out(`tenant ${data.tenant.name} (${data.tenant.id})\nadmin key (shown once): ${data.api_key.key}`),
    );
  });

program
  .command('agent')
  .description('agents')
  .command('register <name>')
  .addOption(new Option('--role <role>', 'role').choices(['admin', 'orchestrator', 'agent']).makeOptionMandatory())
  .description('register an agent (admin key); its key is shown once')
  .action(async (name: string, options: { role: string }) => {
    const data = await client().post<{ agent: { id: string; role: string }; api_key: { key: string } }>(
      '/agents/register',
      { name, role: options.role },
    );
    print(data, () =>
      out(`agent ${name} (${data.agent.id}, ${data.agent.role})\nkey (shown once): ${data.api_key.key}`),
    );
  });

const key = program.command('key').description('API keys');
key
  .command('rotate <key-id>')
  .description('a new key for the same agent; the old one stops working')
  .action(async (keyId: string) => {
    const data = await client().post<{ api_key: { key: string } }>(`/api_keys/${encodeURIComponent(keyId)}/rotate`);
    print(data, () => out(`new key (shown once): ${data.api_key.key}`));
  });
key
  .command('revoke <key-id>')
  .description('revoke a key (admin)')
  .action(async (keyId: string) => {
    const data = await client().request('DELETE', `/api_keys/${encodeURIComponent(keyId)}`);
    print(data, () => out(`revoked ${keyId}`));
  });

program
  .command('import <project-id> <file>')
  .description('import a backlog JSON file ({epics:[...]}) into a project')
  .action(async (projectId: string, file: string) => {
    const data = await client().post<{ stories_count: number; created_count: number }>(
      `/projects/${encodeURIComponent(projectId)}/import`,
      JSON.parse(readFileSync(file, 'utf8')),
    );
    print(data, () => out(`${data.stories_count} stories (${data.created_count} new)`));
  });

program
  .command('stories')
  .description('list stories')
  .option('--ready', 'only stories ready to be worked on')
  .option('--project <id>', 'one project')
  .option('--limit <n>', 'at most', '100')
  .action(async (options: { ready?: boolean; project?: string; limit: string }) => {
    const path = options.ready ? '/stories/ready' : '/stories';
    const data = await client().get<Story[]>(`${path}${query({ project_id: options.project, limit: options.limit })}`);
    print(data, () => (data.length ? data.forEach((s) => out(storyLine(s))) : out('no stories')));
  });

program
  .command('story <story>')
  .description('a story and its history (a story is its id, or project/number: web/1.2)')
  .action(async (ref: string) => {
    const c = client();
    const id = await resolveStory(c, ref);
    const [story, history, names] = await Promise.all([
      c.get<Story>(`/stories/${encodeURIComponent(id)}`),
      c.get<HistoryRow[]>(`/stories/${encodeURIComponent(id)}/history`),
      agentNames(c),
    ]);
    print({ story, history }, () => {
      out(storyLine(story));
      const assignee = story.assigned_agent_id ? nameOf(names, story.assigned_agent_id) : 'nobody';
      out(
        `iteration ${story.iteration}, assigned to ${assignee}; next: ${(story.next_actions ?? []).join(', ') || 'nothing'}`,
      );
      for (const h of history) out(historyLine(h, names));
    });
  });

program
  .command('progress <project-id>')
  .description('progress per epic, with a bar each')
  .action(async (projectId: string) => {
    const data = await client().get<Progress>(`/projects/${encodeURIComponent(projectId)}/progress`);
    print(data, () => {
      for (const e of data.epics)
        out(
          `Epic ${String(e.number).padEnd(4)} ${bar(e.percent_verified)} ${String(e.verified).padStart(4)}/${e.total} verified  ${e.title}`,
        );
      out(
        `Total     ${bar(data.total.percent_verified)} ${String(data.total.verified).padStart(4)}/${data.total.total} verified (${data.total.percent_verified}%)`,
      );
    });
  });

/** One subcommand per action with a command in its spec (src/custody/action-specs.ts), its body as options. */
for (const action of ACTIONS) {
  const spec = ACTION_SPECS[action].cli;
  if (!spec) continue;
  const command = program
    .command(`${spec.command} <story>`)
    .description(`${spec.description} (story: id or project/number)`);
  for (const option of spec.options) {
    const flag = optionOf(option);
    command.addOption(option.required ? flag.makeOptionMandatory() : flag);
  }
  command.action(async (ref: string, opts: Record<string, string | undefined>) => {
    const c = client();
    const id = await resolveStory(c, ref);
    const story = await c.post<Story>(`/stories/${encodeURIComponent(id)}/${action}`, cliBody(spec.options, opts));
    print(story, () => out(storyLine(story)));
  });
}

program
  .command('heartbeat <story>')
  .description('keep your claim on a story alive for another lease')
  .action(async (ref: string) => {
    const c = client();
    const id = await resolveStory(c, ref);
    const data = await c.post<{ story_id: string; lease_expires_at: string | null }>(
      `/stories/${encodeURIComponent(id)}/heartbeat`,
    );
    print(data, () =>
      out(data.lease_expires_at ? `claim held until ${data.lease_expires_at}` : 'claim held (no lease)'),
    );
  });

interface RoundLine {
  name: string;
  min_reviewers: number;
  required_labels: string[];
  aggregator_required: boolean;
}
const roundLine = (r: RoundLine, i: number) =>
  `${i + 1}. ${r.name}: ${r.min_reviewers} reviewer(s)` +
  (r.required_labels.length ? `, labels ${r.required_labels.join(', ')}` : '') +
  (r.aggregator_required ? ', aggregator signs' : '');

const policy = program.command('policy').description("a project's review policy");
policy
  .command('show <project>')
  .description('the review policy now (version 0: the default, one review)')
  .action(async (ref: string) => {
    const c = client();
    const p = await resolveProject(c, ref);
    const data = await c.get<{ version: number; rounds: RoundLine[] }>(
      `/projects/${encodeURIComponent(p.id)}/review_policy`,
    );
    print(data, () => {
      out(`review policy version ${data.version}`);
      data.rounds.forEach((r, i) => out(roundLine(r, i)));
    });
  });
policy
  .command('set <project> <file>')
  .description('set the review policy (admin) from a JSON file: {"rounds":[{name, min_reviewers, ...}]}')
  .action(async (ref: string, file: string) => {
    const c = client();
    const p = await resolveProject(c, ref);
    const data = await c.put<{ version: number; rounds: RoundLine[] }>(
      `/projects/${encodeURIComponent(p.id)}/review_policy`,
      JSON.parse(readFileSync(file, 'utf8')),
    );
    print(data, () => out(`review policy version ${data.version}: ${data.rounds.length} round(s)`));
  });

program
  .command('labels <agent-id> [labels...]')
  .description("set an agent's labels (admin; never your own), e.g. security-adversary architect")
  .action(async (agentId: string, labels: string[]) => {
    const data = await client().put<{ name: string; labels: string[] }>(
      `/agents/${encodeURIComponent(agentId)}/labels`,
      { labels },
    );
    print(data, () => out(`${data.name}: ${data.labels.join(', ') || 'no labels'}`));
  });

program
  .command('reviews <story>')
  .description("a story's review rounds, each reviewer's findings, and the artifact chain")
  .action(async (ref: string) => {
    const c = client();
    const id = await resolveStory(c, ref);
    const data = await c.get<{
      policy: { version: number };
      rounds: (RoundLine & { complete: boolean; reviewers: string[]; missing_labels: string[] })[] | null;
      records: {
        kind: string;
        round: string | null;
        agent_id: string;
        findings_count: number | null;
        artifact_key: string | null;
        counts: boolean;
      }[];
    }>(`/stories/${encodeURIComponent(id)}/reviews`);
    print(data, () => {
      out(`review policy version ${data.policy.version}`);
      for (const r of data.rounds ?? [])
        out(
          `${r.name}: ${r.complete ? 'complete' : 'open'}, ${r.reviewers.length} reviewer(s)` +
            (r.missing_labels.length ? `, missing ${r.missing_labels.join(', ')}` : ''),
        );
      for (const r of data.records)
        out(
          `${r.kind}${r.round ? ` [${r.round}]` : ''} by ${r.agent_id}` +
            (r.findings_count !== null ? `, ${r.findings_count} finding(s)` : '') +
            ` of ${r.artifact_key ?? 'no artifact'}${r.kind === 'review' && !r.counts ? ' (voided)' : ''}`,
        );
    });
  });

const project = program.command('project').description('projects');
project
  .command('create <name>')
  .description('create a project (admin or orchestrator)')
  .requiredOption('--slug <slug>', 'lowercase letters, digits and dashes')
  .option('--description <text>')
  .option('--lease-ttl <seconds>', 'how long a claim lives without a heartbeat (0 = no lease)')
  .action(async (name: string, o: { slug: string; description?: string; leaseTtl?: string }) => {
    const data = await client().post<Project>('/projects', {
      name,
      slug: o.slug,
      ...(o.description !== undefined ? { description: o.description } : {}),
      ...(o.leaseTtl !== undefined ? { lease_ttl_seconds: Number(o.leaseTtl) } : {}),
    });
    print(data, () => out(projectLine(data)));
  });
project
  .command('list')
  .description('projects of the tenant')
  .action(async () => {
    const data = await client().get<Project[]>('/projects');
    print(data, () => (data.length ? data.forEach((p) => out(projectLine(p))) : out('no projects')));
  });
project
  .command('show <project>')
  .description('a project (its slug or id) and its progress')
  .action(async (ref: string) => {
    const c = client();
    const p = await resolveProject(c, ref);
    const progress = await c.get<Progress>(`/projects/${encodeURIComponent(p.id)}/progress`);
    print({ project: p, progress }, () => {
      out(projectLine(p));
      if (p.description) out(p.description);
      out(
        `lease ${p.lease_ttl_seconds ? `${p.lease_ttl_seconds} s` : 'none'}, stalled after ${p.stall_after_seconds} s`,
      );
      printProgress(progress);
    });
  });

program
  .command('epic')
  .description('epics')
  .command('create <project> <number> <title>')
  .description('create an epic in a project (slug or id)')
  .option('--description <text>')
  .action(async (ref: string, number: string, title: string, o: { description?: string }) => {
    const c = client();
    const p = await resolveProject(c, ref);
    const data = await c.post<{ id: string; number: number; title: string }>(
      `/projects/${encodeURIComponent(p.id)}/epics`,
      { number: Number(number), title, ...(o.description !== undefined ? { description: o.description } : {}) },
    );
    print(data, () => out(`epic ${data.number} ${data.title}  (${data.id})`));
  });

program
  .command('blocked')
  .description('stories waiting on dependencies that are not verified')
  .option('--project <project>', 'one project (slug or id)')
  .action(async (o: { project?: string }) => {
    const c = client();
    const projectId = o.project ? (await resolveProject(c, o.project)).id : undefined;
    const data = await c.get<(Story & { blocking_dependencies?: { number: string }[] })[]>(
      `/stories/blocked${query({ project_id: projectId })}`,
    );
    print(data, () =>
      data.length
        ? data.forEach((s) =>
            out(
              `${storyLine(s)}${s.blocking_dependencies ? `  waits on ${s.blocking_dependencies.map((d) => d.number).join(', ')}` : ''}`,
            ),
          )
        : out('no blocked stories'),
    );
  });

program
  .command('awaiting <what>')
  .description('stories awaiting review (review_requested) or verification (reported_done, not verified)')
  .option('--project <project>', 'one project (slug or id)')
  .action(async (what: string, o: { project?: string }) => {
    if (what !== 'review' && what !== 'verification') throw new UsageError('awaiting takes review or verification');
    const c = client();
    const projectId = o.project ? (await resolveProject(c, o.project)).id : undefined;
    const filter =
      what === 'review'
        ? { agent_status: 'review_requested' }
        : { agent_status: 'reported_done', verified_status: 'unverified' };
    const data = await allPages<Story>(c, '/stories', { project_id: projectId, ...filter });
    print(data, () => (data.length ? data.forEach((s) => out(storyLine(s))) : out(`nothing awaits ${what}`)));
  });

program
  .command('audit')
  .description("the tenant's audit trail (admin or orchestrator)")
  .option('--project <project>', 'one project (slug or id)')
  .option('--story <story>', 'one story (id or project/number)')
  .option('--since <time>', 'ISO time')
  .option('--limit <n>', 'at most', '50')
  .action(async (o: { project?: string; story?: string; since?: string; limit: string }) => {
    const c = client();
    const projectId = o.project ? (await resolveProject(c, o.project)).id : undefined;
    const storyId = o.story ? await resolveStory(c, o.story) : undefined;
    const [page, names] = await Promise.all([
      c.page<HistoryRow>(
        `/audit${query({ project_id: projectId, story_id: storyId, since: o.since, limit: o.limit })}`,
      ),
      agentNames(c),
    ]);
    print(page, () => {
      for (const h of page.data) out(historyLine(h, names));
      if (page.meta.next_cursor) out(`(more: --since, or the API's cursor ${page.meta.next_cursor})`);
    });
  });

const webhooks = program.command('webhooks').description('webhooks (admin)');
webhooks
  .command('list')
  .description('webhooks of the tenant')
  .action(async () => {
    const data = await client().get<{ id: string; url: string; events: string[] }[]>('/webhooks');
    print(data, () =>
      data.length ? data.forEach((w) => out(`${w.id}  ${w.url}  ${w.events.join(',')}`)) : out('no webhooks'),
    );
  });
webhooks
  .command('create <url>')
  .description('subscribe a URL to events; its signing secret is shown once')
  .requiredOption('--events <events>', 'comma-separated event names')
  .option('--project <project>', 'one project (slug or id)')
  .action(async (url: string, o: { events: string; project?: string }) => {
    const c = client();
    const projectId = o.project ? (await resolveProject(c, o.project)).id : undefined;
    const data = await c.post<{ id: string; secret: string }>('/webhooks', {
      url,
      events: o.events.split(',').map((e) => e.trim()),
      ...(projectId ? { project_id: projectId } : {}),
    });
    print(data, () =>
      out(`webhook ${data.id}
signing secret (shown once): ${data.secret}`),
    );
  });
webhooks
  .command('deliveries <webhook-id>')
  .description("a webhook's delivery attempts")
  .action(async (id: string) => {
    const data = await client().get<{ event: string; status: string; created_at: string; attempts: unknown[] }[]>(
      `/webhooks/${encodeURIComponent(id)}/deliveries`,
    );
    print(data, () =>
      data.length
        ? data.forEach((d) =>
            out(`${d.created_at}  ${d.event.padEnd(24)} ${d.status.padEnd(10)} ${d.attempts.length} attempts`),
          )
        : out('no deliveries'),
    );
  });
webhooks
  .command('test <webhook-id>')
  .description('send a test event')
  .action(async (id: string) => {
    const data = await client().post(`/webhooks/${encodeURIComponent(id)}/test`);
    print(data, () => out('test event sent'));
  });
webhooks
  .command('delete <webhook-id>')
  .description('remove a webhook')
  .action(async (id: string) => {
    const data = await client().request('DELETE', `/webhooks/${encodeURIComponent(id)}`);
    print(data, () => out(`removed ${id}`));
  });

program
  .command('whoami')
  .description('the agent, role and tenant of the key')
  .action(async () => {
    const c = client();
    const [me, tenant] = await Promise.all([
      c.get<{ id: string; name: string; role: string; key_id: string }>('/agents/me'),
      c.get<{ id: string; name: string }>('/tenants/me'),
    ]);
    print({ agent: me, tenant }, () =>
      out(`${me.name} (${me.role}, agent ${me.id}, key ${me.key_id}) in tenant ${tenant.name} (${tenant.id})`),
    );
  });

program
  .command('init [dir]')
  .description(
    'set up a repository for orchestration: .mcp.json (server "loopctl"), the Stop and PreToolUse hooks, a CLAUDE.md section; with an admin key, the project and its three agents',
  )
  .option(
    '--admin-key <key>',
    'creates the project and its orchestrator, implementer and reviewer (default: $CUSTODY_ADMIN_KEY)',
  )
  .option('--project <name>', 'project name (default: the directory name)')
  .option('--slug <slug>', 'project slug (default: from the name)')
  .option('--lease-ttl <seconds>', "the project's lease_ttl_seconds (0 = no lease)")
  .option('--force', 'replace files of ours that were changed')
  .action(
    async (
      dir: string | undefined,
      o: { adminKey?: string; project?: string; slug?: string; leaseTtl?: string; force?: boolean },
    ) => {
      const env = process.env;
      const result = await initRepository({
        dir: dir ?? '.',
        url: program.opts().url as string,
        adminKey: o.adminKey ?? env.CUSTODY_ADMIN_KEY,
        projectName: o.project,
        projectSlug: o.slug,
        leaseTtlSeconds: o.leaseTtl === undefined ? undefined : Number(o.leaseTtl),
        keys: {
          LOOPCTL_ORCH_KEY: env.LOOPCTL_ORCH_KEY,
          LOOPCTL_AGENT_KEY: env.LOOPCTL_AGENT_KEY,
          LOOPCTL_REVIEW_KEY: env.LOOPCTL_REVIEW_KEY,
        },
        force: o.force,
      });
      print(result, () => {
        if (result.project)
          out(`project ${result.project.slug} (${result.project.id})${result.project.created ? ' created' : ''}`);
        for (const a of result.agents) out(`agent ${a.name} (${a.role}, ${a.id}) registered`);
        for (const [file, outcome] of Object.entries(result.files)) out(`${file.padEnd(52)} ${outcome}`);
        for (const w of result.warnings) out(`warning: ${w}`);
        out('.mcp.json holds API keys: keep it out of version control.');
      });
    },
  );

function projectLine(p: Project): string {
  return `${p.slug.padEnd(20)} ${p.name}  (${p.id})`;
}

function printProgress(data: Progress): void {
  for (const e of data.epics)
    out(
      `Epic ${String(e.number).padEnd(4)} ${bar(e.percent_verified)} ${String(e.verified).padStart(4)}/${e.total} verified  ${e.title}`,
    );
  out(
    `Total     ${bar(data.total.percent_verified)} ${String(data.total.verified).padStart(4)}/${data.total.total} verified (${data.total.percent_verified}%)`,
  );
}

class UsageError extends Error {}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A project by id or slug. */
async function resolveProject(c: CustodyClient, ref: string): Promise<Project> {
  if (UUID.test(ref)) return c.get<Project>(`/projects/${encodeURIComponent(ref)}`);
  const found = (await c.get<Project[]>('/projects')).find((p) => p.slug === ref);
  if (!found) throw new CustodyApiError(404, 'not_found', `No project with the slug ${ref}.`, { project: ref });
  return found;
}

/** A story by id, or as `project/number` (the project by slug or id). */
async function resolveStory(c: CustodyClient, ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const slash = ref.lastIndexOf('/');
  if (slash <= 0) throw new UsageError(`a story is its id or project/number (web/1.2), not ${ref}`);
  const p = await resolveProject(c, ref.slice(0, slash));
  const number = ref.slice(slash + 1);
  const stories = await allPages<Story>(c, '/stories', { project_id: p.id });
  const found = stories.find((s) => s.number === number);
  if (!found) throw new CustodyApiError(404, 'not_found', `No story ${number} in project ${p.slug}.`, { story: ref });
  return found.id;
}

async function allPages<T>(c: CustodyClient, path: string, params: Record<string, string | undefined>): Promise<T[]> {
  const rows: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await c.page<T>(`${path}${query({ ...params, limit: 500, cursor })}`);
    rows.push(...page.data);
    cursor = page.meta.next_cursor ?? undefined;
  } while (cursor);
  return rows;
}

/** Agent names by id, when the key may list agents (admin, orchestrator); else ids are shown. */
async function agentNames(c: CustodyClient): Promise<Map<string, string>> {
  try {
    const agents = await c.get<{ id: string; name: string }[]>('/agents');
    return new Map(agents.map((a) => [a.id, a.name]));
  } catch (err) {
    if (err instanceof CustodyApiError && err.status === 403) return new Map();
    throw err;
  }
}

const nameOf = (names: Map<string, string>, id: string) => names.get(id) ?? id;

function historyLine(h: HistoryRow, names: Map<string, string>): string {
  const who = h.actor.agent_id ? `${nameOf(names, h.actor.agent_id)} (${h.actor.role})` : h.actor.role;
  const outcome = h.outcome === 'accepted' ? 'accepted' : `rejected (${h.code})`;
  return `  ${h.occurred_at}  ${h.action.padEnd(16)} ${outcome}  by ${who}`;
}

/** An error's context, one detail a line: `expected.title: Home`. */
function contextLines(context: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(context).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? contextLines(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`  ${prefix}${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`],
  );
}

const EXIT = { refused: 1, usage: 2, unavailable: 3 } as const;

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (err) {
  const fail = (code: string, message: string, context: Record<string, unknown>, exit: number): never => {
    if (json()) process.stderr.write(`${escapeC1(JSON.stringify({ error: { code, message, context } }))}\n`);
    else {
      const lines = [`error ${code}: ${message}`, ...contextLines(context)];
      process.stderr.write(`${lines.join('\n').replace(CONTROL, '\ufffd')}\n`);
    }
    process.exit(exit);
  };
  if (err instanceof CommanderError) {
    // Help and version are not errors; commander has printed what it had to say.
    process.exit(err.exitCode === 0 ? 0 : EXIT.usage);
  }
  if (err instanceof CustodyApiError) {
    const unavailable = err.status === 0 || err.status >= 500;
    fail(err.code, err.message, err.context, unavailable ? EXIT.unavailable : EXIT.refused);
  }
  if (err instanceof UsageError) fail('usage', err.message, {}, EXIT.usage);
  if (err instanceof InitError) fail('init', err.message, {}, EXIT.refused);
  throw err;
}

function optionOf(arg: ArgSpec): Option {
  return new Option(arg.flag ?? `--${arg.field.replaceAll('_', '-')} <value>`);
}

/** The body of an action from its command's options: those given (an optional one not blank), integers as numbers. */
function cliBody(options: readonly ArgSpec[], given: Record<string, string | undefined>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const option of options) {
    const value = given[optionOf(option).attributeName()];
    if (value === undefined || (!option.required && value === '')) continue;
    body[option.field] = option.kind === 'integer' ? Number(value) : value;
  }
  return body;
}
