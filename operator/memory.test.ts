import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** A Node process that fills ~250 MiB of heap with small objects, drops them, then releases. */
const SCRIPT = `
const { releaseFreedPages } = await import(${JSON.stringify(new URL('./memory.ts', import.meta.url).href)});
let kept = [];
for (let i = 0; i < 3_000_000; i++) kept.push({ i, name: 'pod-' + i });
kept = [];
// Young garbage, so that full collections run and put the emptied pages in V8's pool.
for (let round = 0; round < 50; round++) Array.from({ length: 10_000 }, (_, j) => ({ j }));
const before = process.memoryUsage().rss;
releaseFreedPages();
console.log(JSON.stringify({ before, after: process.memoryUsage().rss }));
`;

describe('releaseFreedPages', () => {
  it('gives back the pages of a heap that was large, which full collections keep', () => {
    const out = execFileSync(
      process.execPath,
      ['--max-semi-space-size=2', '--input-type=module', '-e', SCRIPT],
      { encoding: 'utf8' },
    );
    const { before, after } = JSON.parse(out) as { before: number; after: number };
    const MiB = 2 ** 20;
    // The pool held what the objects took: the process stays near its peak until released.
    expect(before).toBeGreaterThan(200 * MiB);
    expect(after).toBeLessThan(before / 3);
  });
});
