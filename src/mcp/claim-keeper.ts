/**
 * Keeps alive the claims an agent key holds while the MCP server runs: a heartbeat every third of
 * the lease, so an implementation that takes longer than the lease keeps its story. A claim is
 * dropped from the watch when the service says it is no longer held (request-review, unclaim, a
 * force-unclaim, an expiry); a heartbeat the service could not answer is retried soon.
 */
import { CustodyApiError, type CustodyClient } from '../clients/http.js';

/** Refusals that mean the claim is over: nothing to keep alive any more. */
const CLAIM_OVER = new Set(['invalid_transition', 'not_assigned_agent', 'lease_expired', 'not_found', 'forbidden']);
/** How soon a heartbeat the service could not answer (down, busy, rate limited) is tried again. */
const RETRY_MS = 2_000;
/** Never beat more often than this, however short the lease. */
const MIN_INTERVAL_MS = 250;

interface StoryRef {
  id: string;
  assigned_agent_id: string | null;
}

export class ClaimKeeper {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly client: CustodyClient,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /**
   * Watches a story this key claimed: a heartbeat every third of the lease. When the lease's end is
   * not known yet (a claim, a start), a heartbeat now tells it.
   */
  hold(storyId: string, leaseExpiresAt?: string | null): void {
    if (this.stopped) return;
    if (leaseExpiresAt === null) this.release(storyId);
    else if (leaseExpiresAt === undefined) this.schedule(storyId, 0);
    else this.scheduleBefore(storyId, leaseExpiresAt);
  }

  /** Stops watching a story (its claim ended). */
  release(storyId: string): void {
    clearTimeout(this.timers.get(storyId));
    this.timers.delete(storyId);
  }

  held(): string[] {
    return [...this.timers.keys()];
  }

  /** Finds the claims this key already holds (a restarted server keeps them alive too). */
  async discover(): Promise<void> {
    const me = await this.client.get<{ id: string }>('/agents/me');
    for (const status of ['assigned', 'implementing']) {
      let cursor: string | undefined;
      do {
        const params = new URLSearchParams({ agent_status: status, limit: '500' });
        if (cursor) params.set('cursor', cursor);
        const page = await this.client.page<StoryRef>(`/stories?${params.toString()}`);
        for (const story of page.data) if (story.assigned_agent_id === me.id) this.hold(story.id);
        cursor = page.meta.next_cursor ?? undefined;
      } while (cursor);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private schedule(storyId: string, delayMs: number): void {
    clearTimeout(this.timers.get(storyId));
    // Unref'd: the server lives as long as its stdio, never for a timer.
    this.timers.set(storyId, setTimeout(() => void this.beat(storyId), delayMs).unref());
  }

  /** Right after a heartbeat the lease has its whole length to run: a third of it is a third of the lease. */
  private scheduleBefore(storyId: string, leaseExpiresAt: string): void {
    const remaining = Date.parse(leaseExpiresAt) - Date.now();
    this.schedule(storyId, Math.max(MIN_INTERVAL_MS, remaining / 3));
  }

  private async beat(storyId: string): Promise<void> {
    if (this.stopped || !this.timers.has(storyId)) return;
    try {
      const answer = await this.client.post<{ lease_expires_at: string | null }>(
        `/stories/${encodeURIComponent(storyId)}/heartbeat`,
      );
      if (!this.timers.has(storyId)) return;
      if (answer.lease_expires_at === null) {
        // A project without leases: the claim cannot run out, nothing to keep alive.
        this.release(storyId);
        return;
      }
      this.scheduleBefore(storyId, answer.lease_expires_at);
    } catch (err) {
      if (err instanceof CustodyApiError && CLAIM_OVER.has(err.code)) {
        this.log(`claim on ${storyId} is over (${err.code}); no longer kept alive`);
        this.release(storyId);
        return;
      }
      this.log(`heartbeat for ${storyId} failed (${err instanceof Error ? err.message : String(err)}); retrying`);
      if (this.timers.has(storyId)) this.schedule(storyId, RETRY_MS);
    }
  }
}
