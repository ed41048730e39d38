import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { NODE_OPTIONS, ROOT, RUNTIME } from '../image/spec.ts';

// kopek's resident memory depends on V8's young generation, which Node 24 lets grow to 64 MiB a
// half-space (docs/decisions/0015-small-young-generation.md): the image and the chart both start
// Node with it capped, and a Node started so does keep it small.

/** The young generation's largest size (MiB) while a script churns objects that survive a while. */
function youngGenerationMiB(nodeOptions: string): number {
  const script = `
    const v8 = require('node:v8');
    let kept = [];
    let largest = 0;
    for (let i = 0; i < 1_000_000; i++) {
      kept.push({ i, s: 'x' + i });
      if (kept.length > 200_000) kept = [];
      if (i % 1000 === 0)
        largest = Math.max(largest, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    }
    console.log(largest / 2 ** 20);`;
  const out = execFileSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
  });
  return Number(out.trim());
}

describe("kopek's Node options", () => {
  it('cap the young generation in the image, the Dockerfile and the chart alike', () => {
    expect(NODE_OPTIONS).toMatch(/(^| )--max-semi-space-size=2( |$)/);
    expect(RUNTIME.Env).toContain(`NODE_OPTIONS=${NODE_OPTIONS}`);
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(new RegExp(`^ENV NODE_OPTIONS=${NODE_OPTIONS}$`, 'm'));
    const values = parse(readFileSync(join(ROOT, 'charts/kopek/values.yaml'), 'utf8')) as {
      nodeOptions?: unknown;
    };
    expect(values.nodeOptions).toBe(NODE_OPTIONS);
  });

  it('are accepted by Node 24 in NODE_OPTIONS and keep the young generation small', () => {
    const capped = youngGenerationMiB(NODE_OPTIONS);
    const defaults = youngGenerationMiB('');
    // Two 2 MiB semi-spaces, plus pages V8 keeps in the new space a while after a scavenge, one
    // 256 KiB page at a time: 4–6.25 MiB seen on an idle machine, 8.5 in a loaded CI run.
    // Uncapped it reaches 64 MiB.
    expect(capped).toBeLessThanOrEqual(16);
    expect(defaults).toBeGreaterThanOrEqual(32);
  });
});
