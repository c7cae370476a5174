/** The CLI, run as a child process against the real gateway. */
import { execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

const BIN = fileURLToPath(new URL('../../bin/custody.js', import.meta.url));
let stack: Stack;
let team: Team;

function custody(
  args: string[],
  key?: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, '--url', stack.baseUrl, ...(key ? ['--key', key] : []), ...args],
      { env: { PATH: process.env.PATH ?? '', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'cli');
});
afterAll(async () => stack?.stop());

describe('the custody CLI', () => {
  it('creates a tenant and registers an agent, printing keys once', async () => {
    const tenant = await custody(['tenant', 'create', 'cli-tenant']);
    expect(tenant.code).toBe(0);
    const key = /admin key \(shown once\): (cust_\S+)/.exec(tenant.stdout)?.[1];
    expect(key).toBeDefined();
    const agent = await custody(['agent', 'register', 'bot', '--role', 'agent'], key);
    expect(agent.stdout).toMatch(/key \(shown once\): cust_/);
  });

  it('imports, lists ready stories as JSON, drives a story, shows history and a progress bar', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'custody-cli-'));
    const file = join(dir, 'backlog.json');
    writeFileSync(
      file,
      JSON.stringify({
        epics: [
          {
            number: 1,
            title: 'Site',
            stories: [
              { number: '1.1', title: 'Home', acceptance_criteria: ['a', 'b'] },
              { number: '1.2', title: 'About', acceptance_criteria: ['a'] },
            ],
          },
        ],
      }),
    );
    const imported = await custody(['import', team.projectId, file], team.orchestrator.key);
    expect(imported.stdout.trim()).toBe('2 stories (2 new)');
    const ready = await custody(['--json', 'stories', '--ready', '--project', team.projectId], team.agents[0].key);
    const stories = JSON.parse(ready.stdout) as { id: string; number: string }[];
    expect(stories.map((s) => s.number).sort()).toEqual(['1.1', '1.2']);
    const home = stories.find((s) => s.number === '1.1')!.id;
    const [impl, rev] = team.agents;
    for (const [args, key] of [
      [['contract', home, '--title', 'Home', '--ac-count', '2'], impl.key],
      [['claim', home], impl.key],
      [['start', home], impl.key],
      [['request-review', home], impl.key],
      [['report', home], rev.key],
      [
        [
          'review-complete',
          home,
          '--type',
          'standard',
          '--findings',
          '1',
          '--fixes',
          '1',
          '--disproved',
          '0',
          '--summary',
          'ok',
        ],
        rev.key,
      ],
      [['verify', home, '--summary', 'done'], team.orchestrator.key],
    ] as const) {
      const r = await custody([...args], key);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const story = await custody(['story', home], impl.key);
    expect(story.stdout).toContain('verify');
    expect(story.stdout.split('\n').filter((l) => l.includes('accepted'))).toHaveLength(7);
    const progress = await custody(['progress', team.projectId], impl.key);
    expect(progress.stdout).toContain('[##########..........]    1/2 verified');
  });

  it('prints the code and the details of a refused action, and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'custody-cli-'));
    const file = join(dir, 'one.json');
    writeFileSync(
      file,
      JSON.stringify({
        epics: [{ number: 2, title: 'E', stories: [{ number: '2.1', title: 'X', acceptance_criteria: [] }] }],
      }),
    );
    await custody(['import', team.projectId, file], team.orchestrator.key);
    const list = JSON.parse(
      (await custody(['--json', 'stories', '--project', team.projectId], team.agents[0].key)).stdout,
    ) as { id: string; number: string }[];
    const id = list.find((s) => s.number === '2.1')!.id;
    const r = await custody(['start', id], team.agents[0].key);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error invalid_transition: /);
    // The details follow, one a line.
    expect(r.stderr).toContain('  current_agent_status: pending');
  });

  it('takes the key from the environment without ever showing it, and prints no terminal escapes from titles', async () => {
    const key = team.orchestrator.key;
    const help = await custody(['--help'], undefined, { CUSTODY_API_KEY: key });
    expect(help.stdout).toContain('--key');
    expect(help.stdout + help.stderr).not.toContain(key);
    const hostile = '\u001b]52;c;cHduZWQ=\u0007Title\u001b[2J\u009b31m';
    const imported = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, key, {
      epics: [
        { number: 7, title: 'Escapes', stories: [{ number: '7.1', title: hostile, acceptance_criteria: ['a'] }] },
      ],
    });
    expect(imported.status).toBe(201);
    const listed = await custody(['stories'], undefined, { CUSTODY_API_KEY: key });
    expect(listed.code).toBe(0);
    const line = listed.stdout.split('\n').find((l) => l.startsWith('7.1'))!;
    expect(line).toContain('Title');
    expect(line).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    const asJson = await custody(['stories', '--json'], undefined, { CUSTODY_API_KEY: key });
    expect(asJson.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    const parsed = JSON.parse(asJson.stdout);
    expect((parsed.data ?? parsed).find((s: any) => s.number === '7.1').title).toBe(hostile);
  });
});

