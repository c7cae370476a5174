/** One error vocabulary: every code has one status, and Temporal's failures map onto it. */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { CUSTODY_VIOLATIONS, CustodyError, ERROR_STATUS, isErrorCode, statusOf } from '../../src/custody/errors.js';
import { ApiError, errorMiddleware } from '../../src/gateway/errors.js';
import { custodyErrorOf, rejectionOf, storyClosed, temporalError } from '../../src/gateway/temporal-errors.js';

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

/** What the one error middleware answers for `err`: status, headers and body, as a client sees them. */
function answer(err: unknown, method = 'POST') {
  const logged: unknown[] = [];
  const sent = { status: 0, headers: {} as Record<string, string>, body: undefined as unknown };
  const res = {
    headersSent: false,
    setHeader: (name: string, value: string) => void (sent.headers[name] = value),
    status: (code: number) => ((sent.status = code), res),
    json: (body: unknown) => void (sent.body = JSON.parse(JSON.stringify(body))),
  };
  errorMiddleware((e) => logged.push(e))(err, { method } as never, res as never, () => undefined);
  return { ...sent, logged };
}

describe('Temporal errors, answered by the error middleware', () => {
  it("a custody rejection keeps its code, message and context; its status is the table's", () => {
    const sent = answer(rejected('self_review_blocked', { implementer: 'a-1' }));
    expect(sent.status).toBe(409);
    expect(sent.body).toEqual({
      error: {
        status: 409,
        code: 'self_review_blocked',
        message: 'refused: self_review_blocked',
        context: { implementer: 'a-1' },
      },
    });
    expect(sent.logged).toEqual([]);
  });

  it("reads no status from the failure: a rejection that carried one still answers with the table's", () => {
    const failure = ApplicationFailure.create({
      type: 'review_required',
      message: 'no review',
      nonRetryable: true,
      details: [{ code: 'review_required', status: 500, message: 'no review', context: {} }],
    });
    expect(answer(new WorkflowUpdateFailedError('update failed', failure)).status).toBe(422);
    expect(rejectionOf(new WorkflowUpdateFailedError('update failed', failure))).toEqual({
      code: 'review_required',
      message: 'no review',
      context: {},
    });
  });

  it('a rejection brings the story as the workflow judged it, when the failure carries it whole', () => {
    const refused = (judged: unknown) =>
      new WorkflowUpdateFailedError(
        'update failed',
        ApplicationFailure.create({
          type: 'invalid_transition',
          message: 'no',
          nonRetryable: true,
          details: [{ code: 'invalid_transition', message: 'no', context: {}, judged }],
        }),
      );
    const judged = { agent_status: 'assigned', verified_status: 'unverified', iteration: 2 };
    expect(rejectionOf(refused(judged))?.judged).toEqual(judged);
    expect(rejectionOf(refused({ ...judged, agent_status: 'nowhere' }))).not.toHaveProperty('judged');
    expect(rejectionOf(refused({ ...judged, iteration: '2' }))).not.toHaveProperty('judged');
    expect(rejectionOf(refused(undefined))).toEqual({ code: 'invalid_transition', message: 'no', context: {} });
  });

  it('an application failure of a type outside the vocabulary is not a rejection (a logged 500)', () => {
    expect(rejectionOf(rejected('SomethingElse'))).toBeNull();
    expect(temporalError(rejected('SomethingElse'))).toBeNull();
    expect(rejectionOf(new Error('plain'))).toBeNull();
    const sent = answer(rejected('SomethingElse'));
    expect([sent.status, sent.logged.length]).toEqual([500, 1]);
  });

  it('a missing workflow is 404, a lost update 504, an overloaded server 429, an unreachable one 503', () => {
    const code = (err: unknown) => {
      const sent = answer(err);
      return [sent.status, (sent.body as { error: { code: string } }).error.code, sent.headers['Retry-After']];
    };
    expect(code(new WorkflowNotFoundError('gone', 'wf', undefined))).toEqual([404, 'not_found', undefined]);
    const lost = new WorkflowUpdateRPCTimeoutOrCancelledError('timeout', { cause: new Error('deadline') });
    expect(code(lost)).toEqual([504, 'timeout', undefined]);
    expect(code(grpcError(4))).toEqual([504, 'timeout', undefined]);
    expect(code(grpcError(5))).toEqual([404, 'not_found', undefined]);
    expect(code(grpcError(8))).toEqual([429, 'rate_limited', '1']);
    expect(code(grpcError(14))).toEqual([503, 'unavailable', '2']);
  });

  it('a story id taken by a closed run is 409 story_closed', () => {
    const taken = new WorkflowExecutionAlreadyStartedError('started', 'story/t/p/1.1', 'storyWorkflow');
    const sent = answer(taken);
    expect(sent.status).toBe(409);
    expect(sent.body).toEqual({
      error: { status: 409, code: 'story_closed', message: storyClosed().message, context: {} },
    });
  });

  it('finds the gRPC code through a chain of causes', () => {
    const wrapped = new Error('outer', { cause: new Error('middle', { cause: grpcError(14) }) });
    expect(temporalError(wrapped)?.code).toBe('unavailable');
  });

  it('leaves anything else to the rest of the middleware (a 500 without details)', () => {
    expect(temporalError(new TypeError('bug'))).toBeNull();
    expect(temporalError(grpcError(3))).toBeNull();
    const sent = answer(new TypeError('bug'));
    expect(sent.body).toEqual({
      error: { status: 500, code: 'internal_error', message: 'Something went wrong on our side.', context: {} },
    });
    expect(sent.logged).toHaveLength(1);
  });
});

describe('domain errors', () => {
  it("carry a code and no status; the middleware answers with the code's status and Retry-After", () => {
    const busy = new CustodyError('unavailable', 'not running yet', { story: 's' }, 2);
    expect(busy).not.toHaveProperty('status');
    const sent = answer(busy);
    expect(sent.status).toBe(503);
    expect(sent.headers).toEqual({ 'Retry-After': '2' });
    expect(sent.body).toEqual({
      error: { status: 503, code: 'unavailable', message: 'not running yet', context: { story: 's' } },
    });
    expect(answer(new CustodyError('dependency_cycle', 'a cycle', { cycle: ['1', '1'] })).status).toBe(422);
    expect(answer(new CustodyError('dependency_cycle', 'a cycle')).headers).toEqual({});
  });

  it("are what custodyErrorOf reads, as Temporal's errors are", () => {
    const domain = new CustodyError('story_in_progress', 'busy');
    expect(custodyErrorOf(domain)).toBe(domain);
    expect(custodyErrorOf(rejected('story_in_progress'))?.code).toBe('story_in_progress');
    expect(custodyErrorOf(new Error('plain'))).toBeNull();
  });
});
