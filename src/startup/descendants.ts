/**
 * The last guard of "`npm start` leaves no process behind": after the orderly stops, whatever
 * this process still has below it in the process tree (a child a failed phase had just spawned,
 * a grandchild of one) is ended. Linux only (it reads /proc); elsewhere it finds nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Every live process below `root`, children before their own children. */
export function descendantsOf(root: number): number[] {
  const childrenOf = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The fields after the command name (which may hold spaces): state, ppid, ...
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const list = childrenOf.get(Number(ppid)) ?? [];
      list.push(Number(entry));
      childrenOf.set(Number(ppid), list);
    } catch {
      // Gone while we looked.
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of childrenOf.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pids: number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // Already gone.
    }
  }
}

/** SIGTERMs what is left below this process, then SIGKILLs what is still there after `graceMs`. */
export async function endDescendants(graceMs = 3000): Promise<number[]> {
  const left = descendantsOf(process.pid);
  if (left.length === 0) return [];
  signal(left, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && descendantsOf(process.pid).length > 0) {
    await new Promise((r) => setTimeout(r, 50));
  }
  signal(descendantsOf(process.pid), 'SIGKILL');
  return left;
}
