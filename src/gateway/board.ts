/**
 * The board: what ops and orchestrators look at. Sign in with an API key, which opens a session
 * (an HttpOnly, SameSite=Strict cookie; the key itself never stays in the browser), scoped to the
 * key's tenant: every query below takes the session's tenant id, so another tenant's stories are
 * not found, not merely hidden. Sign-out is a POST carrying the session's CSRF token; sign-in
 * refuses a cross-site Origin. The pages are rendered on the server; a small script refreshes them.
 */
import express, { type Express, type Request, type Response } from 'express';
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { Config } from '../config.js';
import { callerForKey } from '../db/identity-repo.js';
import { looksLikeKey } from '../db/keys.js';
import {
  agentNames,
  boardSession,
  boardStories,
  boardStory,
  createBoardSession,
  endBoardSession,
  storyTimeline,
  type BoardSession,
} from '../db/board-repo.js';
import { listEpics, listProjects } from '../db/story-repo.js';
import { storyQuery } from '../../workflows/messages.js';
import { BOARD_CSS, BOARD_JS } from './board-assets.js';
import {
  BOARD_COLUMNS,
  boardMain,
  boardPage,
  isHeld,
  notFoundPage,
  signInPage,
  storyMain,
  storyPage,
  type BoardFilters,
  type Names,
  type PageFrame,
} from './board-views.js';

const SESSION_COOKIE = 'custody_board';
const LEASE_CACHE_MS = 2000;

export interface BoardDeps {
  config: Config;
  pool: pg.Pool;
  client: Client;
}

