/**
 * The one error vocabulary of the service. Every rejection, from the custody rules or the
 * gateway, carries one of these codes; the HTTP status is looked up here and nowhere else.
 * The rules and the domain code (imports, dependencies, quotas, story commands) speak in codes
 * only: a `Rejection` from the rules, a `CustodyError` thrown; the gateway's error middleware
 * answers either with the status of its code.
 */
export const ERROR_STATUS = {
  invalid_body: 400,
  invalid_query: 400,
  invalid_header: 400,
  unauthorized: 401,
  forbidden: 403,
  quota_exceeded: 403,
  not_assigned_agent: 403,
  not_found: 404,
  invalid_transition: 409,
  dependencies_not_met: 409,
  self_report_blocked: 409,
  self_review_blocked: 409,
  self_verify_blocked: 409,
  verifier_is_reviewer: 409,
  lease_expired: 409,
  conflict: 409,
  story_in_progress: 409,
  artifact_mismatch: 409,
  duplicate_review: 409,
  aggregator_is_reviewer: 409,
  round_not_current: 409,
  round_incomplete: 409,
  duplicate_story_numbers: 409,
  project_archived: 409,
  story_closed: 409,
  story_held: 409,
  body_too_large: 413,
  story_too_large: 413,
  unsupported_media_type: 415,
  contract_mismatch: 422,
  findings_math_mismatch: 422,
  review_required: 422,
  reason_required: 422,
  idempotency_key_reused: 422,
  dependency_cycle: 422,
  unknown_round: 422,
  duplicate_story_number: 422,
  story_number_mismatch: 422,
  duplicate_criterion_id: 422,
  unknown_dependency: 422,
  cross_project_dependency: 422,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
  timeout: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function statusOf(code: ErrorCode): number {
  return ERROR_STATUS[code];
}

/** A refusal in the service's vocabulary, thrown by domain code: a code, never an HTTP status. */
export class CustodyError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly context: Record<string, unknown> = {},
    /** When trying again makes sense, and how soon (the gateway sends it as Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'CustodyError';
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_STATUS, value);
}

/** The codes that mean somebody tried to get around a custody gate (they fire `custody.violation`). */
export const CUSTODY_VIOLATIONS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'self_report_blocked',
  'self_review_blocked',
  'self_verify_blocked',
  'verifier_is_reviewer',
  'duplicate_review',
  'aggregator_is_reviewer',
]);