describe('the custody CLI: projects, names and details', () => {
  it('creates and shows projects, names stories as project/number, shows agent names and error details', async () => {
    const orch = team.orchestrator.key;
    const [impl, rev] = team.agents;
    const created = await custody(['--json', 'project', 'create', 'Docs', '--slug', 'docs', '--lease-ttl', '0'], orch);
    expect(created.code, created.stderr).toBe(0);
    const project = JSON.parse(created.stdout);
    expect(project).toMatchObject({ slug: 'docs', lease_ttl_seconds: 0 });
    expect((await custody(['project', 'list'], impl.key)).stdout).toMatch(/^docs\s+Docs/m);
    const epic = await custody(['epic', 'create', 'docs', '1', 'Guides'], orch);
    expect(epic.stdout).toMatch(/^epic 1 Guides/);
    const imported = await stack.api.post(`/api/v1/projects/${project.id}/import`, orch, {
      epics: [
        {
          number: 1,
          title: 'Guides',
          stories: [
            { number: '1.1', title: 'Install', acceptance_criteria: ['a', 'b'] },
            { number: '1.2', title: 'Use', acceptance_criteria: ['a'], depends_on: ['1.1'] },
          ],
        },
      ],
    });
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);

    // A contract mismatch shows what was expected.
    const mismatch = await custody(['contract', 'docs/1.1', '--title', 'Instal', '--ac-count', '3'], impl.key);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/^error contract_mismatch: /);
    expect(mismatch.stderr).toMatch(/expected\.story_title: Install/);
    const mismatchJson = await custody(['--json', 'contract', 'docs/1.1', '--title', 'X', '--ac-count', '1'], impl.key);
    expect(JSON.parse(mismatchJson.stderr).error).toMatchObject({ code: 'contract_mismatch' });

    for (const [args, key] of [
      [['contract', 'docs/1.1', '--title', 'Install', '--ac-count', '2'], impl.key],
      [['claim', `${project.id}/1.1`], impl.key],
      [['heartbeat', 'docs/1.1'], impl.key],
      [['start', 'docs/1.1'], impl.key],
      [['request-review', 'docs/1.1'], impl.key],
    ] as const) {
      const r = await custody([...args], key);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const awaiting = await custody(['--json', 'awaiting', 'review', '--project', 'docs'], orch);
    expect(JSON.parse(awaiting.stdout).map((s: { number: string }) => s.number)).toEqual(['1.1']);
    expect((await custody(['awaiting', 'verification', '--project', 'docs'], orch)).stdout).toContain(
      'nothing awaits verification',
    );
    const blocked = await custody(['--json', 'blocked', '--project', 'docs'], orch);
    expect(JSON.parse(blocked.stdout).map((s: { number: string }) => s.number)).toEqual(['1.2']);

    // History with names (the orchestrator may list agents).
    const story = await custody(['story', 'docs/1.1'], orch);
    expect(story.stdout).toMatch(/claim\s+accepted {2}by agent-1 \(agent\)/);
    const audit = await custody(['audit', '--story', 'docs/1.1'], orch);
    expect(audit.stdout).toMatch(/start\s+accepted {2}by agent-1/);

    const whoami = await custody(['--json', 'whoami'], rev.key);
    expect(JSON.parse(whoami.stdout)).toMatchObject({
      agent: { id: rev.id, role: 'agent' },
      tenant: { id: team.tenantId },
    });
    const show = await custody(['project', 'show', 'docs'], impl.key);
    expect(show.stdout).toContain('lease none');
    expect(show.stdout).toContain('0/2 verified');

    // Exit codes: 2 for bad usage, 3 when the service cannot be reached.
    expect((await custody(['story', 'not-a-ref'], orch)).code).toBe(2);
    expect((await custody(['no-such-command'], orch)).code).toBe(2);
    const away = await new Promise<number>((resolve) =>
      execFile(process.execPath, [BIN, '--url', 'http://127.0.0.1:9', '--key', orch, 'whoami'], (err) =>
        resolve(err ? ((err as { code?: number }).code ?? 1) : 0),
      ),
    );
    expect(away).toBe(3);
  });
});
