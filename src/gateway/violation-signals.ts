/**
 * Tells a story's workflow how many custody violations it has seen, so ops can search for them
 * (the CustodyViolations search attribute) and see the count in the story's details.
 *
 * Bounded: a flood of rejected attempts must not flood the story's history. Per story, at most one
 * signal per interval, across every gateway process (a row per story in the database is the gate);
 * rejections in between are coalesced into the next one, which carries the total read from the
 * audit table at the time it is sent (not a delta), so it is always the latest count and a lost
 * signal is made good by the next. Best effort: the audit rows are the record.
 */
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { SigningKey } from '../custody/identity.js';
import { signViolationNews } from '../custody/violation-news.js';
import { violationCount } from '../db/custody-store.js';
import { takeViolationSignalTurn, type StoryRow } from '../db/story-repo.js';
import { custodyViolationsSignal } from '../../workflows/messages.js';

interface StoryEntry {
  lastSentAt: number;
  timer: NodeJS.Timeout | null;
  sending: Promise<void> | null;
}

export class ViolationSignals {
  private readonly stories = new Map<string, StoryEntry>();

  constructor(
    private readonly client: Client,
    private readonly pool: pg.Pool,
    /** The key to sign with, read at each send: the current key of the ring the gateway acts with. */
    private readonly signingKey: () => SigningKey,
    private readonly intervalMs = 60_000,
  ) {}

  /** A violation was recorded for the story: its count reaches the workflow within one interval. */
  raised(story: StoryRow): void {
    const now = Date.now();
    this.forget(now);
    const entry = this.stories.get(story.workflow_id) ?? { lastSentAt: 0, timer: null, sending: null };
    this.stories.set(story.workflow_id, entry);
    if (entry.timer) return; // one is already due: it will carry this one too
    // A little past the interval: the database's clock, which the gate reads, is not quite this one.
    const slack = Math.min(1000, this.intervalMs / 10);
    this.schedule(story, entry, Math.max(0, entry.lastSentAt + this.intervalMs + slack - now));
  }

  private schedule(story: StoryRow, entry: StoryEntry, waitMs: number): void {
    entry.timer = setTimeout(() => {
      // Cleared before the count is read: a violation recorded from now on schedules the next one.
      entry.timer = null;
      entry.lastSentAt = Date.now();
      entry.sending = this.send(story)
        .then((sent) => {
          // Another gateway signalled the story within the interval: this count goes a little later.
          if (!sent && !entry.timer) this.schedule(story, entry, this.intervalMs / 4);
        })
        .finally(() => (entry.sending = null));
    }, waitMs);
    entry.timer.unref();
  }

  /** Takes the story's turn if no gateway signalled it within the interval. */
  private async turn(story: StoryRow): Promise<boolean> {
    return takeViolationSignalTurn(this.pool, story, this.intervalMs);
  }

  /** False when it was not this gateway's turn; true when sent, or when sending failed (not retried). */
  private async send(story: StoryRow): Promise<boolean> {
    try {
      if (!(await this.turn(story))) return false;
      const count = await violationCount(this.pool, story.tenant_id, story.id);
      await this.client.workflow
        .getHandle(story.workflow_id)
        .signal(custodyViolationsSignal, signViolationNews(this.signingKey(), story.workflow_id, count));
    } catch {
      // Best effort: the next violation sends the total again, and the audit table has every one.
    }
    return true;
  }

  /** Stories whose interval is over and nothing is due are dropped, so the map stays small. */
  private forget(now: number): void {
    if (this.stories.size < 1000) return;
    for (const [id, entry] of this.stories) {
      if (!entry.timer && !entry.sending && entry.lastSentAt + this.intervalMs < now) this.stories.delete(id);
    }
  }
}
