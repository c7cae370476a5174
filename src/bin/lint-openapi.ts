/**
 * Lints the OpenAPI document with Redocly's recommended rules (redocly.yaml), as `npm run lint`
 * does: the document is built from the route declarations, with no server, database or Temporal.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { routeBooks, type GatewayDeps } from '../gateway/app.js';
import { buildOpenApiDocument } from '../gateway/openapi.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Declaring routes reads nothing from the dependencies: an empty stand-in is enough.
const document = buildOpenApiDocument(routeBooks({} as GatewayDeps));
// A fixed path (build output, not committed): .redocly.lint-ignore.yaml names places in it.
mkdirSync(join(root, 'dist'), { recursive: true });
const file = join(root, 'dist', 'openapi.json');
writeFileSync(file, JSON.stringify(document, null, 2));
const redocly = join(root, 'node_modules', '.bin', 'redocly');
const result = spawnSync(redocly, ['lint', 'dist/openapi.json', '--config', 'redocly.yaml', ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
});
process.exit(result.status ?? 1);
