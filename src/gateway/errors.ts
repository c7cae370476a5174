/**
 * The gateway's one error path: everything that goes wrong becomes an ApiError, and one
 * middleware writes it as `{error:{status,code,message,context}}`. Nothing else writes errors.
 * Domain code throws CustodyErrors and Temporal's errors pass through untouched: the middleware
 * translates both here, and the status always comes from the code (src/custody/errors.ts).
 */
import type { ErrorRequestHandler, Response } from 'express';
import { z } from 'zod';
import { CustodyError, statusOf, type ErrorCode } from '../custody/errors.js';
import { custodyErrorOf } from './temporal-errors.js';

/** A CustodyError as the gateway answers it: the code's status, and any headers of its own. */
export class ApiError extends CustodyError {
  readonly status: number;
  constructor(
    code: ErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message, context);
    this.name = 'ApiError';
    this.status = statusOf(code);
  }
}

/** The answer to a domain or Temporal error; null for anything else (the middleware goes on). */
export function apiErrorOf(err: unknown): ApiError | null {
  if (err instanceof ApiError) return err;
  const custody = custodyErrorOf(err);
  if (!custody) return null;
  const retry = custody.retryAfterSeconds;
  return new ApiError(
    custody.code,
    custody.message,
    custody.context,
    retry === undefined ? {} : { 'Retry-After': String(retry) },
  );
}

export const notFound = (what = 'Resource'): ApiError => new ApiError('not_found', `${what} not found.`);

export function invalidBody(error: z.ZodError, code: 'invalid_body' | 'invalid_query' = 'invalid_body'): ApiError {
  return new ApiError(code, code === 'invalid_body' ? 'The request body is not valid.' : 'The query is not valid.', {
    issues: error.issues.slice(0, 20).map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
  });
}

/** Parses with a zod schema or throws the matching 400. */
export function parseOr400<T extends z.ZodType>(
  schema: T,
  value: unknown,
  code: 'invalid_body' | 'invalid_query' = 'invalid_body',
): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalidBody(result.error, code);
  return result.data;
}

export function sendError(res: Response, error: ApiError): void {
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.status(error.status).json({
    error: { status: error.status, code: error.code, message: error.message, context: error.context },
  });
}

/** Errors raised by express's own body parser, by their `type`. */
function fromBodyParser(err: { type?: unknown; status?: unknown }): ApiError | null {
  switch (err.type) {
    case 'entity.too.large':
      return new ApiError('body_too_large', 'The request body is larger than 256 KiB.');
    case 'entity.parse.failed':
      return new ApiError('invalid_body', 'The request body is not valid JSON.');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError('unsupported_media_type', 'The request body must be UTF-8 JSON.');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new ApiError('invalid_body', 'The request body could not be read.');
    default:
      return typeof err.status === 'number' && err.status >= 400 && err.status < 500
        ? new ApiError('invalid_body', 'The request could not be read.')
        : null;
  }
}

/**
 * The router could not percent-decode a path parameter (`/stories/%ZZ`): like any other id that
 * names nothing (a malformed UUID), it is a resource that does not exist, not a bad body.
 */
function fromPathDecoding(err: unknown): ApiError | null {
  return err instanceof URIError && (err as { status?: unknown }).status === 400 ? notFound('Resource') : null;
}

/** The database is down or unreachable (not a bug, not bad input): the client should retry. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  const code = typeof e.code === 'string' ? e.code : '';
  // Network errors, and PostgreSQL classes 08 (connection) and 57P (shutting down / cannot connect now).
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH'].includes(code) || /^08|^57P0/.test(code))
    return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    message,
  );
}

/**
 * PostgreSQL class 22 (data exception: a value out of range, untranslatable text): caused by what
 * the request carried, so a 400, not a 500. Validation should have caught it first; the log
 * shows which did not.
 */
function isDataException(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code);
}

export function errorMiddleware(log: (err: unknown) => void): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const apiError =
      apiErrorOf(err) ?? fromPathDecoding(err) ?? fromBodyParser(err ?? {}) ?? fromDatabase(err, req.method, log);
    if (res.headersSent) return;
    sendError(res, apiError);
  };
}

/** The database down (retry), a value it cannot use (the request's fault), or a bug (logged, 500). */
function fromDatabase(err: unknown, method: string, log: (err: unknown) => void): ApiError {
  if (isDatabaseUnavailable(err)) {
    return new ApiError('unavailable', 'The database is unavailable; retry shortly.', {}, { 'Retry-After': '2' });
  }
  log(err);
  if (isDataException(err)) {
    return new ApiError(
      method === 'GET' ? 'invalid_query' : 'invalid_body',
      'The request holds a value the database cannot use.',
    );
  }
  return new ApiError('internal_error', 'Something went wrong on our side.');
}
