/** `npm run temporal:install`: makes sure a Temporal CLI is available and prints its path. */
import { locateTemporalCli } from './cli.js';

const path = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH || undefined }).catch(
  (err: unknown) => {
    process.stderr.write(`the Temporal CLI: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
if (!path) {
  process.stderr.write(
    'no Temporal CLI: install Go (https://go.dev/dl) so it can be built, or put `temporal` on PATH, or set TEMPORAL_CLI_PATH\n',
  );
  process.exit(1);
}
process.stdout.write(`${path}\n`);
