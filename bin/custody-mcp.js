#!/usr/bin/env node
// Runs the compiled client in dist/ (built by `npm pack`, the tests, or `npm run build:clients`).
try {
  await import('../dist/mcp/server.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/mcp/server.js')) throw err;
  process.stderr.write('custody-mcp is not built in this checkout: run `npm run build:clients` first.\n');
  process.exit(3);
}
