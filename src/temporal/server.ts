/**
 * The real Temporal server (the version docker-compose pins), for running the production topology
 * without Docker: built from Go modules once into the per-user cache, with what the admin-tools and
 * server images carry beside the binaries:
 *
 *   ~/.cache/custody/temporal-server-v1.29.1/
 *     server                          the server (`temporal-server` in the image)
 *     sql                             Temporal's SQL tool (`temporal-sql-tool` in the image)
 *     config/docker.yaml              the server image's config template, filled in from the
 *                                     environment (DB, POSTGRES_SEEDS, DBNAME, ...) by the server
 *     schema/postgresql/v12/...       the schemas the SQL tool applies
 */
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { custodyCacheDir, goInstallOnce, run } from './go-build.js';

export const TEMPORAL_SERVER_MODULE = 'go.temporal.io/server';
/** The version of `temporalio/server` and `temporalio/admin-tools` in docker-compose.yml. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';

export interface TemporalServerBuild {
  dir: string;
  server: string;
  sqlTool: string;
  /** `--root` for the server: it reads `config/docker.yaml` under it with `--env docker`. */
  root: string;
  /** The folder with `temporal/versioned` and `visibility/versioned` (TEMPORAL_SCHEMA_DIR). */
  schemaDir: string;
}

export function temporalServerCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return custodyCacheDir(`temporal-server-${TEMPORAL_SERVER_VERSION}`, env);
}

function buildOf(dir: string): TemporalServerBuild {
  return {
    dir,
    server: join(dir, 'server'),
    sqlTool: join(dir, 'sql'),
    root: dir,
    schemaDir: join(dir, 'schema', 'postgresql', 'v12'),
  };
}

/** Copies the config template and the PostgreSQL schemas out of the module, which `go install` fetched. */
async function copyFromModule(go: string, env: NodeJS.ProcessEnv, dir: string): Promise<void> {
  const module = `${TEMPORAL_SERVER_MODULE}@${TEMPORAL_SERVER_VERSION}`;
  const { code, output } = await run(go, ['mod', 'download', '-json', module], env, dir);
  if (code !== 0) throw new Error(`go mod download ${module} failed: ${output.slice(-500)}`);
  const source = (JSON.parse(output) as { Dir: string }).Dir;
  cpSync(join(source, 'config', 'docker.yaml'), join(dir, 'config', 'docker.yaml'));
  cpSync(join(source, 'schema', 'postgresql', 'v12'), join(dir, 'schema', 'postgresql', 'v12'), { recursive: true });
}

/** The server, its SQL tool, config template and schemas; built on first use. Null without Go. */
export async function locateTemporalServer(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<TemporalServerBuild | null> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dir = temporalServerCacheDir(env);
  const built = await goInstallOnce(
    {
      label: `the Temporal server ${TEMPORAL_SERVER_VERSION}`,
      dir,
      packages: [
        `${TEMPORAL_SERVER_MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`,
        `${TEMPORAL_SERVER_MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`,
      ],
      outputs: [
        'server',
        'sql',
        'config/docker.yaml',
        'schema/postgresql/v12/temporal/versioned',
        'schema/postgresql/v12/visibility/versioned',
      ],
      after: (go, buildEnv) => copyFromModule(go, buildEnv, dir),
    },
    env,
    log,
  );
  return built && existsSync(join(dir, 'server')) ? buildOf(dir) : null;
}
