/**
 * `custody init [dir]`: sets up a repository to be orchestrated through custody. It writes a
 * `.mcp.json` whose server is named `loopctl` (so `mcp__loopctl__*` calls work) and runs this
 * package's MCP server with the three keys, the keep-working Stop hook and the orchestrator
 * guardrail PreToolUse hook (as loopctl describes them), and a CLAUDE.md section. Given an admin
 * key it creates the project and its orchestrator, implementer and reviewer agents.
 *
 * Idempotent: what is already as it should be is left alone; a file of the user's that differs is
 * never replaced without `force` (a JSON file is merged: only the `loopctl` entries are ours).
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustodyApiError, CustodyClient } from '../clients/http.js';

export interface InitOptions {
  dir: string;
  url: string;
  adminKey?: string;
  projectName?: string;
  projectSlug?: string;
  /** Seconds a claim lives without a heartbeat (the project's lease_ttl_seconds; 0 = no lease). */
  leaseTtlSeconds?: number;
  /** Keys to write when no admin key is given (or to keep instead of registering new agents). */
  keys?: Partial<Record<KeyName, string>>;
  force?: boolean;
}

type KeyName = 'LOOPCTL_ORCH_KEY' | 'LOOPCTL_AGENT_KEY' | 'LOOPCTL_REVIEW_KEY';
export type FileOutcome = 'created' | 'updated' | 'unchanged' | 'kept (differs; --force replaces it)';

export interface InitResult {
  dir: string;
  project: { id: string; slug: string; created: boolean } | null;
  agents: { role: string; name: string; id: string }[];
  files: Record<string, FileOutcome>;
  warnings: string[];
}

/** The MCP server this package ships, as an absolute path: the repository need not install anything. */
const MCP_BIN = fileURLToPath(new URL('../../bin/custody-mcp.js', import.meta.url));

const SECTION_BEGIN = '<!-- custody:begin (written by `custody init`; edit outside these markers) -->';
const SECTION_END = '<!-- custody:end -->';

