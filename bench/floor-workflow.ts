/** The floor: the smallest workflow with an update, to measure a raw Temporal update round trip. */
import { condition, defineUpdate, setHandler } from '@temporalio/workflow';

export const increment = defineUpdate<number, [number]>('increment');

export async function floorWorkflow(): Promise<void> {
  let counter = 0;
  setHandler(increment, (by: number) => (counter += by));
  await condition(() => false);
}
