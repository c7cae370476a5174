#!/usr/bin/env node
// The MCP server, compiled to dist/ (`npm run build:clients`; npm pack and npm install build it).
await import('../dist/mcp/server.js');
