/**
 * The first build of the Temporal CLI: it says what it is doing and for how long while `go` runs,
 * and the total at the end; a failed build is one line pointing at its log; a build that is
 * abandoned (Ctrl-C) takes `go` and what it started with it. `go` here is a stand-in script that
 * writes what `go install -v` writes, in a PATH of its own and a fresh cache folder.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { locateTemporalCli, temporalCliCacheDir } from '../../src/temporal/cli.js';

const scratch = mkdtempSync(join(tmpdir(), 'custody-cli-build-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A PATH holding only a `go` that runs `script`, and a cache folder of its own. */
function fakeGo(name: string, script: string): NodeJS.ProcessEnv {
  const dir = join(scratch, name);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin', 'go'), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, 'bin', 'go'), 0o755);
  return { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, XDG_CACHE_HOME: join(dir, 'cache'), GOROOT: join(dir, 'none') };
}

describe('building the Temporal CLI', () => {
  it('prints progress with the elapsed time while it builds, and the total when done', async () => {
    const env = fakeGo(
      'ok',
      [
        'echo "go: downloading go.temporal.io/api v1.53.0" >&2',
        'sleep 0.6',
        'echo "go.temporal.io/server/common/log" >&2',
        'echo "go.temporal.io/server/service/history" >&2',
        'sleep 0.6',
        'printf "#!/bin/sh\\n" > "$GOBIN/temporal"; chmod 755 "$GOBIN/temporal"',
      ].join('\n'),
    );
    const lines: string[] = [];
    const path = await locateTemporalCli({ env, log: (l) => lines.push(l), progressEveryMs: 400 });
    expect(path).toBe(join(temporalCliCacheDir(env), 'temporal'));
    expect(lines[0]).toMatch(/^building the Temporal dev server \(.+\), first run only/);
    const progress = lines.filter((l) => /so far/.test(l));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress[0]).toMatch(
      /^building the Temporal dev server: \d+ s so far \(1 modules downloaded, 0 packages compiled; now downloading go\.temporal\.io\/api v1\.53\.0\)$/,
    );
    expect(progress.at(-1)).toMatch(/2 packages compiled; now compiling go\.temporal\.io\/server\/service\/history\)$/);
    expect(lines.at(-1)).toMatch(/^built the Temporal dev server in \d+ s: .*temporal$/);
    // The whole output is kept for later reading.
    expect(readFileSync(join(temporalCliCacheDir(env), 'build.log'), 'utf8')).toContain('go.temporal.io/api');
  });

  it('a failed build is one line naming its log', async () => {
    const env = fakeGo('fails', 'echo "some/package: compile error" >&2\nexit 2');
    const failure = await locateTemporalCli({ env, log: () => undefined }).catch((err: Error) => err);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toBe(
      `go install failed (exit 2); its output is in ${join(temporalCliCacheDir(env), 'build.log')}`,
    );
  });

  it('an abandoned build ends go and everything it started', async () => {
    const env = fakeGo('abandoned', `sleep 30 & echo $! > "${join(scratch, 'grandchild.pid')}"\nwait`);
    const abandon = new AbortController();
    const building = locateTemporalCli({ env, log: () => undefined, signal: abandon.signal }).catch((e: Error) => e);
    let grandchild = NaN;
    for (let i = 0; i < 50 && Number.isNaN(grandchild); i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        grandchild = Number.parseInt(readFileSync(join(scratch, 'grandchild.pid'), 'utf8'), 10);
      } catch {
        // Not written yet.
      }
    }
    expect(Number.isInteger(grandchild)).toBe(true);
    abandon.abort();
    expect(await building).toBeInstanceOf(Error);
    // Gone, or a zombie waiting for its new parent to reap it: either way it runs no more.
    const running = () => {
      try {
        const stat = readFileSync(`/proc/${grandchild}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 20 && running(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(running()).toBe(false);
  });
});
