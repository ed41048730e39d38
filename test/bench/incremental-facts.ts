#!/usr/bin/env node
/**
 * Benchmark (not a test): what the operator's facts cost per change and per workload. A fleet of
 * N synthetic workloads (synthetic-dump.ts: 10 pods, a Service, an EndpointSlice each) is loaded
 * into the ClusterCache on the in-memory API, and the facts are built once. Then:
 *   - a batch of one changed pod (its readiness flips): the incremental rebuild against a full
 *     rebuild forced in the same run (what every batch did before facts were incremental);
 *   - a batch of one changed EndpointSlice (an endpoint's readiness flips), which touches the
 *     one workload its Service selects and that Service's lookup entry, not its namespace;
 *   - a batch of one deleted pod, which moves the cluster's client pods per zone and so every
 *     workload with a Service (here: all of them) in the full rebuild; incrementally they follow
 *     in the client refresh a minute later;
 *   - a batch of one changed Node (a label no fact reads), which touches the workloads of the
 *     pods on it and the cluster's facts every workload shares;
 *   - a batch of one changed Job (its completion time) of one of the CronJobs added to the
 *     fleet (one per 20 workloads, with two finished Jobs each), which a CronJob's facts read;
 *   - the heap the cache and the facts hold per workload: the facts' kept input (an
 *     IncrementalInput over the same cached objects, measured on its own) and the rest of the
 *     WorkloadFactsCache (facts, digests, their indexes), and what keeping each workload's
 *     canonical JSON (as before) instead of its digest would add;
 *   - the heap of each kind's projections on their own (the same objects projected into a map,
 *     as the cache keeps them), to see which kind the cache's bytes are.
 *
 *   npm run bench   (node --expose-gc test/bench/incremental-facts.ts [--fleet-workloads N] [--rounds R])
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ClusterCache } from '../../operator/cache.ts';
import { projectionFor, type Projected } from '../../operator/kube/projections.ts';
import { canonicalJson } from '../../operator/canonical.ts';
import { createLogger } from '../../operator/log.ts';
import { createMetrics } from '../../operator/metrics.ts';
import { WorkloadFactsCache } from '../../operator/recommendations/facts.ts';
import { IncrementalInput } from '../../recommender/facts-incremental.ts';
import { RESOURCES, type ResourceName } from '../../operator/kube/resources.ts';
import type { ResourceType } from '../../operator/kube/client.ts';
import { FakeKube } from '../../operator/testing/fake-kube.ts';
import { ManualClock } from '../../operator/testing/manual-clock.ts';
import { podSpec } from '../../recommender/objects/testing.ts';
import { syntheticDump } from './synthetic-dump.ts';

const { values: flags } = parseArgs({
  options: { 'fleet-workloads': { type: 'string' }, rounds: { type: 'string' } },
});
const WORKLOADS = Number(flags['fleet-workloads'] ?? 5_000);
const ROUNDS = Number(flags.rounds ?? 5);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench does)');

function heapMiB(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const TYPES = new Map<string, ResourceType>(
  Object.values(RESOURCES).map((type) => [type.kind, type]),
);
type Obj = Record<string, unknown>;

const kube = new FakeKube();
const dump = syntheticDump(WORKLOADS) as Obj[];
for (const object of dump) {
  const type = TYPES.get(object.kind as string);
  if (type) kube.put(type, object);
}
// One CronJob per 20 workloads, each with two finished Jobs, dealt over the same namespaces.
const jobs: Obj[] = [];
for (let i = 0; i < Math.max(1, Math.floor(WORKLOADS / 20)); i++) {
  const name = `batch-${i}`;
  const namespace = `team-${i % 20}`;
  const template = { metadata: { labels: { app: name } }, spec: podSpec() };
  kube.put(RESOURCES.cronjobs, {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name, namespace, uid: `uid-${name}` },
    spec: { schedule: '0 * * * *', jobTemplate: { spec: { template } } },
  });
  for (const run of [1, 2]) {
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: `${name}-${run}`,
        namespace,
        ownerReferences: [
          { apiVersion: 'batch/v1', kind: 'CronJob', name, uid: `uid-${name}`, controller: true },
        ],
      },
      spec: { template },
      status: { startTime: '2026-11-01T10:00:00Z', completionTime: '2026-11-01T10:05:00Z' },
    };
    kube.put(RESOURCES.jobs, job);
    jobs.push(job);
  }
}
const pods = dump.filter((o) => o.kind === 'Pod');
const nodes = dump.filter((o) => o.kind === 'Node');
const node = nodes[Math.floor(nodes.length / 2)] as Obj & { metadata: { labels: Obj } };
const target = pods[Math.floor(pods.length / 2)] as Obj & {
  metadata: { name: string; namespace: string };
};
const slices = dump.filter((o) => o.kind === 'EndpointSlice');
const slice = slices[Math.floor(slices.length / 2)] as Obj & { endpoints: Obj[] };
dump.length = 0;

const metrics = createMetrics();
const log = createLogger('error', () => undefined);
const facts = new WorkloadFactsCache();
const beforeCache = heapMiB();
const cache: ClusterCache = new ClusterCache({
  client: kube,
  log,
  metrics,
  clock: new ManualClock(),
  onChange: (resource: ResourceName, object, previous) => {
    facts.changes.markChanged(cache, resource, object, previous);
  },
});
await cache.start();
await cache.waitForSync();
const cacheMiB = heapMiB() - beforeCache;
const sources = { metrics, log };
await facts.rebuild(cache, sources);
const factsMiB = heapMiB() - beforeCache - cacheMiB;

/** The heap of the facts' kept input on its own: a second one over the same cached objects. */
function inputHeapMiB(): number {
  const before = heapMiB();
  const input = new IncrementalInput();
  for (const name of Object.keys(RESOURCES) as ResourceName[])
    for (const object of cache.list(name)) input.set(object);
  input.prepare();
  const mib = heapMiB() - before;
  // Read it after measuring: V8 frees what nothing reads any more, even mid-function.
  input.prepare();
  return mib;
}
const inputMiB = inputHeapMiB();

