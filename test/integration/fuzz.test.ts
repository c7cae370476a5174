/**
 * Hostile input, property-based (fast-check): thousands of malformed requests against every route
 * of the OpenAPI document (which a test in resources.test.ts holds equal to the router). Each
 * request is broken in at least one way that must refuse it (key, id, body, query, headers), and
 * may be well-formed in every other way, with a real key of any role and real ids of the
 * caller's own resources. Every answer must be a 4xx of the contract's vocabulary, with the
 * status its code maps to, within the timeout, disclosing nothing; afterwards no story, project,
 * agent, key or webhook has changed and no transition was accepted.
 *
 * FUZZ_RUNS sets the number of requests (default 2500); a failure prints fast-check's seed and
 * path, and FUZZ_SEED replays it.
 */
import { request as httpRequest } from 'node:http';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS, isErrorCode } from '../../src/custody/errors.js';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { disclosureIn } from '../support/disclosure.js';
import { startStack, type Stack } from '../support/stack.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2500);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const REQUEST_TIMEOUT_MS = 15_000;

interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** OpenAPI template, e.g. /api/v1/stories/{id}/claim. */
  template: string;
  auth: boolean;
  params: string[];
  /** Declared body properties and their JSON types (empty for a body of `{}`); null: no body. */
  body: Record<string, string> | null;
  query: string[];
  /** A page of the board (HTML, outside the API's JSON vocabulary): it must still never fail. */
  html: boolean;
}

let stack: Stack;
let team: Team;
let other: Team;
let routes: Route[];
/** A real id of the caller's tenant, by the collection the path parameter follows. */
const ownIds: Record<string, string> = {};
const foreignIds: Record<string, string> = {};
const rawKeys: string[] = [];
let revokedKey = '';

beforeAll(async () => {
  stack = await startStack({ env: { RATE_LIMIT_PER_MINUTE: '0' } });
  team = await createTeam(stack.api, 2, 'fuzz-a');
  other = await createTeam(stack.api, 1, 'fuzz-b');
  const backlog = (prefix: string) => ({
    epics: [
      {
        number: 1,
        title: 'Site',
        stories: [
          { number: '1.1', title: `${prefix} page`, acceptance_criteria: ['renders'] },
          {
            number: '1.2',
            title: `${prefix} form`,
            acceptance_criteria: ['submits', 'validates'],
            depends_on: ['1.1'],
          },
        ],
      },
    ],
  });
  const mine = [...(await importBacklog(stack.api, team, backlog('A'))).values()];
  const theirs = [...(await importBacklog(stack.api, other, backlog('B'))).values()];
  // One story in flight, so state-dependent routes have something to refuse.
  const [implementer] = team.agents;
  expect(
    (await stack.api.act(mine[0].id, 'contract', implementer.key, { story_title: mine[0].title, ac_count: 1 })).status,
  ).toBe(200);
  expect((await stack.api.act(mine[0].id, 'claim', implementer.key, {})).status).toBe(200);
  const hook = async (t: Team) =>
    (
      await stack.api.post('/api/v1/webhooks', t.admin.key, {
        url: 'http://127.0.0.1:9/hook',
        events: ['story.verified'],
      })
    ).body.data.id;
  const epics = async (t: Team) =>
    (await stack.api.get(`/api/v1/projects/${t.projectId}/epics`, t.admin.key)).body.data[0].id;
  Object.assign(ownIds, {
    stories: mine[0].id,
    projects: team.projectId,
    epics: await epics(team),
    agents: team.agents[0].id,
    api_keys: team.agents[1].keyId,
    webhooks: await hook(team),
  });
  Object.assign(foreignIds, {
    stories: theirs[0].id,
    projects: other.projectId,
    epics: await epics(other),
    agents: other.agents[0].id,
    api_keys: other.agents[0].keyId,
    webhooks: await hook(other),
  });
  const extra = await stack.api.post('/api/v1/agents/register', team.admin.key, { name: 'revoked', role: 'agent' });
  revokedKey = extra.body.data.api_key.key;
  expect(
    (await stack.api.call('DELETE', `/api/v1/api_keys/${extra.body.data.api_key.id}`, { key: team.admin.key })).status,
  ).toBe(200);
  rawKeys.push(
    ...[team, other].flatMap((t) => [t.admin.key, t.orchestrator.key, ...t.agents.map((a) => a.key)]),
    revokedKey,
  );

  const doc = (await stack.api.get('/api/v1/openapi')).body;
  routes = [];
  for (const [template, operations] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(operations)) {
      const schema = op.requestBody?.content?.['application/json']?.schema;
      const props = schema?.properties ?? (schema ? {} : null);
      routes.push({
        method: method.toUpperCase() as Route['method'],
        template,
        auth: (op.security ?? doc.security ?? []).length > 0,
        params: (op.parameters ?? []).filter((p: any) => p.in === 'path').map((p: any) => p.name),
        body: props && Object.fromEntries(Object.entries<any>(props).map(([k, v]) => [k, String(v.type ?? 'object')])),
        query: (op.parameters ?? []).filter((p: any) => p.in === 'query').map((p: any) => p.name),
        html: Object.values<any>(op.responses ?? {}).some((r) => r.content?.['text/html']),
      });
    }
  }
  // A public GET with no parameters (the OpenAPI document itself) has nothing to break.
  routes = routes.filter((r) => breaksFor(r).length > 0);
}, 120_000);
afterAll(async () => stack?.stop());

