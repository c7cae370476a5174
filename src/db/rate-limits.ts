/**
 * A PostgreSQL store for express-rate-limit: fixed windows counted in one table that every gateway
 * process shares, so a limit holds across any number of gateways. One statement per hit (an
 * upsert that starts a new window once the old one is over); expired windows are swept now and
 * then by whichever gateway passes by.
 *
 * Not `@acpr/rate-limit-postgresql`: it opens a pool of its own per limiter (five here), pins
 * another copy of `pg`, and migrates a schema of its own outside node-pg-migrate.
 */
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type pg from 'pg';

/** Expired windows are deleted at most this often per store. */
const SWEEP_EVERY_MS = 60_000;

export class PostgresRateLimitStore implements Store {
  readonly localKeys = false;
  private windowMs = 60_000;
  private lastSweep = Date.now();

  constructor(
    private readonly pool: pg.Pool,
    /** The limiter's name: keys of different limiters never share a counter. */
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  private keyOf(key: string): string {
    return `${this.prefix}:${key}`;
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const { rows } = await this.pool.query<{ hits: number; reset_at: Date }>(
      'SELECT hits, reset_at FROM rate_limits WHERE key = $1 AND reset_at > now()',
      [this.keyOf(key)],
    );
    return rows[0] ? { totalHits: rows[0].hits, resetTime: rows[0].reset_at } : undefined;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    this.sweepNowAndThen();
    const { rows } = await this.pool.query<{ hits: number; reset_at: Date }>(
      `INSERT INTO rate_limits AS r (key, hits, reset_at) VALUES ($1, 1, now() + $2 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET
         hits = CASE WHEN r.reset_at <= now() THEN 1 ELSE r.hits + 1 END,
         reset_at = CASE WHEN r.reset_at <= now() THEN excluded.reset_at ELSE r.reset_at END
       RETURNING hits, reset_at`,
      [this.keyOf(key), this.windowMs],
    );
    return { totalHits: rows[0].hits, resetTime: rows[0].reset_at };
  }

  async decrement(key: string): Promise<void> {
    await this.pool.query('UPDATE rate_limits SET hits = hits - 1 WHERE key = $1 AND hits > 0 AND reset_at > now()', [
      this.keyOf(key),
    ]);
  }

  async resetKey(key: string): Promise<void> {
    await this.pool.query('DELETE FROM rate_limits WHERE key = $1', [this.keyOf(key)]);
  }

  private sweepNowAndThen(): void {
    if (Date.now() - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = Date.now();
    // Only this limiter's keys; best effort (a failed sweep is retried a minute later).
    this.pool
      .query(`DELETE FROM rate_limits WHERE key LIKE $1 AND reset_at < now()`, [`${this.prefix}:%`])
      .catch(() => undefined);
  }
}
