/**
 * `kopek patch` on the commerce dump, its output merged by Kubernetes' own code rather than
 * kopek's model of it: each `-o yaml` patch with `kubectl patch --local` (strategic merge for
 * the built-in kinds, a JSON merge patch for Argo Rollouts, as kubectl and kustomize treat
 * custom resources), and the `-o kustomize` list with `kubectl kustomize`. Each result must hold
 * the pod placement Apply mode plans (planCommit → plannedState) for that workload.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { WorkloadKind } from '../../recommender/api/v1alpha1.ts';
import {
  podSpecOf,
  readPodPlacement,
  readServicePlacement,
} from '../../recommender/apply/placement.ts';
import { ensureBinaries } from '../cluster/binaries.ts';
import {
  COMMERCE_DUMP as DUMP,
  COMMERCE_PLATFORMS as PLATFORMS,
  commercePlans,
} from '../support/commerce-patch.ts';
import { KOPEK_CLI } from '../support/kopek.ts';

const run = promisify(execFile);
type Obj = Record<string, unknown>;

let kubectl: string;
let dir: string;

beforeAll(async () => {
  kubectl = (await ensureBinaries()).kubectl;
  dir = await mkdtemp(join(tmpdir(), 'kopek-patch-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** kubectl without a cluster: --local and kustomize read no kubeconfig. */
async function kubectlLocal(args: string[]): Promise<string> {
  const { stdout } = await run(kubectl, args, {
    env: { ...process.env, KUBECONFIG: '/dev/null' },
    maxBuffer: 64 * 2 ** 20,
  });
  return stdout;
}

async function kopekPatch(args: string[]): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    [KOPEK_CLI, 'patch', '-f', DUMP, '--image-platforms', PLATFORMS, '-q', ...args],
    { maxBuffer: 64 * 2 ** 20 },
  );
  return stdout;
}

describe('kopek patch on the commerce dump, merged by kubectl', () => {
  const { dumped, planned, plannedService } = commercePlans();

  const isService = (o: Obj) => o.kind === 'Service';
  const placementOf = (o: Obj) =>
    isService(o)
      ? readServicePlacement(o)
      : readPodPlacement(podSpecOf(o.kind as WorkloadKind, o) ?? {});
  const plannedOf = (key: string, o: Obj) => (isService(o) ? plannedService(key) : planned(key));
  const keyOf = (o: Obj) => {
    const meta = o.metadata as { name: string; namespace: string };
    return `${meta.namespace}/${String(o.kind)}/${meta.name}`;
  };

  it('each -o yaml patch, applied by kubectl patch --local, gives the planned placement', async () => {
    const patches = parseAllDocuments(await kopekPatch([])).map((d) => d.toJS() as Obj);
    expect(patches.length).toBeGreaterThanOrEqual(30);
    expect(patches.filter(isService).length).toBeGreaterThan(0);
    let changed = 0;
    for (const [i, patch] of patches.entries()) {
      const key = keyOf(patch);
      const object = dumped.get(key);
      if (object === undefined) throw new Error(`${key}: patched but not in the dump`);
      const objectFile = join(dir, `object-${i}.yaml`);
      const patchFile = join(dir, `patch-${i}.yaml`);
      await writeFile(objectFile, stringify(object));
      await writeFile(patchFile, stringify(patch));
      const type = String(object.apiVersion).startsWith('argoproj.io/') ? 'merge' : 'strategic';
      const merged = JSON.parse(
        await kubectlLocal([
          'patch',
          '--local',
          '-f',
          objectFile,
          '--type',
          type,
          '--patch-file',
          patchFile,
          '-o',
          'json',
        ]),
      ) as Obj;
      const after = placementOf(merged);
      expect(after, key).toEqual(plannedOf(key, patch));
      if (JSON.stringify(after) !== JSON.stringify(placementOf(object))) changed++;
    }
    expect(changed).toBe(patches.length);
  });

  it('the -o kustomize list, built by kubectl kustomize over the dumped objects, gives the planned placements', async () => {
    const text = await kopekPatch(['-o', 'kustomize']);
    const targets = parseAllDocuments(await kopekPatch([]))
      .map((d) => d.toJS() as Obj)
      .map(keyOf);
    const resources = targets.map((key) => {
      const { status: _status, ...object } = dumped.get(key) ?? {};
      return stringify(object);
    });
    await writeFile(join(dir, 'workloads.yaml'), resources.join('---\n'));
    await writeFile(join(dir, 'kustomization.yaml'), `resources:\n  - workloads.yaml\n${text}`);
    const built = parseAllDocuments(await kubectlLocal(['kustomize', dir])).map(
      (d) => d.toJS() as Obj,
    );
    expect(built.map(keyOf).sort()).toEqual([...targets].sort());
    for (const object of built)
      expect(placementOf(object), keyOf(object)).toEqual(plannedOf(keyOf(object), object));
  });
});
