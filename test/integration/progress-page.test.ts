/** The progress page in a real headless Chromium: it loads, asks for a key, and shows the right counts. */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, driveToVerified, importBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

let stack: Stack;
let team: Team;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'page');
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

describe('the progress page', () => {
  it('shows each epic with its progress, the ready stories with links to their history in the Temporal UI', async () => {
    const stories = await importBacklog(stack.api, team, {
      epics: [
        {
          number: 1,
          title: 'Foundation',
          stories: [
            { number: '1.1', title: 'Schema', acceptance_criteria: ['a'] },
            { number: '1.2', title: 'Config', acceptance_criteria: ['a'] },
          ],
        },
        {
          number: 2,
          title: 'Features',
          stories: [{ number: '2.1', title: 'Landing page', acceptance_criteria: ['a'], depends_on: ['1.1'] }],
        },
      ],
    });
    await driveToVerified(stack.api, stories.get('1.1'), {
      implementer: team.agents[0].key,
      reviewer: team.agents[1].key,
      verifier: team.orchestrator.key,
    });

    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    await page.goto(`${stack.baseUrl}/`);
    await page.fill('#key', team.orchestrator.key);
    await page.click('button[type=submit]');
    await page.waitForSelector('section[data-project="web"] .epic');
    expect(await page.textContent('section[data-project="web"] .total')).toBe('1 of 3 stories verified (33.3%)');
    expect(await page.textContent('.epic[data-epic="1"] .count')).toBe('1/2 verified');
    expect(await page.textContent('.epic[data-epic="2"] .count')).toBe('0/1 verified');
    const ready = await page.$$eval('section[data-project="web"] li a', (links) =>
      links.map((a) => [a.textContent, a.getAttribute('href')]),
    );
    expect(ready.map(([text]) => text).sort()).toEqual(['1.2 Config', '2.1 Landing page']);
    const link = ready.find(([text]) => text === '2.1 Landing page')![1]!;
    expect(link).toBe(
      `http://localhost:8233/namespaces/default/workflows/${encodeURIComponent(stories.get('2.1').workflow_id)}`,
    );

    // The key is kept for the browser session: a reload shows the page again without asking.
    await page.reload();
    await page.waitForSelector('section[data-project="web"] .epic');
    expect(await page.isHidden('#login')).toBe(true);

    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/progress-page.png', fullPage: true });
    expect(existsSync('test-results/progress-page.png')).toBe(true);
  });

  it('asks again for a key that is refused', async () => {
    const page = await browser.newPage();
    await page.goto(`${stack.baseUrl}/`);
    await page.fill('#key', 'cust_not-a-key');
    await page.click('button[type=submit]');
    await page.waitForSelector('#status.error');
    expect(await page.textContent('#status')).toContain('unauthorized');
    expect(await page.isVisible('#login')).toBe(true);
  });
});
