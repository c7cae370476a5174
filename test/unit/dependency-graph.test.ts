/** Cycle detection for story dependencies: an oracle check on random graphs, and deep chains. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findCycle } from '../../src/custody/dependency-graph.js';

/** Reference answer: a graph has a cycle iff repeatedly removing nodes without outgoing edges leaves some. */
function hasCycle(edges: Array<[string, string]>): boolean {
  const remaining = new Set(edges.flat());
  let live = edges;
  for (;;) {
    const sinks = [...remaining].filter((node) => !live.some(([from]) => from === node));
    if (sinks.length === 0) return remaining.size > 0;
    for (const sink of sinks) remaining.delete(sink);
    live = live.filter(([, to]) => remaining.has(to));
  }
}

describe('findCycle', () => {
  it('finds none in a chain or a diamond', () => {
    expect(findCycle([])).toBeNull();
    expect(
      findCycle([
        ['a', 'b'],
        ['b', 'c'],
      ]),
    ).toBeNull();
    expect(
      findCycle([
        ['a', 'b'],
        ['a', 'c'],
        ['b', 'd'],
        ['c', 'd'],
      ]),
    ).toBeNull();
  });

  it('returns the cycle, first node repeated at the end', () => {
    expect(findCycle([['a', 'a']])).toEqual(['a', 'a']);
    expect(
      findCycle([
        ['x', 'a'],
        ['a', 'b'],
        ['b', 'c'],
        ['c', 'a'],
      ]),
    ).toEqual(['a', 'b', 'c', 'a']);
  });

  it('agrees with a reference on random graphs, and every cycle it returns is real', () => {
    const node = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
    fc.assert(
      fc.property(fc.array(fc.tuple(node, node), { maxLength: 12 }), (edges) => {
        const cycle = findCycle(edges);
        expect(cycle !== null).toBe(hasCycle(edges));
        if (cycle) {
          expect(cycle[0]).toBe(cycle[cycle.length - 1]);
          for (let i = 0; i + 1 < cycle.length; i++) {
            expect(edges.some(([from, to]) => from === cycle[i] && to === cycle[i + 1])).toBe(true);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('handles a 100,000-long chain without overflowing the stack', () => {
    const edges = Array.from({ length: 100_000 }, (_, i) => [`s${i}`, `s${i + 1}`] as [string, string]);
    expect(findCycle(edges)).toBeNull();
    edges.push(['s100000', 's0']);
    expect(findCycle(edges)).toHaveLength(100_002);
  });
});