export async function initRepository(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const result: InitResult = { dir, project: null, agents: [], files: {}, warnings: [] };
  const mcpPath = join(dir, '.mcp.json');
  const existingMcp = await readJson(mcpPath);
  const existingEnv = (existingMcp?.mcpServers as Record<string, { env?: Record<string, string> }> | undefined)?.loopctl
    ?.env;

  const env: Record<string, string> = { LOOPCTL_SERVER: options.url };
  const keys: Partial<Record<KeyName, string>> = { ...options.keys };
  let projectId = existingEnv?.LOOPCTL_PROJECT_ID;
  if (options.adminKey) {
    const admin = new CustodyClient(options.url, options.adminKey);
    const slug = options.projectSlug ?? slugOf(options.projectName ?? basename(dir));
    const project = await ensureProject(admin, {
      name: options.projectName ?? basename(dir),
      slug,
      lease_ttl_seconds: options.leaseTtlSeconds,
    });
    result.project = project;
    projectId = project.id;
    // Keys already written for this project are kept: a rerun does not mint new agents.
    const haveKeys =
      existingEnv?.LOOPCTL_PROJECT_ID === project.id &&
      KEY_NAMES.every((k) => typeof existingEnv?.[k] === 'string' && existingEnv[k] !== '');
    const otherProject = existingEnv !== undefined && existingEnv.LOOPCTL_PROJECT_ID !== project.id;
    if (haveKeys && !options.force) {
      for (const k of KEY_NAMES) keys[k] ??= existingEnv[k];
    } else if (otherProject && !options.force) {
      // .mcp.json will be kept as it is: agents minted now would have keys nobody ever sees.
      result.warnings.push(
        `.mcp.json already configures loopctl for another project (${existingEnv.LOOPCTL_PROJECT_ID ?? 'none'}): no agents registered; --force replaces it.`,
      );
    } else {
      for (const [keyName, role, suffix] of AGENTS) {
        if (keys[keyName]) continue;
        const name = `${slug}-${suffix}`;
        const registered = await admin.post<{ agent: { id: string }; api_key: { key: string } }>('/agents/register', {
          name,
          role,
        });
        keys[keyName] = registered.api_key.key;
        result.agents.push({ role: suffix, name, id: registered.agent.id });
      }
    }
  } else {
    for (const k of KEY_NAMES) keys[k] ??= existingEnv?.[k];
  }
  for (const k of KEY_NAMES) {
    if (keys[k]) env[k] = keys[k];
    else result.warnings.push(`${k} is not set: give --admin-key to create the agents, or set ${k}.`);
  }
  if (projectId) env.LOOPCTL_PROJECT_ID = projectId;

  // .mcp.json: our server entry, others' untouched.
  const server = { command: 'node', args: [MCP_BIN], env };
  result.files['.mcp.json'] = await mergeJson(
    mcpPath,
    existingMcp,
    (doc) => {
      const servers = (doc.mcpServers ?? {}) as Record<string, unknown>;
      return { ...doc, mcpServers: { ...servers, loopctl: server } };
    },
    (doc) => (doc.mcpServers as Record<string, unknown> | undefined)?.loopctl,
    options.force,
  );
  // It holds keys: readable by its owner only.
  await chmod(mcpPath, 0o600);

  // The hooks and their registration in .claude/settings.json.
  const hooksDir = join(dir, '.claude', 'hooks');
  result.files['.claude/hooks/Stop/keep-working.sh'] = await writeOwned(
    join(hooksDir, 'Stop', 'keep-working.sh'),
    KEEP_WORKING_HOOK,
    options.force,
    0o755,
  );
  result.files['.claude/hooks/PreToolUse/orchestrator-guardrail.sh'] = await writeOwned(
    join(hooksDir, 'PreToolUse', 'orchestrator-guardrail.sh'),
    GUARDRAIL_HOOK,
    options.force,
    0o755,
  );
  const settingsPath = join(dir, '.claude', 'settings.json');
  result.files['.claude/settings.json'] = await mergeJson(
    settingsPath,
    await readJson(settingsPath),
    (doc) => withHooks(doc),
    (doc) => JSON.stringify(doc.hooks ?? null),
    // Adding our hooks to the user's is a merge, not a replacement: no force needed.
    true,
  );

  // CLAUDE.md: our section between markers; the rest of the file is the user's.
  result.files['CLAUDE.md'] = await writeSection(join(dir, 'CLAUDE.md'), claudeSection(projectId), options.force);
  return result;
}

const KEY_NAMES: KeyName[] = ['LOOPCTL_ORCH_KEY', 'LOOPCTL_AGENT_KEY', 'LOOPCTL_REVIEW_KEY'];
const AGENTS: [KeyName, 'orchestrator' | 'agent', string][] = [
  ['LOOPCTL_ORCH_KEY', 'orchestrator', 'orchestrator'],
  ['LOOPCTL_AGENT_KEY', 'agent', 'implementer'],
  ['LOOPCTL_REVIEW_KEY', 'agent', 'reviewer'],
];

function slugOf(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return slug || 'project';
}

async function ensureProject(
  admin: CustodyClient,
  body: { name: string; slug: string; lease_ttl_seconds?: number },
): Promise<{ id: string; slug: string; created: boolean }> {
  try {
    const created = await admin.post<{ id: string; slug: string }>(
      '/projects',
      Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)),
    );
    return { id: created.id, slug: created.slug, created: true };
  } catch (err) {
    if (!(err instanceof CustodyApiError) || err.status !== 409) throw err;
    // The project exists (a rerun): use it.
    const projects = await admin.get<{ id: string; slug: string }[]>('/projects');
    const found = projects.find((p) => p.slug === body.slug);
    if (!found) throw err;
    return { id: found.id, slug: found.slug, created: false };
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  const text = await readText(path);
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Not JSON: handled below.
  }
  throw new InitError(`${path} exists but is not a JSON object: fix or remove it, then run custody init again.`);
}