/** Everything a refused request must leave alone, as one comparable value. */
async function snapshot() {
  const q = async (sql: string) => (await stack.pool.query(sql)).rows;
  return {
    stories: await q(
      'SELECT id, agent_status, verified_status, assigned_agent_id, iteration, version FROM stories ORDER BY id',
    ),
    accepted: await q("SELECT count(*)::int AS n FROM audit_events WHERE outcome = 'accepted'"),
    tenants: await q('SELECT id, name FROM tenants ORDER BY id'),
    projects: await q('SELECT id, name, slug FROM projects ORDER BY id'),
    epics: await q('SELECT id, title FROM epics ORDER BY id'),
    agents: await q('SELECT id, name, role FROM agents ORDER BY id'),
    keys: await q('SELECT id, revoked_at FROM api_keys ORDER BY id'),
    dependencies: await q('SELECT story_id, depends_on_story_id FROM story_dependencies ORDER BY 1, 2'),
    webhooks: await q('SELECT id, url FROM webhooks ORDER BY id'),
  };
}

// ---- arbitraries -------------------------------------------------------------------------

const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    "' OR 1=1 --",
    "'; DROP TABLE stories; --",
    '"; SELECT pg_sleep(5); --',
    '$(reboot)',
    '../../etc/passwd',
    '%00',
    '\u0000',
    '\u202e',
    '<script>alert(1)</script>',
    '{{7*7}}',
    '${jndi:ldap://x}',
    'null',
    'undefined',
    '__proto__',
    'constructor',
  ),
  fc.nat({ max: 5000 }).map((n) => 'x'.repeat(n)),
);
const jsonOfWrongType = (declared: string): fc.Arbitrary<unknown> => {
  const byType: Record<string, fc.Arbitrary<unknown>> = {
    string: hostileString,
    number: fc.oneof(fc.double(), fc.integer(), fc.constantFrom(-1, -1e308, 1e308, 2 ** 53 + 1, -0)),
    integer: fc.oneof(
      fc.integer({ min: -2e9, max: -1 }),
      fc.double({ noInteger: true, noNaN: true }),
      fc.constantFrom(1e308, 2 ** 63),
    ),
    boolean: fc.boolean(),
    array: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }),
    object: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
    null: fc.constant(null),
  };
  // A value of any JSON type but the declared one (an integer field also refuses non-integers and negatives).
  const others = Object.entries(byType)
    .filter(([t]) => t !== declared && !(declared === 'number' && t === 'integer'))
    .map(([, a]) => a);
  return declared === 'integer' ? fc.oneof(byType.integer, ...others) : fc.oneof(...others);
};

const badId = fc.oneof(
  hostileString.filter((s) => s.length > 0),
  fc.constant(randomUUID()),
  fc.uuid(),
  fc.constantFrom(
    'foreign',
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '1',
    '-1',
    '1e9',
    'NaN',
    '%2e%2e%2f',
    '..',
  ),
);

type Break =
  | 'no-key'
  | 'bad-key'
  | 'revoked-key'
  | 'foreign-key-bad-id'
  | 'bad-id'
  | 'foreign-id'
  | 'extra-field'
  | 'not-object'
  | 'wrong-types'
  | 'invalid-json'
  | 'huge-body'
  | 'deep-json'
  | 'content-type'
  | 'invalid-utf8'
  | 'bad-idempotency-key'
  | 'unstorable-text'
  | 'bad-query'
  | 'forged-cursor'
  | 'blank-text';

/** Fields that must hold a letter or digit (names, titles, reasons, review types, summaries). */
const NOT_BLANK_FIELDS = ['name', 'title', 'reason', 'summary', 'review_type'];
/** Otherwise-valid values for the other fields of a body whose blank text is the only fault. */
const VALID_BESIDES: Record<string, unknown> = {
  slug: 'fuzz-blank',
  role: 'agent',
  number: 99,
  acceptance_criteria: [],
  findings_count: 0,
  fixes_count: 0,
  disproved_count: 0,
};

