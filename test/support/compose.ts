/**
 * docker-compose.yml, read as data: the production test takes its settings from here (what each
 * service's environment holds, which script a job runs, which file is mounted where), and a unit
 * test holds the file to what the test runs (test/unit/compose-in-step.test.ts). So the stack that
 * `npm run test:production` starts is the compose stack with this machine's addresses put in.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ComposeService {
  image?: string;
  environment?: Record<string, string | number | boolean | null>;
  volumes?: string[];
  entrypoint?: string[] | string;
  command?: string[] | string;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
}

export function readCompose(path = `${REPO_ROOT}docker-compose.yml`): ComposeFile {
  return parse(readFileSync(path, 'utf8'), { merge: true }) as ComposeFile;
}

/** A service's environment as strings (`${VAR:-default}` left as written: callers override those). */
export function serviceEnv(compose: ComposeFile, service: string): Record<string, string> {
  const env = compose.services[service]?.environment;
  if (!env) throw new Error(`docker-compose.yml has no environment for ${service}`);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/**
 * A service's environment with this machine's values put in. Every key of `local` must be one
 * the service already has: a renamed variable fails here instead of being silently ignored.
 */
export function localEnv(
  compose: ComposeFile,
  service: string,
  local: Record<string, string>,
  extra: Record<string, string> = {},
): Record<string, string> {
  const env = serviceEnv(compose, service);
  const unknown = Object.keys(local).filter((k) => !(k in env));
  if (unknown.length > 0) throw new Error(`docker-compose.yml's ${service} has no ${unknown.join(', ')}`);
  const result = { ...env, ...local, ...extra };
  const unset = Object.entries(result).filter(([, v]) => v.includes('${'));
  if (unset.length > 0) throw new Error(`${service}: no local value for ${unset.map(([k]) => k).join(', ')}`);
  return result;
}

/** Where a service mounts a file of this repository (`./deploy/x:/etc/y:ro` gives `/etc/y` for `deploy/x`). */
export function mountOf(compose: ComposeFile, service: string, repoPath: string): string | undefined {
  for (const volume of compose.services[service]?.volumes ?? []) {
    const [source, target] = volume.split(':');
    if (source.replace(/^\.\//, '') === repoPath) return target;
  }
  return undefined;
}
