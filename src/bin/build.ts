/**
 * `npm run build`: compiles the production entry points to JavaScript in dist/ (the worker, the
 * gateway, `npm start`'s all-in-one and the migrations), the clients, and the workflow bundle the
 * compiled worker runs (dist/workflow-bundle.js), so production runs on plain Node: no tsx loader
 * transpiling and keeping source maps in each process, no webpack at a worker's start. tsx stays
 * for development (`npm run dev:worker`, `npm run dev:gateway`, the tests).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildClients, compileEntryPoints } from './build-clients.js';
import { writeWorkflowBundle } from '../temporal/workflow-bundle.js';
import { BUILT_WORKFLOW_BUNDLE } from '../worker.js';

const SERVER_ENTRY_POINTS = ['src/bin/main.ts', 'src/bin/worker.ts', 'src/bin/gateway.ts', 'src/db/migrate-cli.ts'];

const started = Date.now();
// Output keeps src/'s depth (dist/bin/worker.js), so paths relative to a module resolve the same.
await compileEntryPoints(SERVER_ENTRY_POINTS);
await buildClients();
mkdirSync(dirname(BUILT_WORKFLOW_BUNDLE), { recursive: true });
await writeWorkflowBundle(BUILT_WORKFLOW_BUNDLE);
process.stdout.write(
  `built ${SERVER_ENTRY_POINTS.length} entry points, the clients and ${join('dist', 'workflow-bundle.js')} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
);
