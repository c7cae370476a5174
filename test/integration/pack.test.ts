/**
 * The package works outside this checkout: `npm pack`, install the tarball into a directory of its
 * own, and run `npx custody --help` and an MCP `tools/list` there, with tsx removed so only the
 * compiled JavaScript can run. The installed dependencies are kept between runs (keyed on the
 * runtime dependencies) so a rerun reinstalls only the package itself.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('the packed package', () => {
  it('runs custody and custody-mcp from an installed tarball, without tsx', { timeout: 240_000 }, async () => {
    const packDir = mkdtempSync(join(tmpdir(), 'custody-pack-'));
    const packed = await run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: ROOT });
    const [{ filename, files }] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const paths = files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['bin/custody.js', 'bin/custody-mcp.js', 'dist/cli/main.js']));
    expect(paths.some((p) => p.startsWith('test/'))).toBe(false);

    // Keyed on the runtime dependencies: what an install of the tarball brings in.
    const { dependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: object };
    const key = createHash('sha256').update(JSON.stringify(dependencies)).digest('hex').slice(0, 16);
    const dir = join(homedir(), '.cache', 'custody', `pack-install-${key}`);
    mkdirSync(dir, { recursive: true });
    if (!existsSync(join(dir, 'package.json')))
      writeFileSync(join(dir, 'package.json'), '{"name":"pack-check","private":true}\n');
    // Scripts off: the clients need no native build, and the server's postinstalls are not under test here.
    await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(packDir, filename)],
      {
        cwd: dir,
      },
    );
    // Whatever runs now runs without tsx.
    rmSync(join(dir, 'node_modules', 'tsx'), { recursive: true, force: true });
    rmSync(join(dir, 'node_modules', '.bin', 'tsx'), { force: true });

    const env = { PATH: process.env.PATH ?? '', HOME: homedir(), npm_config_update_notifier: 'false' };
    const help = await run('npx', ['--no-install', 'custody', '--help'], { cwd: dir, env });
    expect(help.stdout).toContain('Usage: custody');
    expect(help.stdout).toContain('init [options] [dir]');

    const client = new Client({ name: 'pack-check', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: 'npx',
        args: ['--no-install', 'custody-mcp'],
        cwd: dir,
        env: { ...env, LOOPCTL_SERVER: 'http://127.0.0.1:9' },
        stderr: 'pipe',
      }),
    );
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(
        expect.arrayContaining(['list_stories', 'heartbeat_story', 'verify_story']),
      );
    } finally {
      await client.close();
      rmSync(packDir, { recursive: true, force: true });
    }
  });
});
