/**
 * The board in a real headless Chromium against the real service: sign-in, a story moving across
 * the columns while the page is open, a rejected attempt appearing on the story page, a tenant
 * seeing none of another's stories, sign-out, and the session's cookie and CSRF defences.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const HOSTILE_TITLE = `<img src=x onerror="document.title='owned'">Search`;

let stack: Stack;
let team: Team;
let stories: Map<string, any>;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  stack = await startStack();
  team = await createTeam(stack.api, 3, 'board');
  stories = await importBacklog(stack.api, team, {
    epics: [
      {
        number: 1,
        title: 'Foundation',
        stories: [
          { number: '1.1', title: 'Schema', acceptance_criteria: ['a'] },
          { number: '1.2', title: 'Config', acceptance_criteria: ['a'] },
        ],
      },
      { number: 2, title: 'Features', stories: [{ number: '2.1', title: HOSTILE_TITLE, acceptance_criteria: ['a'] }] },
    ],
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signIn(key: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${stack.baseUrl}/`);
  await page.fill('#key', key);
  await page.click('button[type=submit]');
  await page.waitForSelector('.columns');
  return { context, page };
}

/** An element's text with its whitespace collapsed, as a reader sees it. */
const text = async (page: Page, selector: string) =>
  ((await page.textContent(selector)) ?? '').replace(/\s+/g, ' ').trim();

const card = (status: string, number: string) => `section[data-status="${status}"] a.card[data-story="${number}"]`;

