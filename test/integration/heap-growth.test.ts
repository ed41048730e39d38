import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * A Node process that keeps its last 300 batches of small objects (about 90 MB) while it
 * allocates ten times that, so full collections follow each other. It prints the largest heap V8
 * committed, read between batches, and the live heap after a last full collection.
 */
const script = (percent: number | undefined): string => `
const { getHeapStatistics } = await import('node:v8');
const { limitHeapGrowth } = await import(${JSON.stringify(new URL('../../operator/memory.ts', import.meta.url).href)});
if (${percent !== undefined}) limitHeapGrowth(${percent ?? 0});
const batches = [];
let committed = 0;
for (let i = 0; i < 3000; i++) {
  const batch = [];
  for (let j = 0; j < 2000; j++) batch.push({ i, name: 'pod-' + j, ports: [j, j + 1] });
  batches.push(batch);
  if (batches.length > 300) batches.shift();
  committed = Math.max(committed, getHeapStatistics().total_heap_size);
}
globalThis.gc();
console.log(JSON.stringify({ committed, live: getHeapStatistics().used_heap_size, kept: batches.length }));
`;

/** The largest committed heap over the live heap, for a heap growing percent or V8's own. */
function committedOverLive(percent: number | undefined): number {
  const out = execFileSync(
    process.execPath,
    // A fixed heap limit, so that V8's own factor may reach its largest (4) whatever the machine's
    // memory or the container's limit.
    [
      '--max-semi-space-size=1',
      '--max-old-space-size=4096',
      '--expose-gc',
      '--input-type=module',
      '-e',
      script(percent),
    ],
    { encoding: 'utf8' },
  );
  const { committed, live } = JSON.parse(out) as { committed: number; live: number };
  return committed / live;
}

describe('limitHeapGrowth', () => {
  it('bounds the committed heap by a small multiple of the live heap, where V8 alone goes far past', () => {
    // V8's own factor, for a program that allocates this fast: 4.6–6.3 times the live heap here.
    // The most of up to three runs.
    let most = 0;
    for (let run = 0; run < 3 && most <= 3.5; run++)
      most = Math.max(most, committedOverLive(undefined));
    expect(most).toBeGreaterThan(3.5);
    // Set after start, as kopek run sets it: 1.9–3.0 here for 10 and 20 percent. A full
    // collection's marking starts at the limit and this loop allocates on meanwhile, so the heap
    // passes the limit by more than the factor alone would say, and by more when the machine is
    // busy: the best of up to three runs.
    for (const percent of [10, 20]) {
      let best = Infinity;
      for (let run = 0; run < 3 && best >= 3.5; run++)
        best = Math.min(best, committedOverLive(percent));
      expect(best).toBeLessThan(3.5);
    }
  });
});
