/**
 * The shape of each action's body, as zod schemas: the gateway validates with them and the
 * OpenAPI document is generated from them. The workflow checks the same shapes without zod
 * (./body-shape.ts; a property test holds the two equal): zod would be instantiated again in
 * every cached workflow, about 0.9 MB each.
 */
import { z } from 'zod';
import type { Action } from './actions.js';

const text = (max: number) => z.string().max(max);
const count = z.number().int().min(-1_000_000).max(1_000_000);

/** Body schemas per action. Shape only: the meaning (findings math, blank reasons) is a custody rule. */
export const ACTION_BODIES = {
  contract: z.strictObject({ story_title: text(1000), ac_count: count }),
  claim: z.strictObject({}),
  start: z.strictObject({}),
  'request-review': z.strictObject({}),
  report: z.strictObject({
    artifact: z.union([text(20_000), z.record(z.string().max(200), z.unknown())]).optional(),
  }),
  'review-complete': z.strictObject({
    review_type: text(64),
    findings_count: count,
    fixes_count: count,
    disproved_count: count,
    summary: text(20_000),
  }),
  verify: z.strictObject({ summary: text(20_000).optional() }),
  reject: z.strictObject({ reason: text(20_000).optional() }),
  unclaim: z.strictObject({}),
  'force-unclaim': z.strictObject({ reason: text(20_000).optional() }),
} satisfies Record<Action, z.ZodType>;

export type ActionBody<A extends Action> = z.infer<(typeof ACTION_BODIES)[A]>;
