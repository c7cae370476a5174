/**
 * What the Temporal client throws, in the service's error vocabulary. Called by the one error
 * middleware (src/gateway/errors.ts), not where the error is caught: story commands let Temporal's
 * errors through, and the middleware answers them.
 */
import {
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { CustodyError, isErrorCode } from '../custody/errors.js';
import { AGENT_STATUSES, VERIFIED_STATUSES } from '../custody/actions.js';
import type { Rejection } from '../custody/rules.js';
import type { JudgedStory, RefusalDetails } from '../../workflows/messages.js';

const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_NOT_FOUND = 5;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_UNAVAILABLE = 14;

function grpcCode(err: unknown): number | undefined {
  let current: unknown = err;
  for (let depth = 0; current && depth < 5; depth++) {
    if (isGrpcServiceError(current)) return current.code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** No such workflow, or (for an update) one that is no longer running. */
export function isNotFound(err: unknown): boolean {
  return err instanceof WorkflowNotFoundError || grpcCode(err) === GRPC_NOT_FOUND;
}

export function isResourceExhausted(err: unknown): boolean {
  return grpcCode(err) === GRPC_RESOURCE_EXHAUSTED;
}

/** A custody rejection, with the story as the workflow judged it when the failure says so. */
export interface JudgedRejection extends Rejection {
  judged?: JudgedStory;
}

/** The custody rejection inside a failed update, if that is what it is. */
export function rejectionOf(err: unknown): JudgedRejection | null {
  if (!(err instanceof WorkflowUpdateFailedError) || !(err.cause instanceof ApplicationFailure)) return null;
  const failure = err.cause;
  if (!isErrorCode(failure.type)) return null;
  const detail = (failure.details?.[0] ?? {}) as Partial<RefusalDetails>;
  const rejection: JudgedRejection = {
    code: failure.type,
    message: failure.message,
    context: typeof detail.context === 'object' && detail.context !== null ? detail.context : {},
  };
  if (isJudgedStory(detail.judged)) rejection.judged = detail.judged;
  return rejection;
}

function isJudgedStory(value: unknown): value is JudgedStory {
  const v = value as Partial<JudgedStory> | null | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    (AGENT_STATUSES as readonly unknown[]).includes(v.agent_status) &&
    (VERIFIED_STATUSES as readonly unknown[]).includes(v.verified_status) &&
    Number.isInteger(v.iteration) &&
    (v.seq === undefined || (Number.isSafeInteger(v.seq) && v.seq >= 0))
  );
}

/** A story's id that is taken by a closed run: only an admin's resume starts it again. */
export function storyClosed(): CustodyError {
  return new CustodyError(
    'story_closed',
    "The story's workflow was closed; an admin can resume it (POST /stories/:id/resume).",
  );
}

const TIMEOUT_MESSAGE = 'The story did not answer in time; retry with the same Idempotency-Key.';

/** The Temporal error's meaning in the service's vocabulary, or null when it is none of Temporal's. */
export function temporalError(err: unknown): CustodyError | null {
  const rejection = rejectionOf(err);
  if (rejection) return new CustodyError(rejection.code, rejection.message, rejection.context);
  if (err instanceof WorkflowNotFoundError) return new CustodyError('not_found', 'Story not found.');
  // Stories are started with REJECT_DUPLICATE and USE_EXISTING: only a closed run's id is refused.
  if (err instanceof WorkflowExecutionAlreadyStartedError) return storyClosed();
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return new CustodyError('timeout', TIMEOUT_MESSAGE);
  const code = grpcCode(err);
  if (code === GRPC_DEADLINE_EXCEEDED) return new CustodyError('timeout', TIMEOUT_MESSAGE);
  if (code === GRPC_RESOURCE_EXHAUSTED)
    return new CustodyError('rate_limited', 'The story is busy; retry shortly.', {}, 1);
  if (code === GRPC_NOT_FOUND) return new CustodyError('not_found', 'Story not found.');
  if (code === GRPC_UNAVAILABLE || err instanceof ServiceError) {
    return new CustodyError('unavailable', 'The workflow service is unavailable; retry shortly.', {}, 2);
  }
  return null;
}

/**
 * What an error means in the service's vocabulary: a domain error as it is, a Temporal error
 * translated; null for anything else (a bug, the database). The error middleware answers with it;
 * a batch that goes on past one story's refusal (verify-all, a merge) reads it the same way.
 */
export function custodyErrorOf(err: unknown): CustodyError | null {
  return err instanceof CustodyError ? err : temporalError(err);
}