/** The cookie's value; null when absent, or when it is not valid percent-encoding (no session, not a 500). */
function cookieOf(req: Request, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

function sessionCookie(req: Request, value: string, maxAgeSeconds: number): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSeconds}`,
    ...(req.secure ? ['Secure'] : []),
  ].join('; ');
}

/** A browser sends Origin with every POST form; one from another site is a forged request. */
function sameOrigin(req: Request): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return req.headers['sec-fetch-site'] !== 'cross-site';
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

const HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'Cache-Control': 'no-store',
  // Same-origin: a form's Origin header must be sent (no-referrer makes it "null"); other sites get nothing.
  'Referrer-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
};

const str = (v: unknown) => (typeof v === 'string' && v.length <= 200 ? v : undefined);

export function boardRoutes(app: Express, deps: BoardDeps): void {
  const { pool, client, config } = deps;
  const leases = new Map<string, { at: number; until: number | null }>();

  /** When a held story's claim lease ends, as the workflow says (the database keeps only the earliest it may). */
  async function leaseOf(workflowId: string): Promise<number | null> {
    const cached = leases.get(workflowId);
    if (cached && Date.now() - cached.at < LEASE_CACHE_MS) return cached.until;
    let until: number | null = null;
    try {
      const view = await client.withDeadline(Date.now() + 1500, () =>
        client.workflow.getHandle(workflowId).query(storyQuery),
      );
      until = view.leaseExpiresAt;
    } catch {
      // No badge rather than no board.
    }
    if (leases.size > 10_000) leases.clear();
    leases.set(workflowId, { at: Date.now(), until });
    return until;
  }

  async function namesFor(tenantId: string): Promise<Names & { list: { id: string; name: string }[] }> {
    const names = await agentNames(pool, tenantId);
    return {
      of: (id) => (id ? (names.get(id) ?? 'unknown agent') : '—'),
      list: [...names].map(([id, name]) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name)),
    };
  }

  const frameOf = (session: BoardSession, title: string, liveUrl: string): PageFrame => ({
    title,
    tenantName: session.tenantName,
    agentName: session.agentName,
    role: session.role,
    csrfToken: session.csrfToken,
    liveUrl,
  });

  const send = (res: Response, status: number, markup: string) => {
    res.set(HEADERS).status(status).type('html').send(markup);
  };

  async function sessionOf(req: Request): Promise<BoardSession | null> {
    const token = cookieOf(req, SESSION_COOKIE);
    return token && /^[\w-]{43}$/.test(token) ? boardSession(pool, token) : null;
  }

  const fragment = (req: Request) => req.headers['x-board-fragment'] === '1';

  app.get('/board/board.css', (_req, res) => {
    res.set(HEADERS).type('text/css').send(BOARD_CSS);
  });
  app.get('/board/board.js', (_req, res) => {
    res.set(HEADERS).type('text/javascript').send(BOARD_JS);
  });

  const form = express.urlencoded({ extended: false, limit: '4kb' });

  app.post('/board/login', form, async (req, res) => {
    if (!sameOrigin(req)) return send(res, 403, signInPage('Sign in from this site only.'));
    const key = str((req.body as Record<string, unknown> | undefined)?.key)?.trim();
    const caller = key && looksLikeKey(key) ? await callerForKey(pool, key) : null;
    if (!caller) return send(res, 401, signInPage('That API key is not valid.'));
    const ttlMs = config.BOARD_SESSION_HOURS * 3_600_000;
    const token = await createBoardSession(pool, caller, ttlMs);
    res.set(HEADERS).setHeader('Set-Cookie', sessionCookie(req, token, ttlMs / 1000));
    res.redirect(303, '/');
  });

  app.post('/board/logout', form, async (req, res) => {
    const token = cookieOf(req, SESSION_COOKIE);
    const session = await sessionOf(req);
    if (session) {
      const csrf = str((req.body as Record<string, unknown> | undefined)?.csrf);
      if (!sameOrigin(req) || csrf !== session.csrfToken) return send(res, 403, signInPage('Sign out from the board.'));
      await endBoardSession(pool, token!);
    }
    res.set(HEADERS).setHeader('Set-Cookie', sessionCookie(req, '', 0));
    res.redirect(303, '/');
  });

  app.get('/', async (req, res) => {
    const session = await sessionOf(req);
    if (!session) return send(res, fragment(req) ? 401 : 200, signInPage());
    const projects = await listProjects(pool, session.tenantId);
    const project = projects.find((p) => p.slug === str(req.query.project)) ?? projects[0] ?? null;
    const filters: BoardFilters = {
      epic: str(req.query.epic) || undefined,
      agent: str(req.query.agent) || undefined,
      status: BOARD_COLUMNS.some(([s]) => s === req.query.status) ? (req.query.status as string) : undefined,
    };
    const [names, epics, stories] = await Promise.all([
      namesFor(session.tenantId),
      project ? listEpics(pool, session.tenantId, project.id) : [],
      project ? boardStories(pool, session.tenantId, project.id) : [],
    ]);
    const held = stories.filter(isHeld);
    const leaseMap = new Map(await Promise.all(held.map(async (s) => [s.id, await leaseOf(s.workflow_id)] as const)));
    const model = { projects, project, epics, stories, agents: names.list, filters, leases: leaseMap, names };
    if (fragment(req)) return send(res, 200, boardMain(model).markup);
    send(res, 200, boardPage(frameOf(session, project?.name ?? 'Board', req.originalUrl), model));
  });

  app.get('/board/stories/:id', async (req, res) => {
    const session = await sessionOf(req);
    if (!session) return send(res, fragment(req) ? 401 : 200, signInPage());
    const id = req.params.id;
    const story = /^[0-9a-f-]{36}$/i.test(id) ? await boardStory(pool, session.tenantId, id) : null;
    const project = story ? (await listProjects(pool, session.tenantId)).find((p) => p.id === story.project_id) : null;
    if (!story || !project) return send(res, 404, notFoundPage());
    const [names, timeline, leaseUntil] = await Promise.all([
      namesFor(session.tenantId),
      storyTimeline(pool, session.tenantId, story.id),
      isHeld(story) ? leaseOf(story.workflow_id) : null,
    ]);
    const temporalUrl = config.BOARD_TEMPORAL_LINKS
      ? `${config.TEMPORAL_UI_URL}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(story.workflow_id)}`
      : null;
    const model = { story, project, timeline, names, leaseUntil, temporalUrl };
    if (fragment(req)) return send(res, 200, storyMain(model).markup);
    send(res, 200, storyPage(frameOf(session, `${story.number} ${story.title}`, req.originalUrl), model));
  });
}
