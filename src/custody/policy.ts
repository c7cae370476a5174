/**
 * Review policies and artifact identity: pure data and arithmetic, no zod, no I/O (imported by the
 * workflow bundle through ./rules.ts).
 *
 * A policy is a list of rounds, reviewed in order within one iteration of a story. A round is
 * complete when at least `min_reviewers` distinct reviewers reviewed it, at least one of them holds
 * each of its `required_labels`, and, when `aggregator_required`, an aggregator who reviewed none of
 * it signed its summary. A story is verified only once every round of its iteration is complete.
 * Without a policy a story has the default one: one round, one reviewer, which is the single
 * review custody always had.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

export interface RoundSpec {
  name: string;
  min_reviewers: number;
  required_labels: string[];
  aggregator_required: boolean;
  /** How long the round may wait for its reviews before the story is stalled (absent: the project's stall_after). */
  deadline_seconds?: number;
}

export interface ReviewPolicy {
  rounds: RoundSpec[];
}

/** The policy an iteration runs under: the project's version when the iteration was contracted. */
export interface PinnedPolicy extends ReviewPolicy {
  /** The project's policy version; 0 is the default policy. */
  version: number;
}

export const DEFAULT_POLICY: PinnedPolicy = {
  version: 0,
  rounds: [{ name: 'review', min_reviewers: 1, required_labels: [], aggregator_required: false }],
};

export const POLICY_LIMITS = {
  rounds: 10,
  minReviewers: 20,
  labels: 10,
  nameLength: 64,
  deadlineSeconds: 365 * 86_400,
} as const;

/** Labels and round names: lowercase words joined by dashes or underscores (`security-adversary`). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** One reviewer's review within a round, as the iteration's progress keeps it. */
export interface ReviewEntry {
  round: string;
  reviewer_agent_id: string;
  /** The reviewer's labels when it reviewed (signed by the gateway with its identity). */
  reviewer_labels: string[];
  review_type: string;
  findings_count: number;
  fixes_count: number;
  disproved_count: number;
  summary: string;
  /** The identity of the artifact reviewed (see `artifactKey`). */
  artifact_key: string | null;
  /** A later report in the same iteration made this review of an artifact nobody verifies any more. */
  voided?: boolean;
}

/** An aggregator's sign-off of a round's summary. */
export interface AggregationEntry {
  round: string;
  aggregator_agent_id: string;
  findings_count: number;
  fixes_count: number;
  disproved_count: number;
  summary: string;
  artifact_key: string | null;
  voided?: boolean;
}

/** What the current iteration's reviews have achieved so far (entries in the order they were accepted). */
export interface ReviewProgress {
  reviews: ReviewEntry[];
  aggregations: AggregationEntry[];
}

export const EMPTY_PROGRESS: ReviewProgress = { reviews: [], aggregations: [] };

export interface RoundStatus {
  name: string;
  index: number;
  reviewers: string[];
  missing_reviewers: number;
  missing_labels: string[];
  aggregator_required: boolean;
  aggregated_by: string | null;
  /** Enough reviewers with the labels, and signed when it must be. */
  complete: boolean;
  findings_count: number;
  fixes_count: number;
  disproved_count: number;
}

const live = <T extends { voided?: boolean }>(entries: readonly T[]) => entries.filter((e) => e.voided !== true);

