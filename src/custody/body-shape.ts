/**
 * The shape of each action's body, checked without zod, for the workflow bundle. It accepts
 * exactly what the zod schemas of ./action-bodies.ts accept (test/unit/body-shape.test.ts holds
 * the two equal on generated bodies); the gateway has already validated with zod, so this is the
 * workflow's own guard against anything that reaches it another way.
 */
import type { Action } from './actions.js';
import { policyIssues } from './policy.js';

export interface ShapeIssue {
  path: string;
  message: string;
}

type Check = (value: unknown) => string | null;

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const text =
  (max: number): Check =>
  (value) =>
    typeof value !== 'string' ? 'expected a string' : value.length > max ? `at most ${max} characters` : null;

const count: Check = (value) =>
  typeof value !== 'number' || !Number.isInteger(value)
    ? 'expected an integer'
    : value < -1_000_000 || value > 1_000_000
      ? 'out of range'
      : null;

/** A string of up to 20,000 characters, or an object whose keys have up to 200. */
const artifact: Check = (value) => {
  if (typeof value === 'string') return text(20_000)(value);
  if (!isPlainObject(value)) return 'expected a string or an object';
  return Object.keys(value).some((key) => key.length > 200) ? 'keys of at most 200 characters' : null;
};

const pinnedPolicy: Check = (value) => {
  const issues = policyIssues(value);
  if (issues.length > 0) return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return typeof (value as { version?: unknown }).version === 'number' ? null : 'version: required';
};

const tokens: Check = (value) =>
  typeof value !== 'number' || !Number.isInteger(value)
    ? 'expected an integer'
    : value < 0 || value > 1e15
      ? 'out of range'
      : null;

const object =
  (fields: Record<string, Field>): Check =>
  (value) => {
    const issues = shapeIssues(fields, value);
    return issues.length === 0 ? null : issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  };

const texts =
  (max: number, each: number): Check =>
  (value) =>
    !Array.isArray(value)
      ? 'expected an array'
      : value.length > max
        ? `at most ${max} items`
        : value.some((v) => text(each)(v) !== null)
          ? `strings of at most ${each} characters`
          : null;

const prNumber: Check = (value) =>
  typeof value !== 'number' || !Number.isInteger(value)
    ? 'expected an integer'
    : value < 0 || value > 1_000_000_000
      ? 'out of range'
      : null;

interface Field {
  check: Check;
  optional?: boolean;
}

const SHAPES: Record<Action, Record<string, Field>> = {
  contract: {
    story_title: { check: text(1000) },
    ac_count: { check: count },
    /**
     * Set by the gateway, never by a caller (its zod schema has no such field): the project's review
     * policy, which the iteration keeps from its contract on. Absent: the default policy.
     */
    review_policy: { check: pinnedPolicy, optional: true },
  },
  claim: {},
  start: {},
  'request-review': {},
  report: {
    artifact: { check: artifact, optional: true },
    token_usage: {
      check: (v) =>
        object({
          input_tokens: { check: tokens, optional: true },
          output_tokens: { check: tokens, optional: true },
          model_name: { check: text(200), optional: true },
          cost_millicents: { check: tokens, optional: true },
        })(v),
      optional: true,
    },
  },
  'review-complete': {
    review_type: { check: text(64) },
    findings_count: { check: count, optional: true },
    fixes_count: { check: count, optional: true },
    disproved_count: { check: count, optional: true },
    summary: { check: text(20_000), optional: true },
    artifact: { check: artifact, optional: true },
    round: { check: text(64), optional: true },
  },
  aggregate: {
    round: { check: text(64), optional: true },
    summary: { check: text(20_000) },
    findings_count: { check: count, optional: true },
    fixes_count: { check: count, optional: true },
    disproved_count: { check: count, optional: true },
    artifact: { check: artifact, optional: true },
  },
  verify: {
    summary: { check: text(20_000), optional: true },
    review_type: { check: text(64), optional: true },
    artifact: { check: artifact, optional: true },
  },
  reject: { reason: { check: text(20_000), optional: true } },
  unclaim: {},
  'force-unclaim': { reason: { check: text(20_000), optional: true } },
  backfill: {
    reason: { check: text(20_000), optional: true },
    evidence_url: { check: text(2000), optional: true },
    pr_number: { check: prNumber, optional: true },
  },
  edit: {
    title: { check: text(500), optional: true },
    ac_count: { check: count, optional: true },
    remove_dependencies: { check: texts(100, 64), optional: true },
    content: {
      check: (v) =>
        !isPlainObject(v)
          ? 'expected an object'
          : Object.keys(v).some((k) => k.length > 200)
            ? 'keys of at most 200 characters'
            : null,
      optional: true,
    },
  },
  delete: {},
};

/** The body's problems for `action` (an empty list when its shape is right). */
export function bodyShapeIssues(action: Action, body: unknown): ShapeIssue[] {
  return shapeIssues(SHAPES[action], body);
}

function shapeIssues(fields: Record<string, Field>, body: unknown): ShapeIssue[] {
  if (!isPlainObject(body)) return [{ path: '', message: 'expected an object' }];
  const issues: ShapeIssue[] = [];
  for (const key of Object.keys(body)) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) issues.push({ path: key, message: 'unknown field' });
  }
  for (const [key, field] of Object.entries(fields)) {
    const present = Object.prototype.hasOwnProperty.call(body, key) && body[key] !== undefined;
    if (!present) {
      if (!field.optional) issues.push({ path: key, message: 'required' });
      continue;
    }
    const problem = field.check(body[key]);
    if (problem) issues.push({ path: key, message: problem });
  }
  return issues;
}
