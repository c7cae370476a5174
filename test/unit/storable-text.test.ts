import { describe, expect, it } from 'vitest';
import { decide, newStoryState } from '../../src/custody/rules.js';
import { isUnstorableText, unstorableTextPath } from '../../src/custody/storable-text.js';

describe('text the database cannot store', () => {
  it.each([
    ['plain', false],
    ['', false],
    ['emoji \ud83d\ude80 pair', false],
    ['\u0000', true],
    ['a\u0000b', true],
    ['\ud800', true],
    ['end \udbff', true],
    ['\udc00 start', true],
    ['reversed \ude80\ud83d', true],
  ])('%j unstorable: %s', (text, expected) => {
    expect(isUnstorableText(text)).toBe(expected);
  });

  it('finds the first bad key or value anywhere in a body, and nothing in a clean one', () => {
    expect(unstorableTextPath({ a: 'x', b: [1, { c: 'ok' }], d: null })).toBeNull();
    expect(unstorableTextPath({ a: 'x', b: [1, { c: 'o\u0000k' }] })).toBe('b.1.c');
    expect(unstorableTextPath({ artifact: { ['k\ud800']: 1 } })).toBe('artifact');
    expect(unstorableTextPath('\u0000')).toBe('(body)');
    expect(unstorableTextPath(42)).toBeNull();
  });
});

describe('the custody rules', () => {
  it('refuse an action whose body cannot be stored, whatever reached the workflow', () => {
    const state = newStoryState({ tenantId: 't', projectId: 'p', storyId: 's', number: '1.1', title: 'T\u0000', acCount: 1, dependsOn: [] });
    const actor = { agentId: 'a', role: 'agent', tenantId: 't' };
    // Even a title that matches the story's own (were one ever stored) is refused.
    const refused = decide(state, actor, 'contract', { story_title: 'T\u0000', ac_count: 1 });
    expect(refused).toMatchObject({ ok: false, rejection: { code: 'invalid_body' } });
    const clean = newStoryState({ tenantId: 't', projectId: 'p', storyId: 's', number: '1.1', title: 'T', acCount: 1, dependsOn: [] });
    expect(decide(clean, actor, 'contract', { story_title: 'T', ac_count: 1 })).toMatchObject({ ok: true });
  });
});
