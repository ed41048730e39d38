import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * A Node process that fills ~250 MiB of heap with small objects and drops them; a full collection
 * frees them and V8 keeps their pages (`before`), until the release (`after`).
 */
const SCRIPT = `
const { releaseFreedPages } = await import(${JSON.stringify(new URL('../../operator/memory.ts', import.meta.url).href)});
let kept = [];
for (let i = 0; i < 3_000_000; i++) kept.push({ i, name: 'pod-' + i });
kept = [];
gc();
const before = process.memoryUsage().rss;
releaseFreedPages();
console.log(JSON.stringify({ before, after: process.memoryUsage().rss }));
`;

describe('releaseFreedPages', () => {
  it('gives back the pages of a heap that was large, which a full collection keeps', () => {
    const out = execFileSync(
      process.execPath,
      ['--max-semi-space-size=2', '--expose-gc', '--input-type=module', '-e', SCRIPT],
      { encoding: 'utf8' },
    );
    const { before, after } = JSON.parse(out) as { before: number; after: number };
    const MiB = 2 ** 20;
    // The collection freed the objects, and the process stays near its peak until released.
    expect(before).toBeGreaterThan(200 * MiB);
    expect(after).toBeLessThan(before / 3);
  });
});