describe('the board', () => {
  it('signs in with an API key into an HttpOnly, SameSite=Strict session, never keeping the key', async () => {
    const { context, page } = await signIn(team.orchestrator.key);
    const cookies = await context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'custody_board', httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookies[0].value).not.toContain(team.orchestrator.key);
    const stored = await page.evaluate<string>(
      'JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })',
    );
    expect(stored).not.toContain('cust_');
    expect(await text(page, 'header .who')).toContain('signed in as orchestrator (orchestrator)');
    // Every story has its card, the hostile title as text only.
    expect(await page.isVisible(card('pending', '1.1'))).toBe(true);
    expect(await text(page, `${card('pending', '2.1')} .title`)).toBe(HOSTILE_TITLE);
    expect(await page.$$('a.card img')).toHaveLength(0);
    expect(await page.title()).not.toBe('owned');
    await context.close();
  });

  it('moves a story across the columns while the page is open, with its holder, lease and chain by name', async () => {
    const { context, page } = await signIn(team.orchestrator.key);
    const story = stories.get('1.1');
    const [implementer, reviewer] = team.agents;
    const polls = async () => Number(await page.getAttribute('#main', 'data-polled'));
    await page.waitForSelector('#main[data-polled]', { state: 'attached' });

    await stack.api.act(story.id, 'contract', implementer.key, { story_title: story.title, ac_count: 1 });
    await page.waitForSelector(card('contracted', '1.1'), { timeout: 10_000 });
    await stack.api.act(story.id, 'claim', implementer.key);
    await page.waitForSelector(card('assigned', '1.1'), { timeout: 10_000 });
    expect(await text(page, `${card('assigned', '1.1')} .holder`)).toBe('held by agent-1');
    expect(await text(page, `${card('assigned', '1.1')} .badge.lease`)).toMatch(/^lease until \d\d:\d\d UTC$/);
    const before = await polls();

    await driveToVerifiedFrom(story, implementer.key, reviewer.key);
    await page.waitForSelector(card('verified', '1.1'), { timeout: 10_000 });
    expect(await polls()).toBeGreaterThan(before);
    const chain = await page.$$eval(`${card('verified', '1.1')} .chain li`, (items) =>
      items.map((li) => li.textContent!.replace(/\s+/g, ' ').trim()),
    );
    expect(chain).toEqual(['implementer agent-1', 'reporter agent-2', 'reviewer agent-2', 'verifier orchestrator']);
    expect(await text(page, '.epic[data-epic="1"] .count')).toBe('1/2 verified');
    expect(await page.isVisible(card('pending', '1.1'))).toBe(false);

    // Filters: by status, by agent, by epic.
    await page.selectOption('select[name=status]', 'verified');
    await page.click('.filters button[type=submit]');
    await page.waitForSelector('section[data-status="verified"]');
    expect(await page.$$('section.column')).toHaveLength(1);
    await page.selectOption('select[name=status]', '');
    await page.selectOption('select[name=agent]', { label: 'agent-2' });
    await page.click('.filters button[type=submit]');
    await page.waitForURL(/agent=/);
    expect(await page.$$eval('a.card', (cards) => cards.map((c) => c.getAttribute('data-story')))).toEqual(['1.1']);
    await page.selectOption('select[name=agent]', '');
    await page.selectOption('select[name=epic]', '2');
    await page.click('.filters button[type=submit]');
    await page.waitForURL(/epic=2/);
    expect(await page.$$eval('a.card', (cards) => cards.map((c) => c.getAttribute('data-story')))).toEqual(['2.1']);

    // Keyboard: the cards are links reached with Tab.
    await page.goto(`${stack.baseUrl}/`);
    await page.focus(card('verified', '1.1'));
    await page.keyboard.press('Enter');
    await page.waitForSelector('.timeline');
    expect(page.url()).toBe(`${stack.baseUrl}/board/stories/${story.id}`);

    mkdirSync('test-results', { recursive: true });
    await page.goto(`${stack.baseUrl}/`);
    await page.screenshot({ path: 'test-results/board.png', fullPage: true });
    await context.close();
  });

  it('shows a rejected attempt on the story page as it happens, with the artifact and the review', async () => {
    const story = stories.get('1.2');
    const [implementer, reviewer] = team.agents;
    for (const [action, key, body] of [
      ['contract', implementer.key, { story_title: story.title, ac_count: 1 }],
      ['claim', implementer.key, {}],
      ['start', implementer.key, {}],
      ['request-review', implementer.key, {}],
    ] as const) {
      expect((await stack.api.act(story.id, action, key, body)).status).toBe(200);
    }
    const { context, page } = await signIn(team.orchestrator.key);
    await page.goto(`${stack.baseUrl}/board/stories/${story.id}`);
    await page.waitForSelector('.timeline');
    expect(await page.$$('.entry.rejected')).toHaveLength(0);
    await page.waitForSelector('#main[data-polled]', { state: 'attached' });

    const selfReport = await stack.api.act(story.id, 'report', implementer.key, {
      artifact: 'https://example.test/pr/7',
    });
    expect(selfReport.body.error.code).toBe('self_report_blocked');
    await page.waitForSelector('.entry.rejected[data-action="report"]', { timeout: 10_000 });
    expect(await text(page, '.entry.rejected[data-action="report"] .actor')).toBe('agent-1 (agent)');
    expect(await text(page, '.entry.rejected[data-action="report"] .change')).toBe('refused: self_report_blocked');
    await page.waitForSelector('.badge.violations', { timeout: 10_000 });
    expect(await text(page, '.badge.violations')).toBe('1 violation');

    await stack.api.act(story.id, 'report', reviewer.key, { artifact: 'https://example.test/pr/7' });
    await stack.api.act(story.id, 'review-complete', reviewer.key, {
      review_type: 'standard',
      findings_count: 3,
      fixes_count: 2,
      disproved_count: 1,
      summary: 'two fixed, one disproved',
    });
    await page.waitForSelector('.review q', { timeout: 10_000 });
    expect(await text(page, '.artifact a')).toBe('https://example.test/pr/7');
    expect(await text(page, '.review')).toContain('3 findings, 2 fixed');
    const outcomes = await page.$$eval('.timeline .entry', (rows) =>
      rows.map((r) => `${r.getAttribute('data-outcome')} ${r.getAttribute('data-action')}`),
    );
    expect(outcomes).toEqual([
      'accepted contract',
      'accepted claim',
      'accepted start',
      'accepted request-review',
      'rejected report',
      'accepted report',
      'accepted review-complete',
    ]);
    // The Temporal UI has no login and shows every tenant: no link unless operators turn it on.
    expect(await page.$$('a.temporal')).toHaveLength(0);
    await page.screenshot({ path: 'test-results/story-page.png', fullPage: true });
    await context.close();
  });

  it("shows another tenant's key none of it", async () => {
    const other = await createTeam(stack.api, 1, 'rival');
    const { context, page } = await signIn(other.orchestrator.key);
    expect(await page.$$('a.card')).toHaveLength(0);
    expect(await text(page, 'main')).not.toContain('Schema');
    expect(await text(page, 'nav.projects')).toBe('Web');
    // Not by the project's slug, not by a story's address, not through the live endpoint.
    await page.goto(`${stack.baseUrl}/?project=web&epic=1`);
    expect(await page.$$('a.card')).toHaveLength(0);
    const direct = await page.goto(`${stack.baseUrl}/board/stories/${stories.get('1.1').id}`);
    expect(direct!.status()).toBe(404);
    expect(await text(page, 'main')).not.toContain('Schema');
    const live = await page.evaluate(
      async (url) => {
        const res = await fetch(url, { headers: { 'X-Board-Fragment': '1' } });
        return { status: res.status, text: await res.text() };
      },
      `${stack.baseUrl}/board/stories/${stories.get('1.2').id}`,
    );
    expect(live.status).toBe(404);
    expect(live.text).not.toContain('Config');
    await context.close();
  });

  it('signs out: the session ends on the server, and sign-out needs its CSRF token', async () => {
    const { context, page } = await signIn(team.orchestrator.key);
    const [session] = await context.cookies();
    const cookie = `custody_board=${session.value}`;

    // A forged sign-out (no token) and a cross-site sign-in are refused.
    const forged = await fetch(`${stack.baseUrl}/board/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'csrf=guess',
      redirect: 'manual',
    });
    expect(forged.status).toBe(403);
    const crossSite = await fetch(`${stack.baseUrl}/board/login`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: `key=${encodeURIComponent(team.orchestrator.key)}`,
      redirect: 'manual',
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get('set-cookie')).toBeNull();
    // A wrong key is told so, with no session.
    const wrong = await fetch(`${stack.baseUrl}/board/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'key=cust_not-a-key',
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain('That API key is not valid.');

    await page.click('.logout button[type=submit]');
    await page.waitForSelector('#key');
    expect(await context.cookies()).toHaveLength(0);
    // The old cookie, replayed, opens nothing.
    const replay = await fetch(`${stack.baseUrl}/`, { headers: { cookie } });
    expect(await replay.text()).toContain('id="key"');
    const replayLive = await fetch(`${stack.baseUrl}/`, { headers: { cookie, 'x-board-fragment': '1' } });
    expect(replayLive.status).toBe(401);
    await context.close();
  });
  it("ends a key's sessions when the key is revoked", async () => {
    const registered = await stack.api.post('/api/v1/agents/register', team.admin.key, { name: 'temp', role: 'agent' });
    const { key, id: keyId } = registered.body.data.api_key;
    const login = await fetch(`${stack.baseUrl}/board/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: stack.baseUrl },
      body: `key=${encodeURIComponent(key)}`,
      redirect: 'manual',
    });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    expect(await (await fetch(`${stack.baseUrl}/`, { headers: { cookie } })).text()).toContain('signed in as');
    expect((await stack.api.call('DELETE', `/api/v1/api_keys/${keyId}`, { key: team.admin.key })).status).toBe(200);
    const after = await fetch(`${stack.baseUrl}/`, { headers: { cookie } });
    expect(await after.text()).toContain('id="key"');
  });
});

async function driveToVerifiedFrom(story: { id: string }, implementerKey: string, reviewerKey: string) {
  const steps: [string, string, unknown][] = [
    ['start', implementerKey, {}],
    ['request-review', implementerKey, {}],
    ['report', reviewerKey, { artifact: 'https://example.test/pr/1' }],
    [
      'review-complete',
      reviewerKey,
      { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
    ],
    ['verify', team.orchestrator.key, { summary: 'done' }],
  ];
  for (const [action, key, body] of steps) {
    const r = await stack.api.act(story.id, action, key, body);
    if (r.status !== 200) throw new Error(`${action}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}
