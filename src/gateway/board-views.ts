/**
 * The board's pages, rendered on the server with `html` (every value escaped). A small script
 * (/board/board.js) refreshes the <main> part every few seconds; without it, the pages still work.
 */
import type { BoardStory, TimelineEntry } from '../db/board-repo.js';
import type { EpicRow, ProjectRow } from '../db/story-repo.js';
import { html, type Html } from './html.js';

/** One column per status, in the order a story moves. A verified story is in Verified, whatever its agent status. */
export const BOARD_COLUMNS = [
  ['pending', 'Pending'],
  ['contracted', 'Contracted'],
  ['assigned', 'Claimed'],
  ['implementing', 'Implementing'],
  ['review_requested', 'Awaiting review'],
  ['reported_done', 'Awaiting verification'],
  ['verified', 'Verified'],
] as const;

/** Whether the story is held now (claimed, or being implemented): the read model keeps the last assignee after. */
export const isHeld = (s: { assigned_agent_id: string | null; agent_status: string }): boolean =>
  s.assigned_agent_id !== null && (s.agent_status === 'assigned' || s.agent_status === 'implementing');

export const boardStatusOf = (s: { agent_status: string; verified_status: string }): string =>
  s.verified_status === 'verified' ? 'verified' : s.agent_status;

const time = (d: Date | number) => new Date(d).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 16) + ' UTC';

export interface PageFrame {
  title: string;
  tenantName: string;
  agentName: string;
  role: string;
  csrfToken: string;
  /** Where the script fetches the live <main> from. */
  liveUrl: string;
}

function page(frame: PageFrame, nav: Html, main: Html): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${frame.title} · custody</title>
        <link rel="stylesheet" href="/board/board.css" />
        <script src="/board/board.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">custody · board</a>
          <span class="who"
            >${frame.tenantName} · signed in as <strong>${frame.agentName}</strong> (${frame.role})</span
          >
          <form method="post" action="/board/logout" class="logout">
            <input type="hidden" name="csrf" value="${frame.csrfToken}" />
            <button type="submit">Sign out</button>
          </form>
        </header>
        ${nav}
        <main id="main" data-live="${frame.liveUrl}">${main}</main>
        <p id="live" class="muted" aria-live="polite"></p>
      </body>
    </html>`.markup;
}

export function signInPage(error?: string): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Sign in · custody</title>
        <link rel="stylesheet" href="/board/board.css" />
      </head>
      <body>
        <main id="main" class="signin">
          <h1>custody · board</h1>
          <p>Sign in with an API key of your tenant. The key is not kept in the browser: it opens a session.</p>
          ${error ? html`<p class="error" role="alert">${error}</p>` : null}
          <form method="post" action="/board/login">
            <label for="key">API key</label>
            <input id="key" name="key" type="password" autocomplete="off" required autofocus placeholder="cust_…" />
            <button type="submit">Sign in</button>
          </form>
        </main>
      </body>
    </html>`.markup;
}

