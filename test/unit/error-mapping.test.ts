/** One error vocabulary: every code has one status, and Temporal's failures map onto it. */
import { WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { CUSTODY_VIOLATIONS, ERROR_STATUS, isErrorCode, statusOf } from '../../src/custody/errors.js';
import { ApiError } from '../../src/gateway/errors.js';
import { rejectionOf, temporalToApiError } from '../../src/gateway/temporal-errors.js';

const rejected = (type: string, context: Record<string, unknown> = {}) =>
  new WorkflowUpdateFailedError(
    'update failed',
    ApplicationFailure.create({ type, message: `refused: ${type}`, nonRetryable: true, details: [{ context }] }),
  );

const grpcError = (code: number) => Object.assign(new Error('rpc'), { code, details: '', metadata: {} });

describe('the error table', () => {
  it('gives every code a 4xx or 5xx status, looked up in one place', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(isErrorCode(code)).toBe(true);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
      expect(new ApiError(code as keyof typeof ERROR_STATUS, 'x').status).toBe(status);
    }
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('nope')).toBe(false);
  });

  it('marks the custody gates as violations, and only 409s', () => {
    for (const code of CUSTODY_VIOLATIONS) expect(statusOf(code)).toBe(409);
  });
});

describe('Temporal errors', () => {
  it('a custody rejection keeps its code, message and context', () => {
    const err = temporalToApiError(rejected('self_review_blocked', { implementer: 'a-1' }));
    expect(err).toMatchObject({ code: 'self_review_blocked', status: 409, context: { implementer: 'a-1' } });
    expect(err?.message).toBe('refused: self_review_blocked');
  });

  it('an application failure of a type outside the vocabulary is not a rejection', () => {
    expect(rejectionOf(rejected('SomethingElse'))).toBeNull();
    expect(temporalToApiError(rejected('SomethingElse'))).toBeNull();
    expect(rejectionOf(new Error('plain'))).toBeNull();
  });

  it('a missing workflow is 404, a lost update is 504, an overloaded server 429, an unreachable one 503', () => {
    expect(temporalToApiError(new WorkflowNotFoundError('gone', 'wf', undefined))?.code).toBe('not_found');
    const lost = new WorkflowUpdateRPCTimeoutOrCancelledError('timeout', { cause: new Error('deadline') });
    expect(temporalToApiError(lost)?.code).toBe('timeout');
    expect(temporalToApiError(grpcError(4))?.code).toBe('timeout');
    expect(temporalToApiError(grpcError(5))?.code).toBe('not_found');
    const busy = temporalToApiError(grpcError(8));
    expect(busy?.code).toBe('rate_limited');
    expect(busy?.headers['Retry-After']).toBe('1');
    expect(temporalToApiError(grpcError(14))?.code).toBe('unavailable');
  });

  it('finds the gRPC code through a chain of causes', () => {
    const wrapped = new Error('outer', { cause: new Error('middle', { cause: grpcError(14) }) });
    expect(temporalToApiError(wrapped)?.code).toBe('unavailable');
  });

  it('leaves anything else to the error middleware (a 500 without details)', () => {
    expect(temporalToApiError(new TypeError('bug'))).toBeNull();
    expect(temporalToApiError(grpcError(3))).toBeNull();
  });
});
