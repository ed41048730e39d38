import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { residentByKindOf } from '../bench/scale/kopek-process.ts';
import { MALLOC_ENV, ROOT, RUNTIME } from '../image/spec.ts';
import { chartDefaults } from '../support/chart-values.ts';

// glibc gives each thread that allocates an arena of its own (up to 8 per core), and each keeps
// what it freed: the image and the chart cap them (docs/decisions/0020-malloc-settings.md).

/** How many malloc arenas besides the main one a Node process has after threadpool work. */
async function arenasAfterThreadpoolWork(env: Record<string, string>): Promise<number> {
  // Compressing in parallel allocates from each of libuv's threadpool threads.
  const script = `
    const zlib = require('node:zlib');
    let left = 32;
    for (let i = 0; i < 32; i++)
      zlib.gzip(Buffer.alloc(1 << 20, i), () => { if (--left === 0) console.log('done'); });
    setTimeout(() => {}, 30_000);`;
  const child = spawn(process.execPath, ['-e', script], {
    env: { ...process.env, ...env },
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

describe("kopek's malloc settings", () => {
  it('are the same in the image, the Dockerfile and the chart', () => {
    for (const [name, value] of Object.entries(MALLOC_ENV)) {
      expect(RUNTIME.Env).toContain(`${name}=${value}`);
      const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
      expect(dockerfile).toMatch(new RegExp(`^ENV ${name}=${value}$`, 'm'));
    }
    expect(chartDefaults().mallocEnv).toEqual(MALLOC_ENV);
  });

  it('leave a Node process at most one arena besides the main one', async () => {
    expect(await arenasAfterThreadpoolWork({})).toBeGreaterThan(1); // glibc's defaults
    expect(await arenasAfterThreadpoolWork({ ...MALLOC_ENV })).toBeLessThanOrEqual(1);
  });
});