export class InitError extends Error {}

/**
 * Updates our part of a JSON file. When our part is already there and differs, it is replaced only
 * with `force`; when absent it is added, the user's other entries kept.
 */
async function mergeJson(
  path: string,
  existing: Record<string, unknown> | null,
  change: (doc: Record<string, unknown>) => Record<string, unknown>,
  ours: (doc: Record<string, unknown>) => unknown,
  force = false,
): Promise<FileOutcome> {
  const next = change(existing ?? {});
  if (existing !== null) {
    if (JSON.stringify(ours(existing)) === JSON.stringify(ours(next))) return 'unchanged';
    if (ours(existing) !== undefined && !force) return 'kept (differs; --force replaces it)';
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  return existing === null ? 'created' : 'updated';
}

async function writeOwned(path: string, content: string, force = false, mode = 0o644): Promise<FileOutcome> {
  const existing = await readText(path);
  if (existing === content) return 'unchanged';
  if (existing !== null && !force) return 'kept (differs; --force replaces it)';
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content, { mode });
  await chmod(path, mode);
  return existing === null ? 'created' : 'updated';
}

async function writeSection(path: string, section: string, force = false): Promise<FileOutcome> {
  const existing = await readText(path);
  const block = `${SECTION_BEGIN}\n${section}${SECTION_END}\n`;
  if (existing === null) {
    await writeFile(path, block);
    return 'created';
  }
  const start = existing.indexOf(SECTION_BEGIN);
  const end = existing.indexOf(SECTION_END);
  if (start === -1 || end === -1) {
    await writeFile(path, `${existing}${existing.endsWith('\n') || existing === '' ? '' : '\n'}\n${block}`);
    return 'updated';
  }
  const current = existing.slice(start, end + SECTION_END.length + 1);
  if (current === block) return 'unchanged';
  if (!force) return 'kept (differs; --force replaces it)';
  await writeFile(path, existing.slice(0, start) + block + existing.slice(end + SECTION_END.length + 1));
  return 'updated';
}

const HOOK_COMMANDS = {
  Stop: '"$CLAUDE_PROJECT_DIR"/.claude/hooks/Stop/keep-working.sh',
  PreToolUse: '"$CLAUDE_PROJECT_DIR"/.claude/hooks/PreToolUse/orchestrator-guardrail.sh',
};

interface HookGroup {
  matcher?: string;
  hooks: { type: string; command: string }[];
}

/** The settings with our two hooks registered once, whatever else the user has there. */
function withHooks(doc: Record<string, unknown>): Record<string, unknown> {
  const hooks = { ...((doc.hooks ?? {}) as Record<string, HookGroup[]>) };
  const add = (event: keyof typeof HOOK_COMMANDS, matcher?: string) => {
    const groups = hooks[event] ?? [];
    const present = groups.some((g) => g.hooks?.some((h) => h.command === HOOK_COMMANDS[event]));
    if (!present)
      hooks[event] = [
        ...groups,
        { ...(matcher ? { matcher } : {}), hooks: [{ type: 'command', command: HOOK_COMMANDS[event] }] },
      ];
  };
  add('Stop');
  add('PreToolUse', 'Edit|Write|MultiEdit|NotebookEdit');
  return { ...doc, hooks };
}

