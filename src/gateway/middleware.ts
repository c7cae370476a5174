/** Authentication, roles and Idempotency-Key handling. */
import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type pg from 'pg';
import type { Role } from '../custody/actions.js';
import { canonicalJson } from '../custody/identity.js';
import { callerForKey, type Caller } from '../db/identity-repo.js';
import { looksLikeKey } from '../db/keys.js';
import { ApiError } from './errors.js';

export function callerOf(res: Response): Caller {
  const caller = res.locals.caller as Caller | undefined;
  if (!caller) throw new ApiError('unauthorized', 'A valid API key is required.');
  return caller;
}

/** Identity comes from the API key only; nothing in the body or other headers can change it. */
export function authenticate(pool: pg.Pool): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([^\s]+)$/.exec(header) : null;
    const raw = match?.[1];
    if (!raw || !looksLikeKey(raw)) return next(new ApiError('unauthorized', 'A valid API key is required.'));
    const caller = await callerForKey(pool, raw);
    if (!caller) return next(new ApiError('unauthorized', 'A valid API key is required.'));
    res.locals.caller = caller;
    next();
  };
}

export function requireRole(...roles: Role[]): RequestHandler {
  return (_req, res, next) => {
    const caller = callerOf(res);
    if (!roles.includes(caller.role)) {
      return next(
        new ApiError('forbidden', `This call needs one of the roles: ${roles.join(', ')}.`, {
          role: caller.role,
          allowed_roles: roles,
        }),
      );
    }
    next();
  };
}

const IDEMPOTENCY_TTL_HOURS = 24;

/**
 * Stored responses are sealed (AES-256-GCM, a key derived from the gateway's signing key): some
 * carry a raw API key, which the database may otherwise hold only as a hash.
 */
export function idempotencySealKey(signingSecret: Uint8Array): Buffer {
  return createHash('sha256').update('custody idempotency responses v1\0').update(signingSecret).digest();
}