/** Where each round stands; `progress` holds the current iteration only. */
export function roundStatuses(policy: ReviewPolicy, progress: ReviewProgress): RoundStatus[] {
  return policy.rounds.map((round, index) => {
    const reviews = live(progress.reviews).filter((r) => r.round === round.name);
    const reviewers = [...new Set(reviews.map((r) => r.reviewer_agent_id))];
    const held = new Set(reviews.flatMap((r) => r.reviewer_labels));
    const missingLabels = round.required_labels.filter((label) => !held.has(label));
    const aggregation = live(progress.aggregations).find((a) => a.round === round.name) ?? null;
    const missingReviewers = Math.max(0, round.min_reviewers - reviewers.length);
    const reviewed = missingReviewers === 0 && missingLabels.length === 0;
    return {
      name: round.name,
      index,
      reviewers,
      missing_reviewers: missingReviewers,
      missing_labels: missingLabels,
      aggregator_required: round.aggregator_required,
      aggregated_by: aggregation?.aggregator_agent_id ?? null,
      complete: reviewed && (!round.aggregator_required || aggregation !== null),
      findings_count: sum(reviews.map((r) => r.findings_count)),
      fixes_count: sum(reviews.map((r) => r.fixes_count)),
      disproved_count: sum(reviews.map((r) => r.disproved_count)),
    };
  });
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Whether the round has the reviewers and labels it needs (aggregation aside). */
export function isReviewed(status: RoundStatus): boolean {
  return status.missing_reviewers === 0 && status.missing_labels.length === 0;
}

/**
 * The round now open: the first one not complete (rounds go in order), or null when every round is.
 * A round without an aggregator closes once reviewed; one with an aggregator takes further reviews
 * until it is signed.
 */
export function currentRound(policy: ReviewPolicy, progress: ReviewProgress): RoundStatus | null {
  return roundStatuses(policy, progress).find((s) => !s.complete) ?? null;
}

/** Counts that add up: fixes + disproved = findings, none negative (per reviewer, and per round). */
export function findingsAddUp(counts: { findings_count: number; fixes_count: number; disproved_count: number }) {
  const { findings_count: f, fixes_count: x, disproved_count: d } = counts;
  return f >= 0 && x >= 0 && d >= 0 && x + d === f;
}

/**
 * The aggregator accounts for every finding of its round: its classification adds up, and the
 * findings it classifies are the round's findings (the sum of its reviewers' findings).
 */
export function aggregationMathProblem(
  status: RoundStatus,
  counts: { findings_count: number; fixes_count: number; disproved_count: number },
): string | null {
  if (!findingsAddUp(counts)) return 'fixes_count + disproved_count must equal findings_count, none negative';
  if (counts.findings_count !== status.findings_count)
    return `the round's reviewers found ${status.findings_count}; the aggregation classifies ${counts.findings_count}`;
  return null;
}

export type ReviewRefusal =
  | { code: 'self_review_blocked' }
  | { code: 'duplicate_review'; round: string }
  | { code: 'aggregator_is_reviewer'; round: string }
  | { code: 'unknown_round'; round: string }
  | { code: 'round_not_current'; round: string; current: string | null }
  | { code: 'round_incomplete'; round: string; missing_reviewers: number; missing_labels: string[] }
  | { code: 'aggregation_not_required'; round: string | null };

/**
 * Who may review now, and in which round: never an implementer, once per reviewer per round, and
 * only the round now open (named, or taken as the current one when not named).
 */
export function reviewStanding(
  policy: ReviewPolicy,
  progress: ReviewProgress,
  who: { agentId: string; isImplementer: boolean },
  namedRound: string | undefined,
): ReviewRefusal | { round: RoundStatus } {
  if (who.isImplementer) return { code: 'self_review_blocked' };
  const current = currentRound(policy, progress);
  if (namedRound !== undefined) {
    if (!policy.rounds.some((r) => r.name === namedRound)) return { code: 'unknown_round', round: namedRound };
    if (current === null || current.name !== namedRound)
      return { code: 'round_not_current', round: namedRound, current: current?.name ?? null };
  }
  if (current === null) return { code: 'round_not_current', round: namedRound ?? '', current: null };
  if (current.reviewers.includes(who.agentId)) return { code: 'duplicate_review', round: current.name };
  return { round: current };
}

/**
 * Who may sign the open round's summary: a round that needs an aggregator, has its reviewers, and
 * is signed by somebody who neither implemented the story nor reviewed the round.
 */
export function aggregationStanding(
  policy: ReviewPolicy,
  progress: ReviewProgress,
  who: { agentId: string; isImplementer: boolean },
  namedRound: string | undefined,
): ReviewRefusal | { round: RoundStatus } {
  const current = currentRound(policy, progress);
  if (namedRound !== undefined) {
    if (!policy.rounds.some((r) => r.name === namedRound)) return { code: 'unknown_round', round: namedRound };
    if (current === null || current.name !== namedRound)
      return { code: 'round_not_current', round: namedRound, current: current?.name ?? null };
  }
  if (current === null || !current.aggregator_required)
    return { code: 'aggregation_not_required', round: current?.name ?? null };
  if (who.isImplementer) return { code: 'self_review_blocked' };
  if (current.reviewers.includes(who.agentId)) return { code: 'aggregator_is_reviewer', round: current.name };
  if (!isReviewed(current))
    return {
      code: 'round_incomplete',
      round: current.name,
      missing_reviewers: current.missing_reviewers,
      missing_labels: current.missing_labels,
    };
  return { round: current };
}

/**
 * Everyone who reviewed or signed a round of this iteration (none of them may verify it). With
 * `voided`, also those whose review or sign-off a new report voided: they read the work of this
 * iteration all the same.
 */
export function iterationReviewers(progress: ReviewProgress, { voided }: { voided: boolean }): string[] {
  const counted = <T extends { voided?: boolean }>(entries: readonly T[]) => (voided ? entries : live(entries));
  return [
    ...new Set([
      ...counted(progress.reviews).map((r) => r.reviewer_agent_id),
      ...counted(progress.aggregations).map((a) => a.aggregator_agent_id),
    ]),
  ];
}

/**
 * A new report in the same iteration (a new artifact): the reviews of the round in progress were
 * of the old artifact and no longer count. When every round was complete, the last round is opened
 * again: its sign-off (or, without an aggregator, its reviews) must be of what is now reported.
 */
export function voidForNewArtifact(policy: ReviewPolicy, progress: ReviewProgress): ReviewProgress {
  const statuses = roundStatuses(policy, progress);
  const open = statuses.find((s) => !s.complete) ?? null;
  const last = statuses[statuses.length - 1];
  const voidReviewsOf = new Set<string>();
  const voidAggregationOf = new Set<string>();
  if (open !== null) voidReviewsOf.add(open.name);
  else if (last.aggregator_required) voidAggregationOf.add(last.name);
  else voidReviewsOf.add(last.name);
  return {
    reviews: progress.reviews.map((r) => (voidReviewsOf.has(r.round) && !r.voided ? { ...r, voided: true } : r)),
    aggregations: progress.aggregations.map((a) =>
      voidAggregationOf.has(a.round) && !a.voided ? { ...a, voided: true } : a,
    ),
  };
}

/**
 * An artifact's identity: what two mentions of it must share to be the same artifact. A commit is
 * its SHA (any case); a set of files is the digest of its (path, digest) pairs, or the digest it
 * names; a URL, when given beside either, is where to find it and not what it is. Anything else
 * (loopctl's `{artifact_type: "pr", path}`, a branch name) is itself: short text as it is, the
 * rest by the digest of its canonical JSON (key order aside).
 */
export function artifactKey(artifact: unknown): string | null {
  if (artifact === undefined || artifact === null) return null;
  if (typeof artifact === 'string') {
    const text = artifact.trim();
    if (/^[0-9a-f]{7,64}$/i.test(text)) return `commit:${text.toLowerCase()}`;
    if (/^sha256:[0-9a-f]{64}$/i.test(text)) return `files:${text.toLowerCase()}`;
    return artifact.length <= 200 ? `text:${artifact}` : `text:sha256:${sha256Hex(artifact)}`;
  }
  if (typeof artifact === 'object' && !Array.isArray(artifact)) {
    const a = artifact as Record<string, unknown>;
    const type = typeof a.artifact_type === 'string' ? a.artifact_type.toLowerCase() : undefined;
    const sha = [
      a.sha,
      a.commit,
      type === 'commit' ? a.path : undefined,
      type === 'commit' ? a.artifact_path : undefined,
    ]
      .filter((v): v is string => typeof v === 'string')
      .map((v) => v.trim())
      .find((v) => /^[0-9a-f]{7,64}$/i.test(v));
    if (sha !== undefined && (type === undefined || type === 'commit')) return `commit:${sha.toLowerCase()}`;
    const digest = typeof a.digest === 'string' ? a.digest.trim().toLowerCase() : undefined;
    if (digest !== undefined && /^sha256:[0-9a-f]{64}$/.test(digest)) return `files:${digest}`;
    if (Array.isArray(a.files) && a.files.length > 0 && a.files.every(isFileEntry)) {
      return `files:sha256:${fileSetDigest(a.files)}`;
    }
  }
  // Its digest, so that an identity stays short whatever the artifact holds.
  return `json:sha256:${sha256Hex(canonical(artifact))}`;
}

interface FileEntry {
  path: string;
  sha256: string;
}

function isFileEntry(value: unknown): value is FileEntry {
  if (typeof value !== 'object' || value === null) return false;
  const f = value as Record<string, unknown>;
  return typeof f.path === 'string' && typeof f.sha256 === 'string' && /^[0-9a-f]{64}$/i.test(f.sha256);
}

/**
 * The digest of a set of files: SHA-256 over `path\0sha256\n` lines sorted by path (the order they
 * were listed in does not matter, a file listed twice counts once).
 */
export function fileSetDigest(files: readonly FileEntry[]): string {
  const lines = [...new Set(files.map((f) => `${f.path}\u0000${f.sha256.toLowerCase()}\n`))].sort();
  return sha256Hex(lines.join(''));
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Problems of a policy's shape and sense (an empty list when it is good); `path` as zod would say it. */
export function policyIssues(value: unknown): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return [{ path: '', message: 'expected an object' }];
  const rounds = (value as { rounds?: unknown }).rounds;
  if (!Array.isArray(rounds) || rounds.length === 0 || rounds.length > POLICY_LIMITS.rounds)
    return [{ path: 'rounds', message: `a list of 1 to ${POLICY_LIMITS.rounds} rounds` }];
  const names = new Set<string>();
  rounds.forEach((round: unknown, i) => {
    const at = (field: string) => `rounds.${i}${field ? '.' + field : ''}`;
    if (typeof round !== 'object' || round === null || Array.isArray(round)) {
      issues.push({ path: at(''), message: 'expected an object' });
      return;
    }
    const r = round as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!['name', 'min_reviewers', 'required_labels', 'aggregator_required', 'deadline_seconds'].includes(key))
        issues.push({ path: at(key), message: 'unknown field' });
    }
    if (typeof r.name !== 'string' || !NAME_PATTERN.test(r.name))
      issues.push({ path: at('name'), message: 'lowercase letters, digits, - and _ (1 to 64)' });
    else if (names.has(r.name)) issues.push({ path: at('name'), message: 'round names are unique' });
    else names.add(r.name);
    const min = r.min_reviewers;
    if (typeof min !== 'number' || !Number.isInteger(min) || min < 1 || min > POLICY_LIMITS.minReviewers)
      issues.push({ path: at('min_reviewers'), message: `an integer from 1 to ${POLICY_LIMITS.minReviewers}` });
    const labels = r.required_labels;
    if (
      !Array.isArray(labels) ||
      labels.length > POLICY_LIMITS.labels ||
      labels.some((l) => typeof l !== 'string' || !NAME_PATTERN.test(l)) ||
      new Set(labels).size !== labels.length
    )
      issues.push({ path: at('required_labels'), message: `up to ${POLICY_LIMITS.labels} distinct labels` });
    if (typeof r.aggregator_required !== 'boolean')
      issues.push({ path: at('aggregator_required'), message: 'expected a boolean' });
    const deadline = r.deadline_seconds;
    if (
      deadline !== undefined &&
      (typeof deadline !== 'number' ||
        !Number.isInteger(deadline) ||
        deadline < 1 ||
        deadline > POLICY_LIMITS.deadlineSeconds)
    )
      issues.push({ path: at('deadline_seconds'), message: `an integer from 1 to ${POLICY_LIMITS.deadlineSeconds}` });
  });
  for (const key of Object.keys(value)) {
    if (key !== 'rounds' && key !== 'version') issues.push({ path: key, message: 'unknown field' });
  }
  const version = (value as { version?: unknown }).version;
  if (version !== undefined && (typeof version !== 'number' || !Number.isInteger(version) || version < 0))
    issues.push({ path: 'version', message: 'a non-negative integer' });
  return issues;
}