/** Each kind's projections alone: the fake's objects projected into a map, as an informer keeps them. */
function heapByKind(): { resource: ResourceName; objects: number; mib: number }[] {
  const out: { resource: ResourceName; objects: number; mib: number }[] = [];
  for (const [resource, type] of Object.entries(RESOURCES) as [ResourceName, ResourceType][]) {
    const project = projectionFor(type);
    const before = heapMiB();
    const objects = kube.objects(type);
    if (objects.length === 0) continue;
    const kept = new Map<string, Projected>();
    for (const object of objects) kept.set(String(kept.size), project(object));
    objects.length = 0;
    const mib = heapMiB() - before;
    // Read it after measuring: V8 frees what nothing reads any more, even mid-function.
    out.push({ resource, objects: kept.size, mib });
    kept.clear();
  }
  return out;
}
const byKind = heapByKind();

// What keeping each workload's canonical JSON (the comparison before digests) would hold.
const jsonKept = new Map<string, string>();
const beforeJson = heapMiB();
for (const object of cache.list('deployments')) {
  const key = `wl/${object.metadata.namespace ?? ''}/Deployment/${object.metadata.name}`;
  const workload = facts.get(key);
  if (workload) jsonKept.set(key, canonicalJson(workload));
}
const jsonMiB = heapMiB() - beforeJson;
jsonKept.clear();

