import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { IncrementalInput } from './facts-incremental.ts';
import { deployment, NODES } from './objects/testing.ts';
import type { Obj } from './objects/read.ts';

/** Sets a new version of the Deployment shop/web and returns it. */
function setWeb(input: IncrementalInput, replicas: number): Obj {
  const web = deployment('web', 'shop', { replicas });
  input.set(web);
  return web;
}

describe('IncrementalInput', () => {
  it('lets go of a workload replaced since every workload was last built', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const input = new IncrementalInput();
    for (const node of NODES) input.set(node);
    const replaced = new WeakRef(setWeb(input, 3));
    expect(
      input
        .prepare()
        .build()
        .facts.map((f) => f.replicas),
    ).toEqual([3]);
    setWeb(input, 4);
    const only = new Set(['Deployment/shop/web']);
    expect(
      input
        .prepare()
        .build(only)
        .facts.map((f) => f.replicas),
    ).toEqual([4]);
    // A WeakRef holds its target until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(replaced.deref()).toBeUndefined();
  });
});
