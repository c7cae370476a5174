/** Maps what the Temporal client throws to the service's error vocabulary. */
import {
  ServiceError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import { isErrorCode } from '../custody/errors.js';
import type { Rejection } from '../custody/rules.js';
import { ApiError } from './errors.js';

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

/** The custody rejection inside a failed update, if that is what it is. */
export function rejectionOf(err: unknown): Rejection | null {
  if (!(err instanceof WorkflowUpdateFailedError) || !(err.cause instanceof ApplicationFailure)) return null;
  const failure = err.cause;
  if (!isErrorCode(failure.type)) return null;
  const detail = (failure.details?.[0] ?? {}) as Partial<Rejection>;
  return {
    code: failure.type,
    status: typeof detail.status === 'number' ? detail.status : 0,
    message: failure.message,
    context: typeof detail.context === 'object' && detail.context !== null ? detail.context : {},
  };
}

export function temporalToApiError(err: unknown): ApiError | null {
  const rejection = rejectionOf(err);
  if (rejection) return new ApiError(rejection.code, rejection.message, rejection.context);
  if (err instanceof WorkflowNotFoundError) return new ApiError('not_found', 'Story not found.');
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
    return new ApiError('timeout', 'The story did not answer in time; retry with the same Idempotency-Key.');
  }
  const code = grpcCode(err);
  if (code === GRPC_DEADLINE_EXCEEDED) {
    return new ApiError('timeout', 'The story did not answer in time; retry with the same Idempotency-Key.');
  }
  if (code === GRPC_RESOURCE_EXHAUSTED) {
    return new ApiError('rate_limited', 'The story is busy; retry shortly.', {}, { 'Retry-After': '1' });
  }
  if (code === GRPC_NOT_FOUND) return new ApiError('not_found', 'Story not found.');
  if (code === GRPC_UNAVAILABLE || err instanceof ServiceError) {
    return new ApiError(
      'unavailable',
      'The workflow service is unavailable; retry shortly.',
      {},
      { 'Retry-After': '2' },
    );
  }
  return null;
}