export function notFoundPage(): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>Not found · custody</title>
        <link rel="stylesheet" href="/board/board.css" />
      </head>
      <body>
        <main id="main" class="signin">
          <h1>Not found</h1>
          <p>There is no such story here.</p>
          <p><a href="/">Back to the board</a></p>
        </main>
      </body>
    </html>`.markup;
}

export interface Names {
  of(agentId: string | null | undefined): string;
}

function chain(story: BoardStory, names: Names): Html {
  const links: [string, string | null][] = [
    ['implementer', story.implementer_agent_id],
    ['reporter', story.reported_by_agent_id],
    ['reviewer', story.reviewer_agent_id],
    ['verifier', story.verified_by_agent_id],
  ];
  return html`<ol class="chain" aria-label="custody chain">
    ${links.map(([role, id]) => html`<li data-role="${role}"><span class="role">${role}</span> ${names.of(id)}</li>`)}
  </ol>`;
}

function badges(story: BoardStory, leaseUntil: number | null | undefined): Html {
  return html`<span class="badges"
    >${[
      leaseUntil ? html`<span class="badge lease">lease until ${clock(leaseUntil)}</span>` : null,
      story.stalled ? html`<span class="badge stalled">stalled</span>` : null,
      story.verified_status === 'rejected'
        ? html`<span class="badge rejected">rejected, iteration ${story.iteration}</span>`
        : null,
      story.violations > 0
        ? html`<span class="badge violations">${story.violations} violation${story.violations === 1 ? '' : 's'}</span>`
        : null,
    ]}</span
  >`;
}

export interface BoardFilters {
  epic?: string;
  agent?: string;
  status?: string;
}

export interface BoardModel {
  projects: ProjectRow[];
  project: ProjectRow | null;
  epics: EpicRow[];
  stories: BoardStory[];
  agents: { id: string; name: string }[];
  filters: BoardFilters;
  leases: Map<string, number | null>;
  names: Names;
}

const involves = (s: BoardStory, agentId: string) =>
  [
    s.assigned_agent_id,
    s.implementer_agent_id,
    s.reported_by_agent_id,
    s.reviewer_agent_id,
    s.verified_by_agent_id,
  ].includes(agentId);

export function boardMain(m: BoardModel): Html {
  if (!m.project) return html`<p>No projects yet.</p>`;
  const { filters } = m;
  const shown = m.stories.filter(
    (s) =>
      (!filters.epic || String(s.epic_number) === filters.epic) &&
      (!filters.agent || involves(s, filters.agent)) &&
      (!filters.status || boardStatusOf(s) === filters.status),
  );
  const epics = m.epics.map((e) => {
    const of = m.stories.filter((s) => s.epic_number === e.number);
    const verified = of.filter((s) => s.verified_status === 'verified').length;
    const percent = of.length === 0 ? 0 : Math.round((verified / of.length) * 1000) / 10;
    return html`<div class="epic" data-epic="${e.number}">
      <span id="epic-${e.number}">Epic ${e.number} · ${e.title}</span>
      <progress aria-labelledby="epic-${e.number}" max="${of.length || 1}" value="${verified}">${percent}%</progress>
      <span class="count">${verified}/${of.length} verified</span>
    </div>`;
  });
  const columns = BOARD_COLUMNS.filter(([status]) => !filters.status || filters.status === status).map(
    ([status, label]) => {
      const cards = shown.filter((s) => boardStatusOf(s) === status);
      return html`<section class="column" data-status="${status}" aria-labelledby="col-${status}">
        <h2 id="col-${status}">${label} <span class="muted">(${cards.length})</span></h2>
        <ol class="cards">
          ${cards.map(
            (s) =>
              html`<li>
                <a class="card" href="/board/stories/${s.id}" data-story="${s.number}">
                  <span class="head"><span class="num">${s.number}</span> <span class="title">${s.title}</span></span>
                  <span class="holder"
                    >${isHeld(s) ? html`held by ${m.names.of(s.assigned_agent_id)}` : 'not held'}</span
                  >
                  ${badges(s, m.leases.get(s.id))} ${chain(s, m.names)}
                </a>
              </li>`,
          )}
        </ol>
      </section>`;
    },
  );
  return html`<h1>${m.project.name}</h1>
    <section class="epics" aria-label="Epic progress">${epics}</section>
    <p class="muted">${shown.length} of ${m.stories.length} stories shown</p>
    <div class="columns">${columns}</div>`;
}

export function boardPage(frame: PageFrame, m: BoardModel): string {
  const selected = (value: string | undefined, option: string) => (value === option ? html` selected` : null);
  const nav = html`<nav class="projects" aria-label="Projects">
      ${m.projects.map(
        (p) =>
          html`<a href="/?project=${p.slug}" ${p.id === m.project?.id ? html` aria-current="page"` : null}
            >${p.name}</a
          >`,
      )}
    </nav>
    ${
      m.project
        ? html`<form class="filters" method="get" action="/">
            <input type="hidden" name="project" value="${m.project.slug}" />
            <label
              >Epic
              <select name="epic">
                <option value="">all</option>
                ${m.epics.map(
                  (e) =>
                    html`<option value="${e.number}" ${selected(m.filters.epic, String(e.number))}>
                      ${e.number} · ${e.title}
                    </option>`,
                )}
              </select></label
            >
            <label
              >Agent
              <select name="agent">
                <option value="">all</option>
                ${m.agents.map(
                  (a) => html`<option value="${a.id}" ${selected(m.filters.agent, a.id)}>${a.name}</option>`,
                )}
              </select></label
            >
            <label
              >Status
              <select name="status">
                <option value="">all</option>
                ${BOARD_COLUMNS.map(
                  ([status, label]) =>
                    html`<option value="${status}" ${selected(m.filters.status, status)}>${label}</option>`,
                )}
              </select></label
            >
            <button type="submit">Filter</button>
            <a href="/?project=${m.project.slug}">Clear</a>
          </form>`
        : null
    }`;
  return page(frame, nav, boardMain(m));
}

export interface StoryModel {
  story: BoardStory & { review: Record<string, unknown> | null };
  project: ProjectRow;
  timeline: TimelineEntry[];
  names: Names;
  leaseUntil: number | null;
  /** The story's history in the Temporal UI, for operators only (BOARD_TEMPORAL_LINKS). */
  temporalUrl: string | null;
}

/** An artifact is shown as a link only when it is an http(s) URL; anything else stays text. */
function artifactOf(value: unknown): Html {
  if (typeof value !== 'string' || value === '') return html`<span class="muted">none reported</span>`;
  return /^https?:\/\//i.test(value) ? html`<a href="${value}" rel="noopener noreferrer">${value}</a>` : html`${value}`;
}

export function storyMain(m: StoryModel): Html {
  const { story } = m;
  const report = [...m.timeline].reverse().find((e) => e.outcome === 'accepted' && e.action === 'report');
  const review = story.review;
  const rows = m.timeline.map((e) => {
    const who = e.actor_agent_id ? `${m.names.of(e.actor_agent_id)} (${e.actor_role ?? ''})` : 'time';
    const change =
      e.outcome === 'accepted'
        ? e.from_agent_status === e.to_agent_status && e.from_verified_status === e.to_verified_status
          ? `${e.to_agent_status ?? ''} / ${e.to_verified_status ?? ''}`
          : `${e.from_agent_status ?? ''} / ${e.from_verified_status ?? ''} → ${e.to_agent_status ?? ''} / ${e.to_verified_status ?? ''}`
        : `refused: ${e.code ?? 'rejected'}`;
    return html`<li class="entry ${e.outcome}" data-outcome="${e.outcome}" data-action="${e.action}">
      <time datetime="${new Date(e.occurred_at).toISOString()}">${time(e.occurred_at)}</time>
      <span class="outcome">${e.outcome}</span>
      <span class="action">${e.action}</span> by <span class="actor">${who}</span>
      <span class="change">${change}</span>
      ${e.seq ? html`<span class="muted">seq ${e.seq}</span>` : null}
    </li>`;
  });
  return html`<p><a href="/?project=${m.project.slug}">← ${m.project.name}</a></p>
    <h1><span class="num">${story.number}</span> ${story.title}</h1>
    <dl class="facts">
      <dt>Status</dt>
      <dd class="status">${story.agent_status} / ${story.verified_status}, iteration ${story.iteration}</dd>
      <dt>Held by</dt>
      <dd>${isHeld(story) ? m.names.of(story.assigned_agent_id) : 'nobody'}</dd>
      <dt>Badges</dt>
      <dd>${badges(story, m.leaseUntil)}</dd>
      <dt>Custody chain</dt>
      <dd>${chain(story, m.names)}</dd>
      <dt>Artifact</dt>
      <dd class="artifact">${artifactOf(report?.payload?.artifact)}</dd>
      <dt>Review</dt>
      <dd class="review">
        ${
          review
            ? html`${String(review.review_type)} review by ${m.names.of(String(review.reviewer_agent_id))} (iteration
                ${String(review.iteration)}): ${String(review.findings_count)} findings, ${String(review.fixes_count)}
                fixed, ${String(review.disproved_count)} disproved. <q>${String(review.summary)}</q>`
            : html`<span class="muted">not reviewed</span>`
        }
      </dd>
      ${
        m.temporalUrl
          ? html`<dt>Temporal</dt>
              <dd><a class="temporal" href="${m.temporalUrl}" rel="noopener">history in the Temporal UI</a></dd>`
          : null
      }
    </dl>
    <h2>History <span class="muted">(${m.timeline.length} attempts, accepted and rejected)</span></h2>
    <ol class="timeline">
      ${rows}
    </ol>`;
}

export function storyPage(frame: PageFrame, m: StoryModel): string {
  return page(frame, html``, storyMain(m));
}
