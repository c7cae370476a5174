/**
 * The workflow's zod-free body check accepts exactly what the gateway's zod schemas accept (both are
 * derived from the bodies in src/custody/actions.ts): property-based, on bodies built near each
 * schema (right and wrong types, edge lengths and numbers, missing and extra fields) and on
 * arbitrary JSON.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTION_SPECS } from '../../src/custody/action-specs.js';
import { ACTIONS, ACTION_RULES, type Action } from '../../src/custody/actions.js';
import { bodyShapeIssues } from '../../src/custody/body-shape.js';

/** Every field a caller may send to some action (the gateway sets `pinned-policy` ones), and one no action takes. */
const FIELDS = [
  ...new Set(
    ACTIONS.flatMap((action) =>
      Object.entries(ACTION_RULES[action].body).flatMap(([name, field]) =>
        field.type === 'pinned-policy' ? [] : name,
      ),
    ),
  ),
  'agent_id',
];

const edgeString = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc
    .constantFrom(63, 64, 65, 199, 200, 201, 499, 500, 501, 999, 1000, 1001, 1999, 2000, 2001, 19_999, 20_000, 20_001)
    .map((n) => 'x'.repeat(n)),
  fc.constantFrom('😀'.repeat(500), '😀'.repeat(501), 'é'.repeat(1000)),
);
const edgeNumber = fc.oneof(
  fc.integer({ min: -1_000_001, max: 1_000_001 }),
  fc.constantFrom(
    -1_000_000,
    1_000_000,
    -1_000_001,
    1_000_001,
    0,
    -0,
    0.5,
    -1,
    1_000_000_000,
    1_000_000_001,
    1e15,
    1e15 + 2,
    Number.MAX_SAFE_INTEGER,
    1e21,
    Number.NaN,
    Infinity,
    -Infinity,
  ),
  fc.double(),
);
const value = fc.oneof(
  edgeString,
  edgeNumber,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
  // Near edit's remove_dependencies: up to 100 ids of up to 64 characters (built, not shrunk item by item).
  fc
    .tuple(fc.constantFrom(99, 100, 101), fc.oneof(fc.constantFrom('i'.repeat(64), 'i'.repeat(65)), fc.integer()))
    .map(([length, last]) => [...Array<string>(length - 1).fill('id'), last]),
  fc.dictionary(
    fc.oneof(fc.string({ maxLength: 5 }), fc.constantFrom('k'.repeat(200), 'k'.repeat(201))),
    fc.jsonValue({ maxDepth: 1 }),
    { maxKeys: 3 },
  ),
  // Near report's token_usage.
  fc.dictionary(
    fc.constantFrom('input_tokens', 'output_tokens', 'model_name', 'cost_millicents', 'other'),
    fc.oneof(edgeString, edgeNumber),
    { maxKeys: 3 },
  ),
);
const nearBody = fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 6 });
const anyBody = fc.oneof(nearBody, fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, undefined, [], 'x', 1));

function agree(action: Action, body: unknown): void {
  const zod = ACTION_SPECS[action].body.safeParse(body);
  const issues = bodyShapeIssues(action, body);
  const agrees = (issues.length === 0) === zod.success;
  // The message only when it is shown: some generated bodies are large.
  const why = agrees
    ? ''
    : `${action} ${JSON.stringify(body)?.slice(0, 200)}: zod ${zod.success}, issues ${JSON.stringify(issues)}`;
  expect(agrees, why).toBe(true);
}

describe('the workflow body check', () => {
  it('accepts exactly what the zod schemas accept, for every action', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ACTIONS), anyBody, (action, body) => agree(action, body)),
      { numRuns: 20_000 },
    );
  });

  it('accepts the bodies a lifecycle sends', () => {
    const valid: [Action, unknown][] = [
      ['contract', { story_title: 'Checkout', ac_count: 2 }],
      ['claim', {}],
      ['report', { artifact: 'https://example.test/pr/1' }],
      ['report', { artifact: { pr: 1 } }],
      [
        'review-complete',
        { review_type: 'standard', findings_count: 2, fixes_count: 1, disproved_count: 1, summary: 'ok' },
      ],
      ['verify', {}],
      ['reject', { reason: 'no tests' }],
      ['force-unclaim', {}],
    ];
    for (const [action, body] of valid) {
      expect(bodyShapeIssues(action, body)).toEqual([]);
      agree(action, body);
    }
    expect(bodyShapeIssues('claim', { agent_id: 'x' })).toEqual([{ path: 'agent_id', message: 'unknown field' }]);
  });

  it('takes the review policy the gateway pins on a contract, which no caller may send', () => {
    const pinned = {
      version: 2,
      rounds: [{ name: 'r1', min_reviewers: 1, required_labels: [], aggregator_required: false }],
    };
    const body = { story_title: 'Checkout', ac_count: 2, review_policy: pinned };
    expect(bodyShapeIssues('contract', body)).toEqual([]);
    expect(ACTION_SPECS.contract.body.safeParse(body).success).toBe(false);
    const { version: _, ...unversioned } = pinned;
    expect(bodyShapeIssues('contract', { ...body, review_policy: unversioned })).toEqual([
      { path: 'review_policy', message: 'version: required' },
    ]);
  });
});
