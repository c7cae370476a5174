/** The README names only files and folders that exist: every repository path it quotes or links. */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
/** The repository's top-level folders a path can start with. */
const TOP = /^(src|workflows|activities|test|bench|migrations|docs|bin|\.ci)\//;

/** `a/{b,c}.ts` → `a/b.ts`, `a/c.ts`. */
function expandBraces(path: string): string[] {
  const match = /\{([^}]*)\}/.exec(path);
  if (!match) return [path];
  return match[1]
    .split(',')
    .flatMap((part) => expandBraces(path.slice(0, match.index) + part + path.slice(match.index + match[0].length)));
}

function namedPaths(text: string): string[] {
  const quoted = [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
  const linked = [...text.matchAll(/\]\(([^)#\s]+)\)/g)].map((m) => m[1]);
  return [
    ...new Set(
      [...quoted, ...linked]
        .map((p) => p.replace(/^\.\//, '').replace(/[:#(].*$/, ''))
        .filter((p) => TOP.test(p))
        .flatMap(expandBraces),
    ),
  ];
}

describe('README', () => {
  const paths = namedPaths(README);

  it('names repository paths (the check reads them)', () => {
    expect(paths).toContain('src/custody/rules.ts');
    expect(paths.length).toBeGreaterThan(10);
  });

  it.each(paths.map((p) => [p]))('%s exists', (path) => {
    expect(existsSync(join(ROOT, path)), `README names ${path}, which is not in the repository`).toBe(true);
  });

  it('finds a path that does not exist', () => {
    expect(namedPaths('see `src/no-such-file.ts` and `src/{a,b}.ts`')).toEqual([
      'src/no-such-file.ts',
      'src/a.ts',
      'src/b.ts',
    ]);
    expect(existsSync(join(ROOT, 'src/no-such-file.ts'))).toBe(false);
  });
});