function claudeSection(projectId: string | undefined): string {
  const project = projectId ?? '<project id>';
  return `## CRITICAL: Load Orchestration State

At the start of every session, and after every compaction:

    mcp__loopctl__get_progress({project_id: "${project}"})
    mcp__loopctl__list_stories({project_id: "${project}", status: "ready"})

The stories, their states and their history live in custody (the \`loopctl\` MCP server), not in
this conversation: read them there before deciding anything.

## Chain of Custody (enforced by the service, not by trust)

- An implementer contracts (\`contract_story\`: exact title and number of acceptance criteria),
  claims, starts, and asks for review. It never reports, reviews or verifies its own story: those
  calls answer 409 (\`self_report_blocked\`, \`self_review_blocked\`, \`self_verify_blocked\`).
- A reviewer (another agent, LOOPCTL_REVIEW_KEY) reports and records the review
  (\`review_complete\`: fixes_count + disproved_count = findings_count).
- The orchestrator (LOOPCTL_ORCH_KEY) verifies, and never verifies what it reviewed
  (\`verifier_is_reviewer\`).
- A claim lasts the project's \`lease_ttl_seconds\` without a heartbeat; the MCP server keeps the
  claims of its agent key alive while it runs. A call refused with \`lease_expired\` means the claim
  ran out: claim the story again.
- Every tool error says its code, context and the next step: follow it rather than work around it.

## Orchestrator sessions

The orchestrator coordinates; agents write code. An orchestrator session marks itself with
\`touch ~/.claude/.orchestrator-active-<session id>\`: then the PreToolUse hook refuses Edit and
Write, and the Stop hook refuses to stop while stories of the project are not verified.
`;
}

/** loopctl's keep-working Stop hook, pointed at this service through .mcp.json. */
const KEEP_WORKING_HOOK = `#!/usr/bin/env bash
# .claude/hooks/Stop/keep-working.sh (written by \`custody init\`)
# Prevents an orchestrator session from stopping while stories remain: stories of the project that
# are not verified (or, with no project configured, stories ready to be worked on).
# Exit 2: the stop is refused and stderr goes to the model. Exit 0: not an orchestrator session,
# nothing remains, or the service cannot say (a hook must never trap a session).
set -u
input=$(cat)
session_id=$(printf '%s' "$input" | jq -r '.session_id // ""' 2>/dev/null)
[ -f "$HOME/.claude/.orchestrator-active-$session_id" ] || exit 0

root=$(cd "$(dirname "$0")/../../.." && pwd)
config="$root/.mcp.json"
setting() { jq -r --arg k "$1" '.mcpServers.loopctl.env[$k] // empty' "$config" 2>/dev/null; }
server=$(setting LOOPCTL_SERVER)
key=$(setting LOOPCTL_ORCH_KEY)
project=$(setting LOOPCTL_PROJECT_ID)
[ -n "$server" ] && [ -n "$key" ] || exit 0

count() {
  curl -sf --max-time 10 -H "Authorization: Bearer $key" "$server/api/v1/$1" | jq '.data | length' 2>/dev/null
}
if [ -n "$project" ]; then
  unverified=$(count "stories?project_id=$project&verified_status=unverified&limit=1") || exit 0
  rejected=$(count "stories?project_id=$project&verified_status=rejected&limit=1") || exit 0
  remaining=$(( \${unverified:-0} + \${rejected:-0} ))
else
  remaining=$(count "stories/ready?limit=1") || exit 0
fi
if [ "\${remaining:-0}" -gt 0 ]; then
  echo "Stories remain unverified in custody: load the state (mcp__loopctl__get_progress, mcp__loopctl__list_stories) and keep working." >&2
  exit 2
fi
exit 0
`;

/** loopctl's orchestrator guardrail PreToolUse hook. */
const GUARDRAIL_HOOK = `#!/usr/bin/env bash
# .claude/hooks/PreToolUse/orchestrator-guardrail.sh (written by \`custody init\`)
# Blocks Edit/Write/MultiEdit/NotebookEdit when the orchestrator sentinel is active.
# The orchestrator coordinates; agents write code.
input=$(cat)
tool_name=$(printf '%s' "$input" | jq -r '.tool_name // ""' 2>/dev/null)
session_id=$(printf '%s' "$input" | jq -r '.session_id // ""' 2>/dev/null)

if [ -f "$HOME/.claude/.orchestrator-active-$session_id" ]; then
  case "$tool_name" in
    Edit|Write|MultiEdit|NotebookEdit)
      echo "BLOCKED: Orchestrator cannot write code. Dispatch a sub-agent." >&2
      exit 2 ;;
  esac
fi
exit 0
`;