let ready = true;
function flipReadiness(): void {
  ready = !ready;
  kube.put(RESOURCES.pods, {
    ...target,
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
}

async function timeBatch(
  change: () => void,
  full: boolean,
): Promise<{ ms: number; built: number; changed: number }> {
  let best = { ms: Number.POSITIVE_INFINITY, built: 0, changed: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    change();
    if (full) facts.changes.markAll();
    const start = performance.now();
    const result = await facts.rebuild(cache, sources);
    const ms = performance.now() - start;
    if (ms < best.ms) best = { ms, built: result.built, changed: result.changed.length };
  }
  return best;
}

let endpointReady = true;
function flipEndpoint(): void {
  endpointReady = !endpointReady;
  const [first, ...rest] = slice.endpoints;
  kube.put(RESOURCES.endpointslices, {
    ...slice,
    endpoints: [{ ...first, conditions: { ready: endpointReady } }, ...rest],
  });
}

const onePod = await timeBatch(flipReadiness, false);
const onePodFull = await timeBatch(flipReadiness, true);
const oneSlice = await timeBatch(flipEndpoint, false);
const oneSliceFull = await timeBatch(flipEndpoint, true);
let removed = 0;
const deletable = pods.slice(0, ROUNDS * 2);
const deleteOne = (): void => {
  const p = deletable[removed++] as { metadata: { name: string; namespace: string } };
  kube.remove(RESOURCES.pods, p.metadata.name, p.metadata.namespace);
};
let nodeRound = 0;
function relabelNode(): void {
  kube.put(RESOURCES.nodes, {
    ...node,
    metadata: { ...node.metadata, labels: { ...node.metadata.labels, round: String(++nodeRound) } },
  });
}
const oneNode = await timeBatch(relabelNode, false);
const oneNodeFull = await timeBatch(relabelNode, true);
const job = jobs[Math.floor(jobs.length / 2)] as Obj & { status: Obj };
let jobMinutes = 5;
function finishJobLater(): void {
  jobMinutes = jobMinutes === 5 ? 6 : 5;
  kube.put(RESOURCES.jobs, {
    ...job,
    status: { ...job.status, completionTime: `2026-11-01T10:0${jobMinutes}:00Z` },
  });
}
const oneJob = await timeBatch(finishJobLater, false);
const oneJobFull = await timeBatch(finishJobLater, true);
const podGone = await timeBatch(deleteOne, false);
const podGoneFull = await timeBatch(deleteOne, true);
await cache.stop();

const perK = (mib: number): string => `${((mib * 1000) / WORKLOADS).toFixed(2)} MiB`;
const perWorkload = (mib: number): string =>
  `${((mib * 2 ** 20) / WORKLOADS).toLocaleString('en-US', { maximumFractionDigits: 0 })} B`;
const line = (run: { ms: number; built: number; changed: number }): string =>
  `${run.ms.toFixed(1)} ms (${run.built.toLocaleString('en-US')} workloads built, ${run.changed} changed)`;
process.stdout.write(
  [
    `fleet:            ${WORKLOADS.toLocaleString('en-US')} workloads, ${pods.length.toLocaleString('en-US')} pods in the ClusterCache (best of ${ROUNDS} batches, node ${process.version})`,
    `1 pod changed:    incremental ${line(onePod)}; full rebuild ${line(onePodFull)}`,
    `ratio:            the incremental batch takes ${(onePod.ms / onePodFull.ms).toFixed(3)}× the time of a full rebuild (${(onePodFull.ms / onePod.ms).toFixed(1)}× faster)`,
    `1 slice changed:  incremental ${line(oneSlice)}; full rebuild ${line(oneSliceFull)}`,
    `1 node changed:   incremental ${line(oneNode)}; full rebuild ${line(oneNodeFull)}`,
    `1 Job changed:    incremental ${line(oneJob)}; full rebuild ${line(oneJobFull)}`,
    `1 pod deleted:    incremental ${line(podGone)}; full rebuild ${line(podGoneFull)} — moves the client pods per zone, which the workloads with a Service follow in the full rebuild, and in a later batch (the client refresh) otherwise`,
    `memory per 1,000: cache ${perK(cacheMiB)}, facts ${perK(factsMiB)} of heap; keeping canonical JSON instead of digests would add ${perK(jsonMiB)}`,
    `per workload:     cache ${perWorkload(cacheMiB)}; WorkloadFactsCache ${perWorkload(factsMiB)}, of which its kept input ${perWorkload(inputMiB)} (measured alone) (heap after gc)`,
    `cache by kind:    ${byKind.map((k) => `${k.resource} ${perWorkload(k.mib)} (${k.objects.toLocaleString('en-US')})`).join(', ')} — per workload, each kind projected alone`,
    '',
  ].join('\n'),
);
