/**
 * `custody`: the command line for humans. Configuration from the environment (CUSTODY_URL or
 * LOOPCTL_SERVER; CUSTODY_API_KEY or LOOPCTL_API_KEY) or the flags --url and --key. Errors are
 * one line, `error <code>: <message>`, and exit code 1.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { CustodyApiError, CustodyClient, query } from '../clients/http.js';

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
  .command('story <id>')
  .description('a story and its history')
  .action(async (id: string) => {
    const c = client();
    const [story, history] = await Promise.all([
      c.get<Story>(`/stories/${encodeURIComponent(id)}`),
      c.get<
        {
          action: string;
          outcome: string;
          code: string | null;
          actor: { agent_id: string | null; role: string };
          occurred_at: string;
        }[]
      >(`/stories/${encodeURIComponent(id)}/history`),
    ]);
    print({ story, history }, () => {
      out(storyLine(story));
      out(
        `iteration ${story.iteration}, assigned to ${story.assigned_agent_id ?? 'nobody'}; next: ${(story.next_actions ?? []).join(', ') || 'nothing'}`,
      );
      for (const h of history)
        out(
          `  ${h.occurred_at}  ${h.action.padEnd(16)} ${h.outcome === 'accepted' ? 'accepted' : `rejected (${h.code})`}  by ${h.actor.role} ${h.actor.agent_id ?? ''}`,
        );
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

/** One subcommand per lifecycle action, with its body as options. */
const ACTIONS: [string, string, (o: Record<string, string | undefined>) => unknown, Option[]][] = [
  [
    'contract',
    'contract a story',
    (o) => ({ story_title: o.title, ac_count: Number(o.acCount) }),
    [new Option('--title <title>').makeOptionMandatory(), new Option('--ac-count <n>').makeOptionMandatory()],
  ],
  ['claim', 'claim a contracted story', () => ({}), []],
  ['start', 'start implementing', () => ({}), []],
  ['request-review', 'ask for review', () => ({}), []],
  ['report', 'report done', (o) => (o.artifact ? { artifact: o.artifact } : {}), [new Option('--artifact <text>')]],
  [
    'review-complete',
    'record a review',
    (o) => ({
      review_type: o.type,
      findings_count: Number(o.findings),
      fixes_count: Number(o.fixes),
      disproved_count: Number(o.disproved),
      summary: o.summary,
    }),
    ['--type <type>', '--findings <n>', '--fixes <n>', '--disproved <n>', '--summary <text>'].map((f) =>
      new Option(f).makeOptionMandatory(),
    ),
  ],
  [
    'verify',
    'verify a reviewed story',
    (o) => (o.summary ? { summary: o.summary } : {}),
    [new Option('--summary <text>')],
  ],
  [
    'reject',
    'reject back to pending',
    (o) => ({ reason: o.reason }),
    [new Option('--reason <text>').makeOptionMandatory()],
  ],
  ['unclaim', 'give a claim back', () => ({}), []],
  [
    'force-unclaim',
    'take a claim back',
    (o) => ({ reason: o.reason }),
    [new Option('--reason <text>').makeOptionMandatory()],
  ],
];
for (const [action, description, body, options] of ACTIONS) {
  const command = program.command(`${action} <story-id>`).description(description);
  for (const option of options) command.addOption(option);
  command.action(async (storyId: string, opts: Record<string, string | undefined>) => {
    const story = await client().post<Story>(`/stories/${encodeURIComponent(storyId)}/${action}`, body(opts));
    print(story, () => out(storyLine(story)));
  });
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CustodyApiError) {
    process.stderr.write(`error ${err.code}: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
