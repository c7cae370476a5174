/**
 * The README's pictures, taken from the real service in headless Chromium: `npm run docs:screenshots`.
 * A Temporal dev server with its Web UI, the gateway and a worker; a small team moves a few stories
 * (one attempt refused), then the board, a story page and the story's history in the Temporal UI
 * (each update's identity names the agent) are written to docs/.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { chromium } from 'playwright-core';
import { locateTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { WORKFLOWS_PATH } from '../src/temporal/workflow-bundle.js';
import { freePort } from './global-setup.js';
import { startStack } from './support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const executable = await locateTemporalCli();
if (!executable) throw new Error('no Temporal CLI');
const server = await startDevServer({ executable, port: await freePort(), uiPort: await freePort() });
const dir = mkdtempSync(join(tmpdir(), 'custody-shots-'));
const bundlePath = join(dir, 'bundle.js');
writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH })).code);
const stack = await startStack({
  temporalAddress: server.address,
  workflowBundlePath: bundlePath,
  violationSignalIntervalMs: 500,
  env: { BOARD_TEMPORAL_LINKS: 'true', TEMPORAL_UI_URL: server.uiUrl! },
});
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });

try {
  const { api } = stack;
  const signup = (await api.post('/api/v1/tenants', undefined, { name: 'acme' })).body.data;
  const admin = signup.api_key.key as string;
  const agent = async (name: string, role: string) =>
    (await api.post('/api/v1/agents/register', admin, { name, role })).body.data.api_key.key as string;
  const orchestrator = await agent('orchestrator-1', 'orchestrator');
  const [builder1, builder2, reviewer1] = [
    await agent('builder-1', 'agent'),
    await agent('builder-2', 'agent'),
    await agent('reviewer-1', 'agent'),
  ];
  const project = (await api.post('/api/v1/projects', admin, { name: 'Storefront', slug: 'storefront' })).body.data;
  const story = (number: string, title: string) => ({ number, title, acceptance_criteria: ['works', 'tested'] });
  const imported = (
    await api.post(`/api/v1/projects/${project.id}/import`, orchestrator, {
      epics: [
        {
          number: 1,
          title: 'Catalogue',
          stories: [story('1.1', 'Product schema'), story('1.2', 'Search index'), story('1.3', 'Price history')],
        },
        {
          number: 2,
          title: 'Checkout',
          stories: [story('2.1', 'Cart'), story('2.2', 'Payment provider'), story('2.3', 'Receipts')],
        },
      ],
    })
  ).body.data.stories as { id: string; number: string; title: string }[];
  const byNumber = new Map(imported.map((s) => [s.number, s]));
  const act = async (number: string, action: string, key: string, body: unknown = {}) => {
    const s = byNumber.get(number)!;
    const r = await api.act(s.id, action, key, action === 'contract' ? { story_title: s.title, ac_count: 2 } : body);
    return r.status;
  };
  const review = { review_type: 'standard', findings_count: 2, fixes_count: 2, disproved_count: 0, summary: 'ok' };
  const until = async (number: string, builder: string, last: string) => {
    const steps: [string, string, unknown][] = [
      ['contract', builder, {}],
      ['claim', builder, {}],
      ['start', builder, {}],
      ['request-review', builder, {}],
      ['report', reviewer1, { artifact: `https://git.example/acme/storefront/pull/${number.replace('.', '')}` }],
      ['review-complete', reviewer1, review],
      ['verify', orchestrator, { summary: 'criteria met' }],
    ];
    for (const [action, key, body] of steps) {
      await act(number, action, key, body);
      if (action === last) return;
    }
  };
  await until('1.1', builder1, 'verify');
  await until('1.2', builder2, 'request-review');
  await act('1.2', 'report', builder2, { artifact: 'mine' }); // refused: self-report
  await act('1.2', 'review-complete', builder2, review); // refused
  await act('1.2', 'report', reviewer1, { artifact: 'https://git.example/acme/storefront/pull/12' });
  await act('1.2', 'review-complete', reviewer1, review);
  await until('2.1', builder1, 'start');
  await until('2.2', builder2, 'request-review');
  await until('1.3', builder1, 'contract');
  await new Promise((r) => setTimeout(r, 1500)); // violation counts reach the story

  const page = await browser.newPage({ viewport: { width: 1500, height: 760 } });
  await page.goto(`${stack.baseUrl}/`);
  await page.fill('#key', orchestrator);
  await page.click('button[type=submit]');
  await page.waitForSelector('.columns');
  await page.screenshot({ path: 'docs/board.png', fullPage: true });
  await page.goto(`${stack.baseUrl}/board/stories/${byNumber.get('1.2')!.id}`);
  await page.waitForSelector('.timeline');
  await page.screenshot({ path: 'docs/story-page.png', fullPage: true });

  const workflowId = `story/${signup.tenant.slug}/storefront/1.2`;
  const ui = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  await ui.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  await ui.waitForLoadState('networkidle');
  await ui.waitForTimeout(2000);
  // Open the newest accepted updates: each names the agent that sent it (its identity).
  const accepted = ui.getByText('Workflow Execution Update Accepted', { exact: true });
  for (let i = 0; i < Math.min(2, await accepted.count()); i++) await accepted.nth(i).click();
  await ui.waitForTimeout(500);
  await accepted.first().scrollIntoViewIfNeeded();
  await ui.mouse.wheel(0, -250);
  await ui.waitForTimeout(500);
  await ui.screenshot({ path: 'docs/temporal-history.png' });
  if (process.env.DUMP_UI) writeFileSync('/tmp/ui.html', await ui.content());
  process.stdout.write(`wrote docs/board.png, docs/story-page.png, docs/temporal-history.png (${workflowId})\n`);
} finally {
  await browser.close();
  await stack.stop();
  await server.stop();
}
