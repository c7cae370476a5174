/**
 * A deliberately incompatible story workflow (it never upserts search attributes), used to show
 * that the replay test does catch a non-deterministic change.
 */
import { condition } from '@temporalio/workflow';

export async function storyWorkflow(): Promise<void> {
  await condition(() => false);
}
