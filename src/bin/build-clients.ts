/**
 * Compiles the clients (the MCP server and the CLI) to JavaScript in dist/, so the package's
 * `custody-mcp` and `custody` run on plain Node, without tsx. esbuild rather than tsc: the same
 * output in ~30 ms instead of ~10 s (types are checked by `npm run typecheck`), which lets every
 * test run build afresh instead of trusting a stale dist/. Our code is bundled into one file per
 * client; packages stay imports of node_modules. Output keeps src/'s depth (dist/cli/main.js), so
 * paths relative to a module (the MCP server's bin) resolve the same compiled or not.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const CLIENT_ENTRY_POINTS = ['src/mcp/server.ts', 'src/cli/main.ts'];

/** Compiles entry points (paths from the repository's root) below src/ to dist/; `npm run build` uses it too. */
export async function compileEntryPoints(entryPoints: string[]): Promise<void> {
  await build({
    absWorkingDir: fileURLToPath(new URL('../..', import.meta.url)),
    entryPoints,
    outbase: 'src',
    outdir: 'dist',
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
}

export async function buildClients(): Promise<void> {
  await compileEntryPoints(CLIENT_ENTRY_POINTS);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildClients();
