/** `custody init` on an empty repository against the real stack, then the hooks it wrote, run as Claude Code runs them. */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';

const BIN = fileURLToPath(new URL('../../bin/custody.js', import.meta.url));
let stack: Stack;
let adminKey: string;

function custody(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, '--url', stack.baseUrl, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * Runs a hook script as Claude Code does: the event as JSON on stdin, the project dir in the
 * environment. Asynchronously: a blocked event loop would let the test's pooled HTTP connections go stale.
 */
function hook(
  repo: string,
  home: string,
  script: string,
  event: Record<string, unknown>,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(join(repo, '.claude', 'hooks', script), [], {
      env: { PATH: process.env.PATH ?? '', HOME: home, CLAUDE_PROJECT_DIR: repo },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.end(JSON.stringify(event));
  });
}

beforeAll(async () => {
  stack = await startStack();
  const signup = await stack.api.post('/api/v1/tenants', undefined, { name: 'init' });
  expect(signup.status).toBe(201);
  adminKey = signup.body.data.api_key.key;
});
afterAll(async () => stack?.stop());

describe('custody init', () => {
  it('sets up an empty repository, is idempotent, and its keep-working hook exits 2 while stories remain, 0 when none do', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'custody-init-'));
    writeFileSync(join(repo, 'CLAUDE.md'), '# My project\n\nMine.\n');
    const first = await custody(['--json', 'init', repo, '--admin-key', adminKey, '--project', 'Shop']);
    expect(first.code, first.stderr).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(result.project).toMatchObject({ slug: 'shop', created: true });
    expect(result.agents.map((a: { role: string }) => a.role)).toEqual(['orchestrator', 'implementer', 'reviewer']);
    expect(result.files).toEqual({
      '.mcp.json': 'created',
      '.claude/hooks/Stop/keep-working.sh': 'created',
      '.claude/hooks/PreToolUse/orchestrator-guardrail.sh': 'created',
      '.claude/settings.json': 'created',
      'CLAUDE.md': 'updated',
    });

    const mcpJson = JSON.parse(readFileSync(join(repo, '.mcp.json'), 'utf8'));
    const server = mcpJson.mcpServers.loopctl;
    expect(server.env).toMatchObject({ LOOPCTL_SERVER: stack.baseUrl, LOOPCTL_PROJECT_ID: result.project.id });
    const { LOOPCTL_ORCH_KEY: orch, LOOPCTL_AGENT_KEY: agent, LOOPCTL_REVIEW_KEY: review } = server.env;
    expect(new Set([orch, agent, review]).size).toBe(3);
    expect(statSync(join(repo, '.mcp.json')).mode & 0o777).toBe(0o600);
    const claude = readFileSync(join(repo, 'CLAUDE.md'), 'utf8');
    expect(claude.startsWith('# My project\n\nMine.\n')).toBe(true);
    expect(claude).toContain(`mcp__loopctl__get_progress({project_id: "${result.project.id}"})`);
    const settings = JSON.parse(readFileSync(join(repo, '.claude', 'settings.json'), 'utf8'));
    expect(settings.hooks.Stop[0].hooks[0].command).toContain('keep-working.sh');
    expect(settings.hooks.PreToolUse[0].matcher).toBe('Edit|Write|MultiEdit|NotebookEdit');

    // Again: nothing changes, no new agents.
    const again = JSON.parse(
      (await custody(['--json', 'init', repo, '--admin-key', adminKey, '--project', 'Shop'])).stdout,
    );
    expect(again.agents).toEqual([]);
    expect(new Set(Object.values(again.files))).toEqual(new Set(['unchanged']));
    expect(JSON.parse(readFileSync(join(repo, '.mcp.json'), 'utf8'))).toEqual(mcpJson);
    // A hook the user changed is kept unless --force.
    const hookPath = join(repo, '.claude', 'hooks', 'Stop', 'keep-working.sh');
    const original = readFileSync(hookPath, 'utf8');
    writeFileSync(hookPath, `${original}# mine\n`);
    const kept = JSON.parse((await custody(['--json', 'init', repo])).stdout);
    expect(kept.files['.claude/hooks/Stop/keep-working.sh']).toMatch(/^kept/);
    expect(readFileSync(hookPath, 'utf8')).toContain('# mine');
    const forced = JSON.parse((await custody(['--json', 'init', repo, '--force'])).stdout);
    expect(forced.files['.claude/hooks/Stop/keep-working.sh']).toBe('updated');
    expect(readFileSync(hookPath, 'utf8')).toBe(original);

    // The hooks, against the real service. An orchestrator session marks itself with the sentinel.
    const home = mkdtempSync(join(tmpdir(), 'custody-home-'));
    mkdirSync(join(home, '.claude'));
    writeFileSync(join(home, '.claude', '.orchestrator-active-orch-1'), '');
    const stop = (session: string) => hook(repo, home, 'Stop/keep-working.sh', { session_id: session });
    expect((await stop('orch-1')).code).toBe(0); // an empty project: nothing remains

    const imported = await stack.api.post(`/api/v1/projects/${result.project.id}/import`, orch, {
      epics: [{ number: 1, title: 'E', stories: [{ number: '1.1', title: 'Cart', acceptance_criteria: ['a'] }] }],
    });
    expect(imported.status).toBe(201);
    const story = imported.body.data.stories[0];
    const remaining = await stop('orch-1');
    expect(remaining.code).toBe(2);
    expect(remaining.stderr).toContain('mcp__loopctl__get_progress');
    expect((await stop('someone-else')).code).toBe(0); // not an orchestrator session

    // The three keys init wrote take the story through custody; then nothing remains.
    for (const [action, key, body] of [
      ['contract', agent, { story_title: 'Cart', ac_count: 1 }],
      ['claim', agent, {}],
      ['start', agent, {}],
      ['request-review', agent, {}],
      ['report', review, {}],
      [
        'review-complete',
        review,
        { review_type: 'r', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
      ],
    ] as const) {
      const r = await stack.api.act(story.id, action, key, body);
      expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
    }
    expect((await stop('orch-1')).code).toBe(2); // reported, not verified yet
    expect((await stack.api.act(story.id, 'verify', orch, { summary: 'done' })).status).toBe(200);
    expect((await stop('orch-1')).code).toBe(0);

    const guard = (session: string, tool: string) =>
      hook(repo, home, 'PreToolUse/orchestrator-guardrail.sh', { session_id: session, tool_name: tool });
    const blocked = await guard('orch-1', 'Edit');
    expect(blocked.code).toBe(2);
    expect(blocked.stderr).toContain('BLOCKED');
    expect((await guard('orch-1', 'Read')).code).toBe(0);
    expect((await guard('someone-else', 'Write')).code).toBe(0);

    // A repository whose .mcp.json already points loopctl elsewhere: kept, and no agents minted for nothing.
    const other = mkdtempSync(join(tmpdir(), 'custody-init-'));
    const theirs = { mcpServers: { loopctl: { command: 'npx', args: ['loopctl-mcp-server'], env: {} } } };
    writeFileSync(join(other, '.mcp.json'), JSON.stringify(theirs));
    const agentsBefore = (await stack.api.get('/api/v1/agents', adminKey)).body.data.length;
    const declined = JSON.parse(
      (await custody(['--json', 'init', other, '--admin-key', adminKey, '--project', 'Shop'])).stdout,
    );
    expect(declined.files['.mcp.json']).toMatch(/^kept/);
    expect(declined.agents).toEqual([]);
    expect(declined.warnings.join('\n')).toContain('another project');
    expect(JSON.parse(readFileSync(join(other, '.mcp.json'), 'utf8'))).toEqual(theirs);
    expect((await stack.api.get('/api/v1/agents', adminKey)).body.data.length).toBe(agentsBefore);

    // The server .mcp.json names starts and serves the tools.
    const client = new Client({ name: 'init-test', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: server.command,
        args: server.args,
        env: { PATH: process.env.PATH ?? '', ...server.env },
        stderr: 'pipe',
      }),
    );
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('heartbeat_story');
      const progress = (await client.callTool({
        name: 'get_progress',
        arguments: { project_id: result.project.id },
      })) as { isError?: boolean; content: { text: string }[] };
      expect(progress.isError, progress.content[0].text).toBeFalsy();
    } finally {
      await client.close();
    }
  });
});