function seal(key: Buffer, value: unknown): { sealed: string } {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return { sealed: Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64') };
}

function unseal(key: Buffer, stored: unknown): unknown {
  const sealed = (stored as { sealed?: unknown } | null)?.sealed;
  if (typeof sealed !== 'string') return stored;
  const raw = Buffer.from(sealed, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8'));
}

const PURGE_EVERY_MS = 10 * 60_000;
let lastPurge = 0;

/** Expired keys are deleted now and then (at most every ten minutes per gateway), off the request's path. */
function purgeExpired(pool: pg.Pool): void {
  const now = Date.now();
  if (now - lastPurge < PURGE_EVERY_MS) return;
  lastPurge = now;
  pool.query('DELETE FROM idempotency_keys WHERE expires_at < now()').catch(() => undefined);
}

/** Answers the client is told to retry: the key is released for that retry, not spent on them. */
const isRetryableStatus = (status: number) => status >= 500 || status === 429;

/**
 * `Idempotency-Key` on a POST. The key is reserved (per tenant, agent and key) before the request
 * runs, so of two concurrent requests with one key only one runs; the other is told to retry.
 * The first response that is not a 5xx or a 429 is stored; a retry with the same request gets it
 * back unchanged, and the same key with a different request is refused. A 5xx or 429 releases the
 * key so a retry of the same request runs again (story actions are deduplicated by the workflow as
 * well). A reservation whose request died with its process is taken over, by the same request,
 * once it is older than `staleAfterMs`.
 */
export function idempotency(pool: pg.Pool, options: { staleAfterMs: number; sealKey: Buffer }): RequestHandler {
  const { staleAfterMs, sealKey } = options;
  return async (req, res, next) => {
    if (req.method !== 'POST') return next();
    const key = req.headers['idempotency-key'];
    if (key === undefined) return next();
    if (typeof key !== 'string' || key.length === 0 || key.length > 128 || !/^[\x21-\x7e]+$/.test(key)) {
      return next(new ApiError('invalid_header', 'Idempotency-Key must be 1 to 128 visible ASCII characters.'));
    }
    const caller = callerOf(res);
    const requestHash = createHash('sha256')
      .update(`${req.method} ${req.baseUrl}${req.path}\n${canonicalJson(req.body ?? {})}`)
      .digest('hex');
    const ids = [caller.tenantId, caller.agentId, key];
    purgeExpired(pool);
    const reservation = randomUUID();
    // Taken when new, expired, or (for the same request only) released or left stale by a
    // gateway that died mid-request.
    // A key taken after it expired starts a new generation; a released or stale one keeps its own,
    // so the retry of a request that may have been applied carries the same update id.
    const reserved = await pool.query<{ generation: string }>(
      `INSERT INTO idempotency_keys (tenant_id, agent_id, key, request_hash, status, response, expires_at, reservation)
       VALUES ($1, $2, $3, $4, NULL, NULL, now() + make_interval(hours => $5), $7)
       ON CONFLICT (tenant_id, agent_id, key) DO UPDATE SET request_hash = excluded.request_hash,
         status = NULL, response = NULL, released = false, created_at = now(), expires_at = excluded.expires_at,
         reservation = excluded.reservation,
         generation = CASE WHEN idempotency_keys.expires_at <= now() THEN excluded.generation
                           ELSE idempotency_keys.generation END
       WHERE idempotency_keys.expires_at <= now()
          OR (idempotency_keys.status IS NULL AND idempotency_keys.request_hash = excluded.request_hash
              AND (idempotency_keys.released OR idempotency_keys.created_at < now() - make_interval(secs => $6)))
       RETURNING generation`,
      [...ids, requestHash, IDEMPOTENCY_TTL_HOURS, staleAfterMs / 1000, reservation],
    );
    if (reserved.rowCount === 0) {
      const { rows } = await pool.query<{ request_hash: string; status: number | null; response: unknown }>(
        `SELECT request_hash, status, response FROM idempotency_keys WHERE tenant_id = $1 AND agent_id = $2 AND key = $3`,
        ids,
      );
      const earlier = rows[0];
      if (earlier && earlier.request_hash !== requestHash) {
        return next(
          new ApiError('idempotency_key_reused', 'This Idempotency-Key was already used with a different request.'),
        );
      }
      if (!earlier || earlier.status === null) {
        return next(
          new ApiError(
            'conflict',
            'A request with this Idempotency-Key is still in progress; retry shortly.',
            { retryable: true },
            { 'Retry-After': '1' },
          ),
        );
      }
      let response: unknown;
      try {
        response = unseal(sealKey, earlier.response);
      } catch {
        // Sealed under another signing key (the key was rotated): the answer cannot be shown again.
        return next(
          new ApiError(
            'idempotency_key_reused',
            'The response to this Idempotency-Key can no longer be replayed; use a new key.',
          ),
        );
      }
      res.setHeader('Idempotent-Replayed', 'true');
      return res.status(earlier.status).json(response);
    }
    // The update id of a story action: one per key, request and generation of the key.
    res.locals.idempotencyKey = `${key}\n${requestHash}\n${reserved.rows[0].generation}`;
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      // The response is stored before it is sent, so a retry that follows it always finds it.
      const settle = isRetryableStatus(res.statusCode)
        ? pool.query(
            `UPDATE idempotency_keys SET released = true
             WHERE tenant_id = $1 AND agent_id = $2 AND key = $3 AND status IS NULL AND reservation = $4`,
            [...ids, reservation],
          )
        : pool.query(
            `UPDATE idempotency_keys SET status = $5, response = $6
             WHERE tenant_id = $1 AND agent_id = $2 AND key = $3 AND status IS NULL AND reservation = $4`,
            [...ids, reservation, res.statusCode, JSON.stringify(seal(sealKey, body))],
          );
      settle.catch(() => undefined).finally(() => json(body));
      return res;
    };
    next();
  };
}
