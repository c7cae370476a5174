/**
 * Text PostgreSQL cannot store: a NUL character (refused by `text` and `jsonb`) or a lone UTF-16
 * surrogate (not valid Unicode; refused by `jsonb`). JSON can carry both, so a body holding one
 * would pass every schema and then fail at the database forever. Checked on every request body
 * by the gateway and on every action body by the custody rules (pure, no I/O: it runs in the
 * workflow too).
 */

// A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function isUnstorableText(text: string): boolean {
  return UNSTORABLE.test(text);
}

/** The path of the first key or string value in `value` that cannot be stored, or null. Walked without recursion. */
export function unstorableTextPath(value: unknown): string | null {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (typeof node === 'string') {
      if (isUnstorableText(node)) return path || '(body)';
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    for (const [key, child] of Object.entries(node)) {
      const childPath = path ? `${path}.${key}` : key;
      if (isUnstorableText(key)) return path || '(body)';
      stack.push([child, childPath]);
    }
  }
  return null;
}
