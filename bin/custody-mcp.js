#!/usr/bin/env node
// The MCP server's launcher: runs the TypeScript source through tsx.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/mcp/server.ts', import.meta.url).href);