/** A policy as stored and pinned: rounds with every field spelled out (labels sorted). */
export function normalisePolicy(policy: ReviewPolicy, version: number): PinnedPolicy {
  return {
    version,
    rounds: policy.rounds.map((r) => ({
      name: r.name,
      min_reviewers: r.min_reviewers,
      required_labels: [...r.required_labels].sort(),
      aggregator_required: r.aggregator_required,
      ...(r.deadline_seconds !== undefined ? { deadline_seconds: r.deadline_seconds } : {}),
    })),
  };
}

function sha256Hex(text: string): string {
  return bytesToHex(sha256(new TextEncoder().encode(text)));
}

/**
 * One link of the artifact chain: a report (with its artifact), or a review, sign-off or verify
 * (with the identity of the artifact it concerned: the artifact itself is the report's).
 */
export interface CustodyRecord {
  kind: 'report' | 'review' | 'aggregation' | 'verify';
  round: string | null;
  /** Its place among the iteration's reviews (or sign-offs) under a policy: what `voided` refers to. */
  position: number | null;
  agent_labels: string[];
  review_type: string | null;
  findings_count: number | null;
  fixes_count: number | null;
  disproved_count: number | null;
  summary: string | null;
  artifact: unknown;
  artifact_key: string | null;
}

interface RecordedCounts {
  findings_count: number;
  fixes_count: number;
  disproved_count: number;
  summary: string;
}

