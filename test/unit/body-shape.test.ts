/**
 * The workflow's zod-free body check accepts exactly what the gateway's zod schemas accept:
 * property-based, on bodies built near each schema (right and wrong types, edge lengths and
 * numbers, missing and extra fields) and on arbitrary JSON.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTIONS, type Action } from '../../src/custody/actions.js';
import { ACTION_BODIES } from '../../src/custody/action-bodies.js';
import { bodyShapeIssues } from '../../src/custody/body-shape.js';

const FIELDS = [
  'story_title',
  'ac_count',
  'artifact',
  'review_type',
  'findings_count',
  'fixes_count',
  'disproved_count',
  'summary',
  'reason',
  'agent_id',
];

const edgeString = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.constantFrom(63, 64, 65, 199, 200, 201, 999, 1000, 1001, 19_999, 20_000, 20_001).map((n) => 'x'.repeat(n)),
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
  fc.dictionary(
    fc.oneof(fc.string({ maxLength: 5 }), fc.constantFrom('k'.repeat(200), 'k'.repeat(201))),
    fc.jsonValue({ maxDepth: 1 }),
    { maxKeys: 3 },
  ),
);
const nearBody = fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 6 });
const anyBody = fc.oneof(nearBody, fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, undefined, [], 'x', 1));

function agree(action: Action, body: unknown): void {
  const zod = ACTION_BODIES[action].safeParse(body);
  const issues = bodyShapeIssues(action, body);
  expect(
    issues.length === 0,
    `${action} ${JSON.stringify(body)?.slice(0, 200)}: zod ${zod.success}, issues ${JSON.stringify(issues)}`,
  ).toBe(zod.success);
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
});
