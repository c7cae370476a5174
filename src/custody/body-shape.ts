/**
 * The shape of each action's body, checked without zod, for the workflow bundle: derived from the
 * same description (./actions.ts) as the gateway's zod schemas (./action-bodies.ts), it accepts
 * exactly what they accept (test/unit/body-shape.test.ts holds the two equal on generated bodies).
 * The gateway has already validated with zod, so this is the workflow's own guard against anything
 * that reaches it another way.
 */
import { ACTION_RULES, type Action, type BodyField, type BodyShape } from './actions.js';
import { policyIssues } from './policy.js';

export interface ShapeIssue {
  path: string;
  message: string;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const joined = (issues: readonly ShapeIssue[]): string => issues.map((i) => `${i.path}: ${i.message}`).join('; ');

const textProblem = (max: number, value: unknown): string | null =>
  typeof value !== 'string' ? 'expected a string' : value.length > max ? `at most ${max} characters` : null;

const keysProblem = (maxKey: number, value: Record<string, unknown>): string | null =>
  Object.keys(value).some((key) => key.length > maxKey) ? `keys of at most ${maxKey} characters` : null;

/** What is wrong with one field's value, or null. */
function fieldProblem(field: BodyField, value: unknown): string | null {
  switch (field.type) {
    case 'text':
      return textProblem(field.max, value);
    case 'integer':
      return typeof value !== 'number' || !Number.isInteger(value)
        ? 'expected an integer'
        : value < field.min || value > field.max
          ? 'out of range'
          : null;
    case 'texts':
      return !Array.isArray(value)
        ? 'expected an array'
        : value.length > field.maxItems
          ? `at most ${field.maxItems} items`
          : value.some((v) => textProblem(field.max, v) !== null)
            ? `strings of at most ${field.max} characters`
            : null;
    case 'record':
      return isPlainObject(value) ? keysProblem(field.maxKey, value) : 'expected an object';
    case 'text-or-record':
      if (typeof value === 'string') return textProblem(field.max, value);
      return isPlainObject(value) ? keysProblem(field.maxKey, value) : 'expected a string or an object';
    case 'object': {
      const issues = shapeIssues(field.fields, value);
      return issues.length === 0 ? null : joined(issues);
    }
    case 'pinned-policy': {
      const issues = policyIssues(value);
      if (issues.length > 0) return joined(issues);
      return typeof (value as { version?: unknown }).version === 'number' ? null : 'version: required';
    }
  }
}

/** The body's problems for `action` (an empty list when its shape is right). */
export function bodyShapeIssues(action: Action, body: unknown): ShapeIssue[] {
  return shapeIssues(ACTION_RULES[action].body, body);
}

function shapeIssues(fields: BodyShape, body: unknown): ShapeIssue[] {
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
    const problem = fieldProblem(field, body[key]);
    if (problem) issues.push({ path: key, message: problem });
  }
  return issues;
}