type RecordedState = {
  artifact?: unknown;
  review: (RecordedCounts & { review_type: string }) | null;
  reviewProgress?: ReviewProgress | null;
  verifiedArtifact?: string | null;
};

/** The chain's record of an accepted action, from the state before and after it (null for other actions). */
export function custodyRecordOf(
  action: string,
  before: RecordedState,
  after: RecordedState,
  labels: readonly string[] | undefined,
): CustodyRecord | null {
  const base = {
    round: null,
    position: null,
    agent_labels: [...(labels ?? [])].sort(),
    review_type: null,
    findings_count: null,
    fixes_count: null,
    disproved_count: null,
    summary: null,
  };
  const reviewed = before.artifact ?? null;
  /** A review or sign-off: the iteration's last entry of its kind gives its round and place. */
  const signed = (
    kind: 'review' | 'aggregation',
    entries: readonly { round: string }[],
    counts: RecordedCounts | null | undefined,
  ): CustodyRecord => {
    const entry = entries[entries.length - 1];
    return {
      ...base,
      kind,
      round: entry?.round ?? null,
      position: entry ? entries.length - 1 : null,
      findings_count: counts?.findings_count ?? null,
      fixes_count: counts?.fixes_count ?? null,
      disproved_count: counts?.disproved_count ?? null,
      summary: counts?.summary ?? null,
      artifact: null,
      artifact_key: artifactKey(reviewed),
    };
  };
  switch (action) {
    case 'report':
      return { ...base, kind: 'report', artifact: after.artifact ?? null, artifact_key: artifactKey(after.artifact) };
    case 'review-complete':
      return {
        ...signed('review', after.reviewProgress?.reviews ?? [], after.review),
        review_type: after.review?.review_type ?? null,
      };
    case 'aggregate': {
      const aggregations = after.reviewProgress?.aggregations ?? [];
      return signed('aggregation', aggregations, aggregations[aggregations.length - 1]);
    }
    case 'verify':
      return {
        ...base,
        kind: 'verify',
        artifact: null,
        artifact_key: after.verifiedArtifact ?? artifactKey(reviewed),
      };
    default:
      return null;
  }
}
