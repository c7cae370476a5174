/**
 * `npm run temporal:install-server`: makes sure the real Temporal server (the version compose pins),
 * its SQL tool, config template and schemas are in the per-user cache, and prints that folder.
 */
import { locateTemporalServer } from './server.js';

const build = await locateTemporalServer();
if (!build) {
  process.stderr.write('no Temporal server: install Go (https://go.dev/dl) so it can be built from its modules\n');
  process.exit(1);
}
process.stdout.write(`${build.dir}\n`);
