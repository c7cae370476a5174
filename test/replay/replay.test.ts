/**
 * Replays recorded story histories (full lifecycles, rejections, a claim race, reject and rework,
 * continue-as-new, heartbeats, a lease that ran out, a stall, a body accepted before unstorable
 * text was refused, key ring news, a run held after the worker refused its batch, and the run an
 * admin resumed) against today's workflow code: a non-deterministic change fails here.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';

const dir = fileURLToPath(new URL('./fixtures', import.meta.url));
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();
// The workflow id each history ran under (dependency news is signed for it); older fixtures
// predate the map and replay under their file name, which their code never checks.
const idsFile = fileURLToPath(new URL('./workflow-ids.json', import.meta.url));
const workflowIds: Record<string, string> = existsSync(idsFile) ? JSON.parse(readFileSync(idsFile, 'utf8')) : {};

describe('replay of recorded story histories', () => {
  it('has fixtures covering several runs', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(4);
  });

  it.each(fixtures)('%s replays deterministically', async (file) => {
    const history = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'));
    expect(history.events.length).toBeGreaterThan(10);
    await Worker.runReplayHistory(
      { workflowBundle: { codePath: inject('workflowBundlePath') } },
      history,
      workflowIds[file] ?? file,
    );
  });

  it('fails for a workflow change that is not replay-safe (the check can fail)', async () => {
    const variant = await bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('./nondeterministic-variant.ts', import.meta.url)),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
    });
    const history = JSON.parse(readFileSync(`${dir}/${fixtures[0]}`, 'utf8'));
    await expect(Worker.runReplayHistory({ workflowBundle: variant }, history, 'variant')).rejects.toBeInstanceOf(
      DeterminismViolationError,
    );
  });
});