function breaksFor(route: Route): Break[] {
  const out: Break[] = [];
  if (route.auth) out.push('no-key', 'bad-key', 'revoked-key');
  if (route.params.length) out.push('bad-id', 'foreign-id', ...(route.auth ? (['foreign-key-bad-id'] as Break[]) : []));
  if (route.method === 'POST') {
    out.push(
      'extra-field',
      'not-object',
      'invalid-json',
      'huge-body',
      'deep-json',
      'content-type',
      'invalid-utf8',
      'unstorable-text',
    );
    if (route.body && Object.keys(route.body).length) out.push('wrong-types');
    // The Idempotency-Key header is read once the caller is known; signup has no caller.
    if (route.auth) out.push('bad-idempotency-key');
  }
  if (route.method === 'GET' && route.query.length) out.push('bad-query');
  if (route.method === 'GET' && route.query.includes('cursor')) out.push('forged-cursor');
  if (route.method === 'POST' && NOT_BLANK_FIELDS.some((f) => route.body && f in route.body)) out.push('blank-text');
  return out;
}

interface Case {
  route: Route;
  broken: Break;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

const collection = (template: string, param: string) => {
  const parts = template.split('/');
  return parts[parts.indexOf(`{${param}}`) - 1];
};

const caseArb: fc.Arbitrary<Case> = fc
  .constant(null)
  .chain(() => fc.constantFrom(...routes))
  .chain((route) =>
    fc
      .record({
        broken: fc.constantFrom(...breaksFor(route)),
        who: fc.constantFrom('admin', 'orchestrator', 'agent', 'other-agent'),
        badKey: fc.oneof(
          hostileString,
          fc.constantFrom(
            'cust_',
            'Bearer',
            team.admin.key.slice(0, -1),
            `${team.admin.key}x`,
            team.admin.key.toUpperCase(),
          ),
        ),
        badId,
        body: fc.option(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }), {
          nil: undefined,
        }),
        extra: fc.tuple(
          fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !(route.body && k in route.body)),
          fc.jsonValue({ maxDepth: 2 }),
        ),
        wrongTypes:
          route.body && Object.keys(route.body).length
            ? fc
                .record(Object.fromEntries(Object.entries(route.body).map(([k, t]) => [k, jsonOfWrongType(t)])), {
                  requiredKeys: [],
                })
                .filter((o) => Object.keys(o).length > 0)
            : fc.constant({}),
        notObject: fc.oneof(
          fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
          fc.string(),
          fc.double(),
          fc.boolean(),
          fc.constant(null),
        ),
        invalidJson: fc.constantFrom(
          '{',
          '{"a":}',
          "{'a':1}",
          '{"a":1,}',
          'NaN',
          '[1,2',
          '{"a":"\\x"}',
          '\u0000',
          '{"a":1}{"b":2}',
        ),
        depth: fc.integer({ min: 1000, max: 100_000 }),
        // JSON text the database cannot store: a NUL or a lone surrogate, in a value or a key.
        unstorable: fc.constantFrom('\\u0000', 'a\\u0000b', '\\ud800', 'x\\udfff', '\\udbff\\u0041'),
        unstorableInKey: fc.boolean(),
        contentType: fc.constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/json; charset=latin1',
          'application/xml',
          'application/json; charset=utf-16',
        ),
        idempotencyKey: fc.oneof(
          fc.string({ minLength: 129, maxLength: 400 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'a')),
          fc.constantFrom(' ', '\t', 'é'.repeat(3), 'ÿ'),
        ),
        query: fc.dictionary(
          fc.oneof(fc.constantFrom(...route.query, 'limit', 'cursor'), fc.string({ minLength: 1, maxLength: 10 })),
          fc.oneof(hostileString, fc.constantFrom('-1', '0', '1e999', '101', '1.5', 'abc', '', '[]', 'null')),
          { maxKeys: 4 },
        ),
        // At least one entry no query schema accepts (they all take a `limit` of 1..500 and no unknown names).
        queryBreak: fc.constantFrom<[string, string]>(
          ['limit', '-1'],
          ['limit', 'abc'],
          ['limit', '501'],
          ['limit', '1.5'],
          ['unknown_filter', '1'],
          ['__proto__', 'x'],
          ['limit[]', '1'],
        ),
        // Cursors are sealed: a readable one (the old format), a truncated or random one is refused.
        forgedCursor: fc.oneof(
          fc.constantFrom(
            Buffer.from('{"p":"1"}').toString('base64url'),
            Buffer.from('{"a":"1"}').toString('base64url'),
            Buffer.from('{"a":"999999999999999999"}').toString('base64url'),
            'A'.repeat(60),
            '',
          ),
          fc.uint8Array({ minLength: 1, maxLength: 120 }).map((b) => Buffer.from(b).toString('base64url')),
        ),
        // No letter or digit: invisible, spacing or punctuation only.
        blank: fc.constantFrom('\u200b', ' \u200b ', '--', '...', '\u00a0', '\u2060\u200c', '\t', '_', '\u3000'),
        idempotencyOk: fc.option(
          fc.string({ minLength: 1, maxLength: 20 }).map((s) => s.replace(/[^\x21-\x7e]/g, 'k')),
          { nil: undefined },
        ),
      })
      .map((g): Case => {
        const headers: Record<string, string> = {};
        const validKey = {
          admin: team.admin.key,
          orchestrator: team.orchestrator.key,
          agent: team.agents[0].key,
          'other-agent': team.agents[1].key,
        }[g.who];
        let key: string | null = validKey;
        if (g.broken === 'no-key') key = null;
        if (g.broken === 'bad-key') key = g.badKey;
        if (g.broken === 'revoked-key') key = revokedKey;
        if (g.broken === 'foreign-key-bad-id') key = other.orchestrator.key;
        if (key !== null && route.auth) headers.authorization = `Bearer ${key}`.replace(/[^\x20-\x7e]/g, '?');
        let path = route.template;
        for (const param of route.params) {
          const name = collection(route.template, param);
          let id = ownIds[name];
          if (g.broken === 'bad-id') id = g.badId === 'foreign' ? foreignIds[name] : g.badId;
          if (g.broken === 'foreign-id') id = foreignIds[name]!;
          // foreign-key-bad-id: tenant B's key on tenant A's real ids.
          path = path.replace(`{${param}}`, encodeURIComponent(id));
        }
        if (route.method === 'GET' && g.broken === 'bad-query') {
          const params = new URLSearchParams(g.query);
          params.set(...g.queryBreak);
          path += `?${params.toString()}`;
        }
        if (route.method === 'GET' && g.broken === 'forged-cursor')
          path += `?cursor=${encodeURIComponent(g.forgedCursor)}`;
        let body: Buffer | undefined;
        if (route.method === 'POST') {
          headers['content-type'] = 'application/json';
          let value: unknown = g.body ?? {};
          if (g.broken === 'extra-field') value = { ...(g.body ?? {}), [g.extra[0]]: g.extra[1] };
          if (g.broken === 'wrong-types') value = g.wrongTypes;
          if (g.broken === 'not-object') value = g.notObject;
          body = Buffer.from(JSON.stringify(value));
          if (g.broken === 'invalid-json') body = Buffer.from(g.invalidJson);
          if (g.broken === 'huge-body')
            body = Buffer.from(JSON.stringify({ ...(value as object), pad: 'x'.repeat(300 * 1024) }));
          if (g.broken === 'deep-json') body = Buffer.from('['.repeat(g.depth) + ']'.repeat(g.depth));
          if (g.broken === 'content-type') headers['content-type'] = g.contentType;
          if (g.broken === 'invalid-utf8')
            body = Buffer.concat([
              Buffer.from(`{"${g.extra[0].replace(/["\\]/g, '')}x":"`),
              Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]),
              Buffer.from('"}'),
            ]);
          if (g.broken === 'unstorable-text') {
            // Into a field the route takes when it has one, so only the text itself is wrong.
            const field = Object.keys(route.body ?? {})[0] ?? 'note';
            const inner = g.unstorableInKey ? `{"k${g.unstorable}":1}` : `"${g.unstorable}"`;
            body = Buffer.from(`{"${field}":${inner}}`);
          }
          if (g.broken === 'blank-text') {
            const fields = Object.keys(route.body ?? {});
            const value = Object.fromEntries(
              fields
                .filter((f) => NOT_BLANK_FIELDS.includes(f) || f in VALID_BESIDES)
                .map((f) => [f, NOT_BLANK_FIELDS.includes(f) ? g.blank : VALID_BESIDES[f]]),
            );
            body = Buffer.from(JSON.stringify(value));
          }
          if (g.broken === 'bad-idempotency-key') headers['idempotency-key'] = g.idempotencyKey;
          else if (g.idempotencyOk) headers['idempotency-key'] = `fuzz-${g.idempotencyOk}-${randomUUID()}`;
        }
        return { route, broken: g.broken, method: route.method, path, headers, body };
      }),
  );

