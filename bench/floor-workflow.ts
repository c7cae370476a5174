/**
 * The floors: the smallest workflows that do what a transition does, to measure Temporal itself.
 * - `increment`: an update round trip (validator, handler, answer), nothing else;
 * - `incrementPersisted`: the same, but the handler awaits one activity that does nothing, the
 *   least any "answer only once it is persisted through an activity" design can cost.
 */
import { condition, defineUpdate, proxyActivities, setHandler } from '@temporalio/workflow';

export const increment = defineUpdate<number, [number]>('increment');
export const incrementPersisted = defineUpdate<number, [number]>('incrementPersisted');

export interface FloorActivities {
  noop(value: number): Promise<number>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });

export async function floorWorkflow(): Promise<void> {
  let counter = 0;
  setHandler(increment, (by: number) => (counter += by));
  setHandler(incrementPersisted, async (by: number) => noop((counter += by)));
  await condition(() => false);
}
