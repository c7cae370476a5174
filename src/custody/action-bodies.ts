/**
 * The zod schema of an action's body, derived from its plain description (./actions.ts): the gateway
 * validates with it and the OpenAPI document is generated from it. The workflow checks the same
 * description without zod (./body-shape.ts; a property test holds the two equal): zod would be
 * instantiated again in every cached workflow, about 0.9 MB each.
 */
import { z } from 'zod';
import type { BodyField, BodyShape } from './actions.js';

/** The schema of one body, strict: a field the description does not name is refused. */
export function bodySchema(shape: BodyShape): z.ZodObject {
  const fields: Record<string, z.ZodType> = {};
  for (const [name, field] of Object.entries(shape)) {
    // Set by the gateway itself after validation, never by a caller.
    if (field.type === 'pinned-policy') continue;
    const schema = fieldSchema(field);
    fields[name] = field.optional ? schema.optional() : schema;
  }
  return z.strictObject(fields);
}

function fieldSchema(field: Exclude<BodyField, { type: 'pinned-policy' }>): z.ZodType {
  switch (field.type) {
    case 'text':
      return z.string().max(field.max);
    case 'integer':
      return z.number().int().min(field.min).max(field.max);
    case 'texts':
      return z.array(z.string().max(field.max)).max(field.maxItems);
    case 'record':
      return z.record(z.string().max(field.maxKey), z.unknown());
    case 'text-or-record':
      return z.union([z.string().max(field.max), z.record(z.string().max(field.maxKey), z.unknown())]);
    case 'object':
      return bodySchema(field.fields);
  }
}
