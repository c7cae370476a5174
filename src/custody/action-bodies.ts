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
const tokens = z.number().int().min(0).max(1e15);
const artifact = z.union([text(20_000), z.record(z.string().max(200), z.unknown())]);

/** Body schemas per action. Shape only: the meaning (findings math, blank reasons) is a custody rule. */
export const ACTION_BODIES = {
  contract: z.strictObject({ story_title: text(1000), ac_count: count }),
  claim: z.strictObject({}),
  start: z.strictObject({}),
  'request-review': z.strictObject({}),
  report: z.strictObject({
    artifact: artifact.optional(),
    /** loopctl's token accounting for the work reported; stored, and summed per story and project. */
    token_usage: z
      .strictObject({
        input_tokens: tokens.optional(),
        output_tokens: tokens.optional(),
        model_name: text(200).optional(),
        cost_millicents: tokens.optional(),
      })
      .optional(),
  }),
  'review-complete': z.strictObject({
    review_type: text(64),
    findings_count: count.optional(),
    fixes_count: count.optional(),
    disproved_count: count.optional(),
    summary: text(20_000).optional(),
    /** The artifact reviewed; absent, the review is of the latest report's artifact. */
    artifact: artifact.optional(),
    /** The review policy's round this review is for; absent, the round now open. */
    round: text(64).optional(),
  }),
  aggregate: z.strictObject({
    /** The round signed; absent, the round now open. */
    round: text(64).optional(),
    /** The round's summary the aggregator signs. */
    summary: text(20_000),
    /** The round's findings as the aggregator classified them: fixes + disproved = findings = the reviewers' sum. */
    findings_count: count.optional(),
    fixes_count: count.optional(),
    disproved_count: count.optional(),
    /** The artifact the summary is of; absent, the latest report's. */
    artifact: artifact.optional(),
  }),
  verify: z.strictObject({
    summary: text(20_000).optional(),
    review_type: text(64).optional(),
    /** The artifact verified; absent, the reviewed one (the latest report's), as loopctl's clients send it. */
    artifact: artifact.optional(),
  }),
  reject: z.strictObject({ reason: text(20_000).optional() }),
  unclaim: z.strictObject({}),
  'force-unclaim': z.strictObject({ reason: text(20_000).optional() }),
  backfill: z.strictObject({
    reason: text(20_000).optional(),
    evidence_url: text(2000).optional(),
    pr_number: z.number().int().min(0).max(1_000_000_000).optional(),
  }),
  /** Sent by the gateway for `PATCH /stories/:id` and `DELETE /story_dependencies/:id`. */
  edit: z.strictObject({
    title: text(500).optional(),
    ac_count: count.optional(),
    remove_dependencies: z.array(text(64)).max(100).optional(),
    /** Fields only the read model keeps (description, criteria, …), written with the transition. */
    content: z.record(z.string().max(200), z.unknown()).optional(),
  }),
  delete: z.strictObject({}),
} satisfies Record<Action, z.ZodType>;
