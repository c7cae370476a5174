/**
 * Lints the OpenAPI document with Redocly's recommended rules (redocly.yaml), as `npm run lint`
 * does: the document is built from the route declarations, with no server, database or Temporal.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { routeBooks, type GatewayDeps } from '../gateway/app.js';
import { buildOpenApiDocument } from '../gateway/openapi.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Declaring routes reads nothing from the dependencies: an empty stand-in is enough.
const document = buildOpenApiDocument(routeBooks({} as GatewayDeps));
const dir = mkdtempSync(join(tmpdir(), 'custody-openapi-'));
const file = join(dir, 'openapi.json');
writeFileSync(file, JSON.stringify(document, null, 2));
const redocly = join(root, 'node_modules', '.bin', 'redocly');
const result = spawnSync(redocly, ['lint', file, '--config', join(root, 'redocly.yaml')], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
});
rmSync(dir, { recursive: true, force: true });
process.exit(result.status ?? 1);
