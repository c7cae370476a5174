/**
 * What `npm start` prints when it cannot start: one line naming the part that failed and the next
 * step, never a stack trace. Each start-up phase is run through `inPart`, so an error nobody
 * foresaw still names the part it came from.
 */

export class StartupError extends Error {
  constructor(
    /** The part that failed, as a reader names it: "the gateway", "the data folder /x". */
    readonly part: string,
    readonly problem: string,
    /** What to do about it: "set PORT to a free port". */
    readonly nextStep?: string,
  ) {
    super(`${part}: ${problem}${nextStep ? `; ${nextStep}` : ''}`);
  }
}

/** An error's message on one line (the first lines of a multi-line message, joined). */
export function oneLine(err: unknown, maxLength = 300): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' | ')
    .replace(/\s+/g, ' ');
  return line.length > maxLength ? `${line.slice(0, maxLength - 1)}…` : line || 'unknown error';
}

/** Runs one start-up phase; any failure that is not already a StartupError is named after `part`. */
export async function inPart<T>(part: string, fn: () => Promise<T> | T, nextStep?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StartupError) throw err;
    throw new StartupError(part, oneLine(err), nextStep);
  }
}
