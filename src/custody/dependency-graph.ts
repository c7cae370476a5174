/** Dependency graphs between stories: a cycle would leave its stories blocked forever. */

/** Returns one cycle (its nodes, first repeated at the end) or null. Iterative DFS: no stack limit. */
export function findCycle(edges: Iterable<readonly [from: string, to: string]>): string[] | null {
  const next = new Map<string, string[]>();
  for (const [from, to] of edges) {
    if (!next.has(from)) next.set(from, []);
    next.get(from)!.push(to);
  }
  const WHITE = 0,
    GREY = 1,
    BLACK = 2;
  const color = new Map<string, number>();
  for (const start of next.keys()) {
    if ((color.get(start) ?? WHITE) !== WHITE) continue;
    const path: string[] = [start];
    const cursors: number[] = [0];
    color.set(start, GREY);
    while (path.length > 0) {
      const node = path[path.length - 1];
      const children = next.get(node) ?? [];
      const i = cursors[cursors.length - 1];
      if (i >= children.length) {
        color.set(node, BLACK);
        path.pop();
        cursors.pop();
        continue;
      }
      cursors[cursors.length - 1] = i + 1;
      const child = children[i];
      const c = color.get(child) ?? WHITE;
      if (c === GREY) return [...path.slice(path.indexOf(child)), child];
      if (c === WHITE) {
        color.set(child, GREY);
        path.push(child);
        cursors.push(0);
      }
    }
  }
  return null;
}
