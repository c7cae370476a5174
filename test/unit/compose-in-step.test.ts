/**
 * docker-compose.yml is kept in step with what `npm run test:production` runs: the same versions,
 * the same scripts, the same dynamic config file at the path the server reads, the same database
 * names, and the search attributes the workflow sets. A compose change that the production test
 * would not see fails here.
 */
import { readFileSync } from 'node:fs';
import { SearchAttributeType } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { TEMPORAL_CLI_VERSION } from '../../src/temporal/cli.js';
import { devServerArgs } from '../../src/temporal/dev-server.js';
import { TEMPORAL_SERVER_VERSION } from '../../src/temporal/server.js';
import { STORY_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes.js';
import { mountOf, readCompose, REPO_ROOT, serviceEnv } from '../support/compose.js';

const compose = readCompose();
const read = (path: string) => readFileSync(`${REPO_ROOT}${path}`, 'utf8');
const entrypoint = (service: string) => [compose.services[service].entrypoint ?? []].flat().join(' ');

describe('docker-compose.yml and the production test run the same stack', () => {
  it('pins the Temporal server and admin tools the test builds', () => {
    expect(compose.services.temporal.image).toBe(`temporalio/server:${TEMPORAL_SERVER_VERSION.slice(1)}`);
    for (const job of ['temporal-schema', 'temporal-namespace']) {
      const image = compose.services[job].image ?? '';
      expect(image).toMatch(new RegExp(`^temporalio/admin-tools:${TEMPORAL_SERVER_VERSION.slice(1)}-`));
      expect(image).toMatch(new RegExp(`-cli-${TEMPORAL_CLI_VERSION.slice(1)}$`));
    }
  });

  it('runs the schema and namespace scripts of deploy/, mounted where its jobs call them', () => {
    for (const [job, script] of [
      ['temporal-schema', 'deploy/temporal-schema.sh'],
      ['temporal-namespace', 'deploy/temporal-namespace.sh'],
    ]) {
      const target = mountOf(compose, job, script);
      expect(target, `${job} mounts ${script}`).toBeDefined();
      expect(entrypoint(job)).toBe(`/bin/sh ${target}`);
      expect(compose.services[job].command).toBeUndefined();
    }
  });

  it('gives the server the dynamic config file of deploy/ at the path it reads', () => {
    const target = mountOf(compose, 'temporal', 'deploy/temporal-dynamicconfig.yaml');
    expect(target).toBeDefined();
    expect(serviceEnv(compose, 'temporal').DYNAMIC_CONFIG_FILE_PATH).toBe(target);
  });

  it('names the same databases for the schema job and the server, and creates them', () => {
    const schema = serviceEnv(compose, 'temporal-schema');
    const server = serviceEnv(compose, 'temporal');
    expect(schema.DBNAME).toBe(server.DBNAME);
    expect(schema.VISIBILITY_DBNAME).toBe(server.VISIBILITY_DBNAME);
    expect(schema.SQL_PLUGIN).toBe(server.DB);
    const init = read('deploy/postgres-init.sql');
    for (const name of [
      server.DBNAME,
      server.VISIBILITY_DBNAME,
      new URL(serviceEnv(compose, 'worker').DATABASE_URL.replace(/\$\{[^}]*\}/g, 'x')).pathname.slice(1),
    ]) {
      expect(init).toMatch(new RegExp(`CREATE DATABASE ${name};`));
    }
  });

  it('registers, on the namespace the services use, every search attribute the workflow sets', () => {
    const script = read('deploy/temporal-namespace.sh');
    const listed = /^attributes="([^"]+)"$/m.exec(script)?.[1].split(/\s+/).sort();
    const expected = STORY_SEARCH_ATTRIBUTES.map(
      (key) => `${key.name}=${key.type === SearchAttributeType.INT ? 'Int' : 'Keyword'}`,
    ).sort();
    expect(listed).toEqual(expected);
    const namespace = serviceEnv(compose, 'temporal-namespace').TEMPORAL_NAMESPACE;
    for (const service of ['migrate', 'worker', 'gateway']) {
      expect(serviceEnv(compose, service).TEMPORAL_NAMESPACE).toBe(namespace);
    }
  });

  it('gives the dev server the same dynamic config values as the production server', () => {
    const file = parse(read('deploy/temporal-dynamicconfig.yaml')) as Record<string, { value: unknown }[]>;
    const production = Object.entries(file).map(([key, [{ value }]]) => `${key}=${String(value)}`);
    const args = devServerArgs({ executable: 'temporal', port: 7233 });
    const dev = args.flatMap((arg, i) => (arg === '--dynamic-config-value' ? [args[i + 1]] : []));
    expect(dev.sort()).toEqual(production.sort());
  });

  it('builds the workflow bundle into the image where the worker reads it', () => {
    const path = serviceEnv(compose, 'worker').WORKFLOW_BUNDLE_PATH;
    const dockerfile = read('Dockerfile');
    // `npm run build` (src/bin/build.ts) writes dist/workflow-bundle.js; the image keeps dist/ at /app/dist.
    expect(dockerfile).toContain('RUN npm run build');
    expect(dockerfile).toContain('COPY --from=build /app/dist ./dist');
    expect(path).toBe('/app/dist/workflow-bundle.js');
  });
});