// ---- sending --------------------------------------------------------------------------------

/** Node's http client: it sends any bytes (fetch would refuse some headers and re-encode bodies). */
function send(c: Case): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const url = new URL(stack.baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: c.method,
        path: c.path,
        headers: { ...c.headers, ...(c.body ? { 'content-length': String(c.body.length) } : {}) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // A server may answer an oversized body and close before reading it all: that answer counts.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET')
        return reject(new Error(`connection ${err.code} before an answer`));
      reject(err);
    });
    req.end(c.body);
  });
}

/** Why an answer is wrong, or null when it is a proper refusal. */
function verdict(answer: { status: number; text: string }, route: Route): string | null {
  // A board page answers a visitor without a session with its sign-in page, and a bad sign-in with
  // a 4xx page: never a 5xx, never a disclosure.
  if (route.html) return answer.status >= 500 ? `status ${answer.status}` : disclosureIn(answer.text, rawKeys);
  if (answer.status < 400 || answer.status >= 500) return `status ${answer.status}`;
  let parsed: any;
  try {
    parsed = JSON.parse(answer.text);
  } catch {
    return `not JSON: ${answer.text.slice(0, 120)}`;
  }
  const code = parsed?.error?.code;
  if (!isErrorCode(code)) return `code ${JSON.stringify(code)} is not in the vocabulary`;
  if (ERROR_STATUS[code] !== answer.status || parsed.error.status !== answer.status)
    return `code ${code} with status ${answer.status}`;
  if (typeof parsed.error.message !== 'string' || parsed.error.message.length === 0) return 'no message';
  return disclosureIn(answer.text, rawKeys);
}

