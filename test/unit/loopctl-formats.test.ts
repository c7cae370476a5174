/** The pure parts of loopctl compatibility: offset paging, story content comparison, import parsing, event names. */
import { describe, expect, it } from 'vitest';
import { eventsOfTransition } from '../../src/custody/actions.js';
import { ImportBody, sameContent } from '../../src/gateway/backlog.js';
import { pageMeta, startOf } from '../../src/gateway/routes/params.js';

describe('list paging', () => {
  it('starts at a keyset cursor, else at page or offset, and hands out a cursor while stories remain', () => {
    expect(startOf({ limit: 20 })).toEqual({ limit: 20, offset: 0 });
    expect(startOf({ limit: 20, offset: 40 })).toEqual({ limit: 20, offset: 40 });
    // loopctl's page/page_size: page_size is the limit, pages count from 1.
    expect(startOf({ limit: 50, page: 3, page_size: 10 })).toEqual({ limit: 10, offset: 20, page: 3 });
    const start = startOf({ limit: 2, offset: 40 });
    const rows = [
      { id: '8f0c1c52-6b1e-4a8e-9a55-0d5f3b1e2a01', number: '1.9', epic_number: 1 },
      { id: '8f0c1c52-6b1e-4a8e-9a55-0d5f3b1e2a02', number: '1.10', epic_number: 1 },
    ];
    const meta = pageMeta(start, rows, true, 65);
    expect(meta).toMatchObject({ limit: 2, offset: 40, total_count: 65 });
    // The cursor holds the last row's sort key, whatever the offset that led there.
    expect(startOf({ limit: 2, cursor: meta.next_cursor!, offset: 3 })).toEqual({
      limit: 2,
      offset: 0,
      after: { epicNumber: 1, number: '1.10', id: rows[1].id },
    });
    expect(pageMeta(start, rows, false, 42).next_cursor).toBeNull();
    expect(pageMeta(startOf({ limit: 10, page: 2 }), [], false, 25)).toMatchObject({ page: 2, total_pages: 3 });
    // A cursor this gateway did not seal is 400 invalid_query.
    expect(() => startOf({ limit: 2, cursor: 'not-a-cursor' })).toThrow(
      expect.objectContaining({ code: 'invalid_query' }),
    );
    expect(() => startOf({ limit: 2, cursor: Buffer.from('{"o":"-1"}').toString('base64url') })).toThrow(
      expect.objectContaining({ code: 'invalid_query' }),
    );
  });
});

describe("loopctl's import format", () => {
  it('accepts numeric-string epic numbers, criteria as strings or {id, description}, and its extra sections', () => {
    const parsed = ImportBody.parse({
      export_metadata: { exported_at: 'x' },
      project: { name: 'p' },
      epics: [
        {
          number: '72',
          title: 'E',
          phase: 'core',
          position: 1,
          stories: [{ number: '72.1', title: 'A', acceptance_criteria: ['a', { id: 'AC-1', description: 'b' }] }],
        },
      ],
      story_dependencies: [{ story: '72.1', depends_on: '71.1' }],
      epic_dependencies: [{ epic: 72, depends_on: 71 }],
    });
    expect(parsed.epics[0].number).toBe(72);
    expect(parsed.epics[0].stories[0].number).toBe('72.1');
    for (const number of ['seventy', '7.5', -1, 1.5, '1e3', 1e21])
      expect(ImportBody.safeParse({ epics: [{ number, title: 'E', stories: [] }] }).success).toBe(false);
    // A story number is text ("2.10"); as a JSON number only an integer is unambiguous (2.10 is 2.1).
    const withStory = (number: unknown) => ({ epics: [{ number: 2, title: 'E', stories: [{ number, title: 'A' }] }] });
    expect(ImportBody.parse(withStory(7)).epics[0].stories[0].number).toBe('7');
    for (const number of [2.1, 2.1, 1e21, -3, Number.MAX_SAFE_INTEGER + 2, ''])
      expect(ImportBody.safeParse(withStory(number)).success).toBe(false);
    expect(ImportBody.safeParse({ epics: [{ number: 1, title: 'E', stories: [], owner: 'x' }] }).success).toBe(false);
  });

  it('compares content, not key order or absent-versus-empty fields', () => {
    const a = { title: 't', acceptance_criteria: ['x'], metadata: { a: 1, b: [1, 2] }, estimated_hours: '2.5' };
    expect(
      sameContent(a, { title: 't', acceptance_criteria: ['x'], metadata: { b: [1, 2], a: 1 }, estimated_hours: 2.5 }),
    ).toBe(true);
    expect(
      sameContent(
        { title: 't', acceptance_criteria: [] },
        { title: 't', acceptance_criteria: [], description: null, metadata: {} },
      ),
    ).toBe(true);
    expect(sameContent(a, { ...a, acceptance_criteria: ['y'] })).toBe(false);
    expect(sameContent(a, { ...a, metadata: { a: 2, b: [1, 2] } })).toBe(false);
  });
});

describe("loopctl's event names", () => {
  const at = (agent_status: string, verified_status = 'unverified') => ({ agent_status, verified_status });
  it('adds story.status_changed to every status change, and loopctl names to reports and reviews', () => {
    expect(eventsOfTransition('claim', at('contracted'), at('assigned'))).toEqual([
      'story.claimed',
      'story.status_changed',
    ]);
    expect(eventsOfTransition('report', at('review_requested'), at('reported_done'))).toEqual([
      'story.reported',
      'artifact.reported',
      'story.status_changed',
    ]);
    expect(eventsOfTransition('review-complete', at('reported_done'), at('reported_done'))).toEqual([
      'story.review_complete',
      'story.review_completed',
    ]);
    expect(eventsOfTransition('backfill', at('pending'), at('reported_done', 'verified'))).toEqual([
      'story.backfilled',
      'story.status_changed',
    ]);
    expect(eventsOfTransition('edit', at('pending'), at('pending'))).toEqual(['story.updated']);
  });
});
