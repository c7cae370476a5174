/** Names and violation counts reach the workflow only as the gateway signed them. */
import { describe, expect, it } from 'vitest';
import { envelopeProblem, newSigningSeed, signEnvelope, signingKeyFromSeed } from '../../src/custody/identity.js';
import { signViolationNews, trustedViolationCount } from '../../src/custody/violation-news.js';

const key = signingKeyFromSeed(newSigningSeed());
const other = signingKeyFromSeed(newSigningSeed());
const WF = 'story/acme/web/1.1';
const now = 1_800_000_000_000;
const unsigned = {
  updateId: 'u-1',
  action: 'report' as const,
  actor: { tenantId: 't', agentId: 'a', role: 'agent' as const, name: 'reviewer-1' },
  body: {},
  issuedAt: now,
};

describe("an envelope's agent name", () => {
  it('is signed with the rest: a changed, added or removed name breaks the signature', () => {
    const signed = signEnvelope(key, WF, unsigned);
    expect(envelopeProblem(WF, signed, [key.publicKey], now)).toBeNull();
    const renamed = { ...signed, actor: { ...signed.actor, name: 'orchestrator' } };
    expect(envelopeProblem(WF, renamed, [key.publicKey], now)).toBe('signature not from a trusted gateway');
    const { name: _dropped, ...nameless } = signed.actor;
    expect(envelopeProblem(WF, { ...signed, actor: nameless }, [key.publicKey], now)).toBe(
      'signature not from a trusted gateway',
    );
    const signedNameless = signEnvelope(key, WF, { ...unsigned, actor: nameless });
    expect(envelopeProblem(WF, signedNameless, [key.publicKey], now)).toBeNull();
    const added = { ...signedNameless, actor: { ...nameless, name: 'reviewer-1' } };
    expect(envelopeProblem(WF, added, [key.publicKey], now)).toBe('signature not from a trusted gateway');
  });

  it('must be text', () => {
    const signed = signEnvelope(key, WF, unsigned);
    expect(envelopeProblem(WF, { ...signed, actor: { ...signed.actor, name: 7 } }, [key.publicKey], now)).toBe(
      'bad actor',
    );
  });
});

describe('violation news', () => {
  it('counts only when signed by a trusted key for this very story', () => {
    const news = signViolationNews(key, WF, 3);
    expect(trustedViolationCount(WF, news, [key.publicKey])).toBe(3);
    expect(trustedViolationCount(WF, news, [other.publicKey])).toBeNull();
    expect(trustedViolationCount('story/acme/web/1.2', news, [key.publicKey])).toBeNull();
    expect(trustedViolationCount(WF, { ...news, count: 4 }, [key.publicKey])).toBeNull();
    expect(trustedViolationCount(WF, { count: 3 }, [key.publicKey])).toBeNull();
    expect(trustedViolationCount(WF, { ...signViolationNews(key, WF, -1) }, [key.publicKey])).toBeNull();
    expect(trustedViolationCount(WF, null, [key.publicKey])).toBeNull();
  });
});