describe('hostile input', () => {
  it(`refuses ${RUNS} malformed requests on every route with a 4xx of the vocabulary, and changes nothing`, async () => {
    const before = await snapshot();
    const byBreak: Record<string, number> = {};
    const byStatus: Record<string, number> = {};
    const routesHit = new Set<string>();
    let slowest = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const started = Date.now();
        const answer = await send(c);
        slowest = Math.max(slowest, Date.now() - started);
        byBreak[c.broken] = (byBreak[c.broken] ?? 0) + 1;
        byStatus[answer.status] = (byStatus[answer.status] ?? 0) + 1;
        routesHit.add(`${c.route.method} ${c.route.template}`);
        const wrong = verdict(answer, c.route);
        if (wrong) {
          const errors = stack.logs.filter((l) => l.startsWith('{"level":50')).slice(-1);
          throw new Error(
            `${c.method} ${c.path.slice(0, 200)} [${c.broken}] → ${wrong}${errors.length ? `\ngateway error log: ${errors[0].slice(0, 1500)}` : ''}`,
          );
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    console.log(
      `fuzz: ${RUNS} requests, ${routesHit.size}/${routes.length} routes, slowest ${slowest} ms\n  by break: ${JSON.stringify(byBreak)}\n  by status: ${JSON.stringify(byStatus)}`,
    );
    expect(await snapshot()).toEqual(before);
    expect(routesHit.size).toBe(routes.length);
    expect(Object.keys(byBreak).length).toBe(19);
  }, 600_000);

  it('answers a bare malformed request line or header without crashing, and serves the next request', async () => {
    const { Socket } = await import('node:net');
    const url = new URL(stack.baseUrl);
    const raw = (text: string) =>
      new Promise<string>((resolve) => {
        const socket = new Socket();
        let got = '';
        socket.setTimeout(5000, () => socket.destroy());
        socket.on('data', (d) => (got += d.toString('latin1')));
        socket.on('close', () => resolve(got));
        socket.on('error', () => resolve(got));
        socket.connect(Number(url.port), url.hostname, () => socket.end(text));
      });
    const answers = await Promise.all([
      raw('GET /api/v1/stories HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rb\r\n\r\n'),
      raw('GET /api/v1/stories%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      raw('POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{"a":1}'),
      raw(
        'POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\nzz\r\n',
      ),
      raw(`GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    ]);
    for (const answer of answers) {
      const status = Number(answer.split(' ')[1]);
      expect(status, answer.slice(0, 200)).toBeGreaterThanOrEqual(400);
      expect(status, answer.slice(0, 200)).toBeLessThan(500);
      expect(answer.toLowerCase()).not.toContain('set-cookie');
      expect(disclosureIn(answer, rawKeys)).toBeNull();
    }
    expect((await stack.api.get('/api/v1/tenants/me', team.admin.key)).status).toBe(200);
  });
});
