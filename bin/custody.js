#!/usr/bin/env node
// The CLI's launcher: runs the TypeScript source through tsx.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli/main.ts', import.meta.url).href);
