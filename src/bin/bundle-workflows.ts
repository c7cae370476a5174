/** `npm run build:workflows <out.js>`: writes the workflow bundle (for WORKFLOW_BUNDLE_PATH). */
import { writeWorkflowBundle } from '../temporal/workflow-bundle.js';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: bundle-workflows <out.js>\n');
  process.exit(2);
}
await writeWorkflowBundle(out);
