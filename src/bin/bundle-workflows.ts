/**
 * Bundles the workflow code (webpack, through the Temporal SDK) into one file: `node --import tsx
 * src/bin/bundle-workflows.ts <out.js>`. The worker runs this as a child process so that webpack
 * never lives in the worker's own memory (about 200 MB it would keep for its whole life).
 */
import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../worker.js';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: bundle-workflows <out.js>\n');
  process.exit(2);
}
const noop = () => undefined;
const { code } = await bundleWorkflowCode({
  workflowsPath: WORKFLOWS_PATH,
  logger: {
    log: noop,
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: (message: string) => void process.stderr.write(`${message}\n`),
  },
});
writeFileSync(out, code);
