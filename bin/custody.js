#!/usr/bin/env node
// The CLI, compiled to dist/ (`npm run build:clients`; npm pack and npm install build it).
await import('../dist/cli/main.js');
