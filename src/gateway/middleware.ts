/** Authentication, roles and Idempotency-Key handling. */
import { createHash, randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type pg from 'pg';
import type { Role } from '../custody/actions.js';
import { canonicalJson } from '../custody/identity.js';
import { callerForKey, type Caller } from '../db/identity-repo.js';
import { deleteExpiredKeys, releaseKey, reserveKey, storeResponse, storedKey } from '../db/idempotency-repo.js';
import { looksLikeKey } from '../db/keys.js';
import { seal, unseal } from './idempotency-seal.js';
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

const PURGE_EVERY_MS = 10 * 60_000;
let lastPurge = 0;

/** Expired keys are deleted now and then (at most every ten minutes per gateway), off the request's path. */
function purgeExpired(pool: pg.Pool): void {
  const now = Date.now();
  if (now - lastPurge < PURGE_EVERY_MS) return;
  lastPurge = now;
  deleteExpiredKeys(pool).catch(() => undefined);
}

/**
 * The query string as part of what a request is (`?merge=true` is another import), its parameters
 * sorted so their order does not matter. Empty without a query, so that keys stored before the
 * query counted still match the requests they were stored for.
 */
function sortedQuery(originalUrl: string): string {
  const at = originalUrl.indexOf('?');
  if (at < 0) return '';
  const params = originalUrl
    .slice(at + 1)
    .split('&')
    .filter((p) => p.length > 0)
    .sort();
  return params.length === 0 ? '' : `?${params.join('&')}`;
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
      .update(
        `${req.method} ${req.baseUrl}${req.path}${sortedQuery(req.originalUrl)}\n${canonicalJson(req.body ?? {})}`,
      )
      .digest('hex');
    const ids: [string, string, string] = [caller.tenantId, caller.agentId, key];
    purgeExpired(pool);
    const reservation = randomUUID();
    const reserved = await reserveKey(pool, ids, { requestHash, staleAfterMs, id: reservation });
    if (reserved === null) {
      const earlier = await storedKey(pool, ids);
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
    res.locals.idempotencyKey = `${key}\n${requestHash}\n${reserved.generation}`;
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      // The response is stored before it is sent, so a retry that follows it always finds it.
      const settle = isRetryableStatus(res.statusCode)
        ? releaseKey(pool, ids, reservation)
        : storeResponse(pool, ids, reservation, res.statusCode, seal(sealKey, body));
      settle.catch(() => undefined).finally(() => json(body));
      return res;
    };
    next();
  };
}
