import { describe, expect, it } from 'vitest';
import { checkStorableBody, decide, newStoryState } from '../../src/custody/rules.js';
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
  it('refuse, in the validator, a body whose text cannot be stored; decide (also run on replay) does not judge it', () => {
    expect(checkStorableBody({ summary: 'ok\u0000' })).toMatchObject({
      code: 'invalid_body',
      context: { issues: [{ path: 'summary' }] },
    });
    expect(checkStorableBody({ artifact: { ['k\ud800']: 1 } })).toMatchObject({ code: 'invalid_body' });
    expect(checkStorableBody({ summary: 'ok \ud83d\ude80' })).toBeNull();
    expect(checkStorableBody(undefined)).toBeNull();
    // Histories that accepted such a body before the check existed must replay as they ran.
    const state = newStoryState({
      tenantId: 't',
      projectId: 'p',
      storyId: 's',
      number: '1.1',
      title: 'T\u0000',
      acCount: 1,
      dependsOn: [],
    });
    expect(
      decide(state, { agentId: 'a', role: 'agent', tenantId: 't' }, 'contract', {
        story_title: 'T\u0000',
        ac_count: 1,
      }),
    ).toMatchObject({ ok: true });
  });
});
