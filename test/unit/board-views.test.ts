/** The board's pages as pure functions of their model: what is shown, to whom, and that text stays text. */
import { describe, expect, it } from 'vitest';
import type { BoardStory } from '../../src/db/board-repo.js';
import type { ProjectRow } from '../../src/db/story-repo.js';
import { boardMain, boardStatusOf, storyMain, type StoryModel } from '../../src/gateway/board-views.js';

const names = { of: (id: string | null | undefined) => (id ? `name-of-${id}` : '—') };
const project = { id: 'p', slug: 'web', name: 'Web' } as ProjectRow;
const story = (over: Partial<BoardStory> = {}): BoardStory & { review: null } => ({
  id: '00000000-0000-0000-0000-000000000001',
  number: '1.1',
  title: '<script>alert(1)</script>',
  workflow_id: 'story/acme/web/1.1',
  epic_number: 1,
  agent_status: 'implementing',
  verified_status: 'unverified',
  assigned_agent_id: 'a1',
  implementer_agent_id: 'a1',
  reported_by_agent_id: null,
  reviewer_agent_id: null,
  verified_by_agent_id: null,
  iteration: 1,
  stalled: true,
  violations: 2,
  updated_at: new Date(0),
  review: null,
  ...over,
});

const storyModel = (over: Partial<StoryModel> = {}): StoryModel => ({
  story: story(),
  project,
  timeline: [],
  names,
  leaseUntil: Date.UTC(2026, 0, 1, 14, 5),
  temporalUrl: null,
  ...over,
});

describe('the board views', () => {
  it('puts a verified story in Verified whatever its agent status', () => {
    expect(boardStatusOf({ agent_status: 'reported_done', verified_status: 'verified' })).toBe('verified');
    expect(boardStatusOf({ agent_status: 'reported_done', verified_status: 'rejected' })).toBe('reported_done');
  });

  it('shows a card with its badges and chain, the title as text', () => {
    const markup = boardMain({
      projects: [project],
      project,
      epics: [],
      stories: [story()],
      agents: [],
      filters: {},
      leases: new Map([[story().id, Date.UTC(2026, 0, 1, 14, 5)]]),
      names,
    }).markup;
    expect(markup).not.toContain('<script>');
    expect(markup).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(markup).toContain('held by name-of-a1');
    expect(markup).toContain('lease until 14:05 UTC');
    expect(markup).toContain('>stalled<');
    expect(markup).toContain('2 violations');
  });

  it('links to Temporal only when the operators setting gives a URL', () => {
    expect(storyMain(storyModel()).markup).not.toContain('class="temporal"');
    const linked = storyMain(
      storyModel({ temporalUrl: 'http://localhost:8233/namespaces/default/workflows/x' }),
    ).markup;
    expect(linked).toContain('href="http://localhost:8233/namespaces/default/workflows/x"');
  });

  it('links an artifact only when it is an http(s) URL', () => {
    const withArtifact = (artifact: string) =>
      storyMain(
        storyModel({
          timeline: [
            {
              id: '1',
              outcome: 'accepted',
              code: null,
              action: 'report',
              actor_agent_id: 'a2',
              actor_role: 'agent',
              from_agent_status: 'review_requested',
              to_agent_status: 'reported_done',
              from_verified_status: 'unverified',
              to_verified_status: 'unverified',
              seq: '5',
              payload: { artifact },
              occurred_at: new Date(0),
            },
          ],
        }),
      ).markup;
    expect(withArtifact('https://example.test/pr/1')).toContain('<a href="https://example.test/pr/1"');
    const hostile = withArtifact('javascript:alert(1)');
    expect(hostile).not.toContain('href="javascript');
    expect(hostile).toContain('javascript:alert(1)');
  });
});
