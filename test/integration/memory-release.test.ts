import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fragmented, type OldGeneration } from '../../operator/memory.ts';

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

/**
 * A Node process that fills ~60 MiB of old generation with small objects, then drops every other
 * one: a full collection leaves its pages half used, which V8 does not compact on its own. With
 * `watch`, it then starts releaseWhenFragmented and runs two young collections, then a full one.
 */
const FRAGMENTING_SCRIPT = `
import { getHeapSpaceStatistics } from 'node:v8';
const { releaseWhenFragmented } = await import(${JSON.stringify(new URL('../../operator/memory.ts', import.meta.url).href)});
const logged = [];
const record = (msg) => logged.push(msg);
const log = { debug: record, info: record, warn: record, error: record };
const oldGeneration = () => {
  const old = getHeapSpaceStatistics().find((space) => space.space_name === 'old_space');
  return { committedBytes: old.space_size, usedBytes: old.space_used_size };
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Global, so that V8 cannot find the array dead before the end.
globalThis.objects = [];
for (let i = 0; i < 400_000; i++) objects.push({ i, name: 'pod-' + i, ports: [i] });
gc();
gc();
for (let i = 0; i < objects.length; i += 2) objects[i] = null;
gc();
const afterCollection = oldGeneration();
// Node hands a collection's entry to observers in a later turn of the event loop: let this one
// pass before the watch starts.
await sleep(100);
let afterYoung = [];
if (process.argv.includes('watch')) {
  const stop = releaseWhenFragmented({ log });
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  await sleep(200);
  afterYoung = [...logged];
  gc();
  const deadline = Date.now() + 2_000;
  while (logged.length === 0 && Date.now() < deadline) await sleep(20);
  stop();
}
console.log(JSON.stringify({ afterCollection, afterYoung, later: oldGeneration(), logged }));
`;

interface FragmentingRun {
  afterCollection: OldGeneration;
  /** What the watch logged after the young collections. */
  afterYoung: string[];
  later: OldGeneration;
  logged: string[];
}

function runFragmenting(...args: string[]): FragmentingRun {
  const out = execFileSync(
    process.execPath,
    [
      '--max-semi-space-size=2',
      '--expose-gc',
      '--input-type=module',
      '-e',
      FRAGMENTING_SCRIPT,
      '--',
      ...args,
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(out) as FragmentingRun;
}

describe('releaseWhenFragmented', () => {
  it('compacts an old generation that a full collection left half used, which V8 alone keeps', () => {
    const alone = runFragmenting();
    expect(fragmented(alone.afterCollection)).toBe(true);
    expect(fragmented(alone.later)).toBe(true);

    const watched = runFragmenting('watch');
    expect(fragmented(watched.afterCollection)).toBe(true);
    // Young collections leave the old generation as it was: only a full one starts a release.
    expect(watched.afterYoung).toEqual([]);
    expect(watched.logged).toEqual([
      'compacted the heap and returned its unused pages to the system',
    ]);
    // ~30 MiB live on ~60 MiB of pages; the release's two collections move most of it.
    expect(fragmented(watched.later)).toBe(false);
    const MiB = 2 ** 20;
    expect(watched.later.committedBytes).toBeLessThan(
      watched.afterCollection.committedBytes - 16 * MiB,
    );
  });
});
