import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { parseManifests, renderChart } from '../chart/helm.ts';
import { operatorContainer } from '../chart/operator-command.ts';
import { residentByKindOf } from '../bench/scale/kopek-process.ts';
import { chartDefaults } from '../support/chart-values.ts';

// glibc gives each thread that allocates an arena of its own (up to 8 per core), and each keeps
// what it freed: the chart caps them (docs/decisions/0020-malloc-settings.md).

/** How many malloc arenas besides the main one a Node process has after threadpool work. */
async function arenasAfterThreadpoolWork(malloc: Record<string, string>): Promise<number> {
  // Compressing in parallel allocates from each of libuv's threadpool threads.
  const script = `
    const zlib = require('node:zlib');
    let left = 32;
    for (let i = 0; i < 32; i++)
      zlib.gzip(Buffer.alloc(1 << 20, i), () => { if (--left === 0) console.log('done'); });
    setTimeout(() => {}, 30_000);`;
  // Only the settings given: none inherited from this process.
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('MALLOC_'));
  const child = spawn(process.execPath, ['-e', script], {
    env: { ...Object.fromEntries(inherited), ...malloc },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await once(child.stdout, 'data');
    const kinds = residentByKindOf(child.pid ?? 0);
    if (kinds === undefined) throw new Error('the child process is gone');
    return kinds.mallocOtherArenaCount;
  } finally {
    child.kill();
  }
}

/** The kopek container's environment variables the chart renders with these values. */
async function renderedEnv(values?: Record<string, unknown>): Promise<Record<string, string>> {
  const deployment = parseManifests(await renderChart(values ? { values } : {})).find(
    (object) => object.kind === 'Deployment',
  );
  if (deployment === undefined) throw new Error('the chart rendered no Deployment');
  return Object.fromEntries(
    operatorContainer(deployment).env.flatMap(({ name, value }) =>
      value === undefined ? [] : [[name, value]],
    ),
  );
}

describe("kopek's malloc settings", () => {
  it('are in the environment the chart gives kopek; a variable set to null is left out', async () => {
    const malloc = chartDefaults().mallocEnv;
    expect(Object.keys(malloc).sort()).toEqual(['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_']);
    expect(await renderedEnv()).toMatchObject(malloc);
    const env = await renderedEnv({ mallocEnv: { MALLOC_ARENA_MAX: null } });
    expect(env.MALLOC_ARENA_MAX).toBeUndefined();
    expect(env.MALLOC_MMAP_THRESHOLD_).toBe(malloc.MALLOC_MMAP_THRESHOLD_);
  });

  it('leave a Node process at most one arena besides the main one', async () => {
    expect(await arenasAfterThreadpoolWork({})).toBeGreaterThan(1); // glibc's defaults
    expect(await arenasAfterThreadpoolWork(chartDefaults().mallocEnv)).toBeLessThanOrEqual(1);
  });
});
