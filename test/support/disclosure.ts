/** What must never reach a client or a log: stack frames, SQL, file paths, driver internals, raw keys. */
export const DISCLOSURE_PATTERNS: [string, RegExp][] = [
  ['stack frame', /\bat [\w$.<>]+ \(|\bat (file:|node:|\/)/],
  ['file path', /\/(work|home|root|usr|tmp|app)\/|node_modules|\.ts:\d+|\.js:\d+/],
  [
    'SQL',
    /\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b|syntax error at or near|violates (unique|foreign key|check) constraint|relation "\w+"/i,
  ],
  [
    'driver internals',
    /ECONNREFUSED|TemporalFailure|WorkflowUpdateFailedError|ZodError|TypeError|ReferenceError|RangeError/,
  ],
];

/** The first disclosure found in `text` (what and where), or null. */
export function disclosureIn(text: string, rawKeys: string[]): string | null {
  for (const [what, pattern] of DISCLOSURE_PATTERNS) if (pattern.test(text)) return `${what}: ${text.slice(0, 300)}`;
  for (const key of rawKeys) if (text.includes(key)) return 'a raw key';
  return null;
}
