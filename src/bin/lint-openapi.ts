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
// JSON output, so that a warning fails the lint as an error does (redocly exits 0 on warnings).
const result = spawnSync(
  redocly,
  ['lint', 'dist/openapi.json', '--config', 'redocly.yaml', '--format', 'json', ...process.argv.slice(2)],
  {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  },
);
let report: { totals: { errors: number; warnings: number; ignored: number }; problems: unknown[] };
try {
  report = JSON.parse(result.stdout);
} catch {
  process.stderr.write(result.stdout + result.stderr);
  process.exit(result.status || 1);
}
for (const problem of report.problems) console.log(JSON.stringify(problem));
const { errors, warnings, ignored } = report.totals;
console.log(`openapi: ${errors} errors, ${warnings} warnings (${ignored} ignored, each with its reason)`);
process.exit(errors + warnings === 0 ? 0 : 1);
