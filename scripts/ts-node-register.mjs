// Runs TypeScript examples and benchmarks on Node 20+ with ESM: `node --import ./scripts/ts-node-register.mjs file.ts`.
// Plain `npx ts-node file.ts` fails on Node 20 for ESM packages, so we register ts-node's ESM loader here.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

process.env.TS_NODE_TRANSPILE_ONLY ??= 'true';
process.env.TS_NODE_PROJECT ??= new URL('../tsconfig.json', import.meta.url).pathname;
register('ts-node/esm', pathToFileURL('./'));
