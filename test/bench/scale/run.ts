/**
 * The scale benchmark, phase by phase (see test/bench/scale.ts for the command): builds the
 * cluster, measures the floor, then kopek's cold start, memory, steady state, change latency,
 * registry lookups, and `kopek analyze` over a dump of the same cluster.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { collectionPath, KubeClient } from '../../../operator/kube/client.ts';
import { RESOURCES, type ResourceName } from '../../../operator/kube/resources.ts';
import { recommendationName } from '../../../recommender/recommend.ts';
import { LocalCluster } from '../../cluster/cluster.ts';
import { fleetNodes, scaledFleet } from '../../cluster/fleet.ts';
import { LocalRegistry } from '../../registry/registry.ts';
import { seedFleet, type SeededImage } from '../../registry/seed.ts';
import { compileKopekCli } from '../../image/compile.ts';
import { installChartRbac, installCrds, KOPEK_CLI, writeCalls } from '../../support/kopek.ts';
import { quantile, runChanges, type ChangeRun, type ChangeType } from './changes.ts';
import type { FloorOptions, FloorResult } from './floor.ts';
import { BenchApi } from './http.ts';
import { IMPORT_TARGETS, importCosts, type ImportCost, type ImportTarget } from './imports.ts';
import {
  cpuSeconds,
  MemorySampler,
  residentByKindOf,
  scrape,
  parseMetrics,
  startKopek,
  sum,
  waitReady,
  type KopekProcess,
  type ResidentByKind,
  type Series,
} from './kopek-process.ts';
import { cpuSnapshot, cpuSplit, type CpuSplit, type ProcessNames } from './machine-cpu.ts';
import { kopekMemoryCgroup, type MemoryCgroup, type MemoryLimitOption } from './memory-limit.ts';
import { RecommendationTracker } from './recommendations.ts';
import {
  benchComponentArgs,
  createObjects,
  refuseEvents,
  waitForEndpoints,
  waitForOldRevisions,
  waitForNodes,
  waitForPods,
  waitForServiceAccounts,
  type Say,
} from './setup.ts';
import { summarizeCpuProfile, type TimeWindow } from './profile.ts';
import { timed } from './timed.ts';
import {
  defaultImageCount,
  oldRevisions,
  scaleCluster,
  type ScaleCluster,
  type ScaleSizes,
} from './workloads.ts';

const EXAMPLES = fileURLToPath(new URL('../../../crds/examples/', import.meta.url));
const FLOOR_SCRIPT = fileURLToPath(new URL('./floor.ts', import.meta.url));
const PROFILE_SCRIPT = fileURLToPath(new URL('./profile.ts', import.meta.url));
/** kopek run's default number of workers: the floor applies as many at once. */
const KOPEK_WORKERS = 4;
const MiB = 2 ** 20;
/** Why --profile runs kopek without a memory limit unless --memory-limit gives one. */
export const PROFILE_WITHOUT_LIMIT =
  "--profile (a heap snapshot can take more than the chart's limit)";

export interface ScaleOptions extends ScaleSizes {
  images?: number;
  /** Old revisions (ReplicaSets scaled to zero) per Deployment, made once its pods run. */
  oldRevisions: number;
  steadySeconds: number;
  changeRate: number;
  changeSeconds: number;
  /** How long a change may wait for its recommendation. */
  drainSeconds: number;
  /** Settled: nothing queued in kopek and no recommendation changed for this long. */
  settleQuietSeconds: number;
  importRuns: number;
  /** What to measure the import cost of (default: the entry point and each heavy dependency). */
  importTargets?: readonly ImportTarget[];
  /** Dumps of the cluster `kopek analyze` reads, one run each (none: skip). */
  analyzeFormats: readonly ('yaml' | 'json')[];
  /** Node flags for `kopek run` (the image's, or one to compare). */
  kopekNodeFlags?: readonly string[];
  /** Environment variables added to kopek run's (--kopek-env), e.g. MALLOC_ARENA_MAX. */
  kopekEnv?: Readonly<Record<string, string>>;
  /**
   * Run kopek in a memory cgroup with this limit: 'chart' (the default) is the chart's limit,
   * skipped with a warning where no cgroup can be made; 'none' runs it without one. With profileDir
   * the default is none.
   */
  memoryLimit?: MemoryLimitOption;
  /** Run kopek's TypeScript sources (type stripping, as the tests do), not kopek compiled as the image runs it. */
  typescript?: boolean;
  /** Profile kopek's cold start (CPU profile, heap snapshot) into this directory, and stop there. */
  profileDir?: string;
  /** Run kopek under --cpu-prof into this directory and summarize the change phase's samples. */
  cpuProfileDir?: string;
  /** Longest wait for pods, and for kopek's cold start. */
  timeoutMinutes: number;
  keep: boolean;
  say: Say;
}

/** What kopek did in a phase, from its own counters. */
export interface Activity {
  /** Watch events received, by resource. */
  events: Record<string, number>;
  /** Facts rebuilds by scope (marked, all): how many, their seconds in all, workloads computed. */
  rebuilds: Record<string, { count: number; seconds: number; workloads: number }>;
  /**
   * Each controller's queue (workloadrecommendation, apply): keys added, reconciles, and of the
   * keys taken, their mean wait and how many waited over 10 s. Apart, because the apply
   * controller's many quick reconciles (one per workload or recommendation event) would hide the
   * other's wait.
   */
  queues: Record<string, QueueActivity>;
  /** kopek's server-side applies (objects and status): how many, and their mean time. */
  applies: { count: number; meanSeconds: number };
  /**
   * kopek's own delay from a change's watch event to the start of the write it caused (or to
   * "no write needed"), by outcome: kopek_change_to_write_delay_seconds, p50/p99 from its buckets.
   */
  changeToWrite: Record<string, HistogramQuantiles>;
}

export interface QueueActivity {
  adds: number;
  reconciles: number;
  waited: number;
  meanWaitSeconds: number;
  waitedOver10s: number;
  reconcileMeanSeconds: number;
}

/** How many observations a histogram took in a phase, and its p50/p99 (interpolated in buckets). */
export interface HistogramQuantiles {
  count: number;
  p50Seconds: number | undefined;
  p99Seconds: number | undefined;
}

/**
 * The q-quantile of a Prometheus histogram's cumulative buckets, as histogram_quantile computes
 * it: linear within the bucket that holds the rank; the highest finite bound when that is +Inf.
 */
export function bucketQuantile(
  buckets: readonly { le: number; count: number }[],
  q: number,
): number | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = { le: 0, count: 0 };
  for (const bucket of sorted) {
    if (bucket.count >= rank) {
      if (bucket.le === Infinity) return lower.le;
      const inBucket = bucket.count - lower.count;
      return inBucket <= 0
        ? bucket.le
        : lower.le + ((bucket.le - lower.le) * (rank - lower.count)) / inBucket;
    }
    lower = bucket;
  }
  return lower.le;
}

export interface Memory {
  rssBytes: number;
  heapBytes: number;
  /** Where the resident memory is: smaps, and V8's committed heap and external memory. */
  byKind?: ResidentByKind & { v8HeapCommitted: number; external: number };
}

export interface ScaleResult {
  sizes: ScaleSizes & { images: number; analysedWorkloads: number; objects: number };
  node: string;
  /** Node flags kopek run was started with (--kopek-node-options). */
  kopekNodeFlags: string[];
  kopekEnv: Record<string, string>;
  /** The memory limit kopek ran under, or why it ran without one. */
  memoryLimit: { bytes: number; cgroup: string; oomKills?: number } | { none: string };
  /** Which kopek ran: compiled as the image runs it, or its TypeScript sources. */
  kopekBuild: 'compiled' | 'typescript';
  cpus: number;
  load: { start: string; end: string; byPhase: Record<string, number[]> };
  imports: ImportCost[];
  setupSeconds: Record<string, number>;
  floor?: {
    reused: FloorResult & { wallSeconds: number };
    perRequest: FloorResult & { wallSeconds: number };
  };
  cold?: {
    readySeconds: number;
    allWrittenSeconds: number;
    ratioToFloor: number | undefined;
    cpuSeconds: number;
    writes: number;
    requests: number;
    recommendations: number;
    activity: Activity;
    machineCpu: CpuSplit;
  };
  memory?: { peak: Memory; settled: Memory; afterChanges?: Memory; missedHeapSamples: number };
  steady?: {
    seconds: number;
    writes: number;
    recommendationEvents: number;
    requestsPerMinute: number;
    byRequest: Record<string, number>;
    cpuPercent: number;
    activity: Activity;
  };
  changes?: {
    count: number;
    achievedRate: number;
    failed: number;
    skipped: number;
    /**
     * Over every change: one whose recommendation was not updated in the drain time counts as
     * slower than any (Infinity here, null in --out's JSON), so a backlog cannot hide.
     */
    p50Ms: number | undefined;
    p99Ms: number | undefined;
    maxMs: number | undefined;
    notUpdated: number;
    byType: Record<
      ChangeType,
      { count: number; p50Ms?: number; p99Ms?: number; notUpdated: number }
    >;
    kopekWrites: number;
    recommendationEvents: number;
    activity: Activity;
    cpuSeconds: number;
    machineCpu: CpuSplit;
    /** The API server's view of the phase, from its own metrics. */
    apiserver?: ApiServerActivity;
  };
  registry?: {
    distinctImages: number;
    manifestGetsAfterColdStart: number;
    manifestGetsAtEnd: number;
  };
  analyze?: {
    dump: string;
    dumpBytes: number;
    dumpSeconds: number;
    seconds: number;
    maxRssBytes: number;
    recommendations: number | undefined;
    exitCode: number;
    error?: string;
  }[];
  profile?: string;
}

export function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}`;
  }
}

/** Requests by verb and resource since `before`. */
function requestsSince(before: Series[], after: Series[]): Record<string, number> {
  const count = (series: Series[]): Map<string, number> => {
    const out = new Map<string, number>();
    for (const s of series) {
      if (s.name !== 'kopek_kube_requests_total') continue;
      const key = `${s.labels.verb ?? ''} ${s.labels.resource ?? ''}`;
      out.set(key, (out.get(key) ?? 0) + s.value);
    }
    return out;
  };
  const a = count(before);
  const delta: Record<string, number> = {};
  for (const [key, value] of count(after)) {
    const d = value - (a.get(key) ?? 0);
    if (d > 0) delta[key] = d;
  }
  return delta;
}

/** Count and mean seconds of a histogram's observations. */
export interface Timing {
  count: number;
  meanSeconds: number;
}

/** Where the API server's time went in a phase: queued by priority and fairness, and serving. */
export interface ApiServerActivity {
  /** Requests' wait in the priority-and-fairness queues, by priority level. */
  queuedByPriorityLevel: Record<string, Timing>;
  /** Requests on WorkloadRecommendations (kopek's writes), by verb and subresource. */
  recommendationRequests: Record<string, Timing>;
}

export async function apiServerMetrics(api: BenchApi): Promise<Series[]> {
  const response = await api.request('GET', '/metrics', { timeoutMs: 60_000 });
  return parseMetrics(response.text);
}

export function apiServerActivity(before: Series[], after: Series[]): ApiServerActivity {
  const timings = (
    name: string,
    where: (labels: Record<string, string>) => boolean,
    key: (labels: Record<string, string>) => string,
  ): Record<string, Timing> => {
    const totals = new Map<string, { count: number; seconds: number }>();
    for (const [series, sign] of [
      [after, 1],
      [before, -1],
    ] as const)
      for (const s of series) {
        const part =
          s.name === `${name}_count` ? 'count' : s.name === `${name}_sum` ? 'seconds' : '';
        if (part === '' || !where(s.labels)) continue;
        const k = key(s.labels);
        const total = totals.get(k) ?? { count: 0, seconds: 0 };
        total[part] += sign * s.value;
        totals.set(k, total);
      }
    return Object.fromEntries(
      [...totals]
        .filter(([, t]) => t.count > 0)
        .map(([k, t]) => [k, { count: t.count, meanSeconds: t.seconds / t.count }]),
    );
  };
  return {
    queuedByPriorityLevel: timings(
      'apiserver_flowcontrol_request_wait_duration_seconds',
      (labels) => labels.execute === 'true',
      (labels) => labels.priority_level ?? '',
    ),
    recommendationRequests: timings(
      'apiserver_request_duration_seconds',
      (labels) => labels.resource === 'workloadrecommendations',
      (labels) => `${labels.verb ?? ''}${labels.subresource ? `/${labels.subresource}` : ''}`,
    ),
  };
}

function activitySince(before: Series[], after: Series[]): Activity {
  const delta = (
    name: string,
    key?: string | ((labels: Record<string, string>) => string),
  ): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [series, sign] of [
      [after, 1],
      [before, -1],
    ] as const) {
      for (const s of series) {
        // Bookmarks only keep a watch's place.
        if (s.name !== name || s.labels.type === 'BOOKMARK') continue;
        const k =
          key === undefined
            ? ''
            : typeof key === 'function'
              ? key(s.labels)
              : (s.labels[key] ?? '');
        out[k] = (out[k] ?? 0) + sign * s.value;
      }
    }
    return Object.fromEntries(Object.entries(out).filter(([, v]) => v > 0));
  };
  const mean = (seconds: number, count: number): number => (count > 0 ? seconds / count : 0);
  const rebuildCounts = delta('kopek_facts_rebuild_duration_seconds_count', 'scope');
  const rebuildSeconds = delta('kopek_facts_rebuild_duration_seconds_sum', 'scope');
  const rebuildWorkloads = delta('kopek_facts_rebuild_workloads_total', 'scope');
  const applyCounts = delta('kopek_kube_request_duration_seconds_count', 'verb');
  const applySeconds = delta('kopek_kube_request_duration_seconds_sum', 'verb');
  const applies = (of: Record<string, number>): number =>
    (of.apply ?? 0) + (of['apply-status'] ?? 0);
  // workqueue_* name the controller `name`, controller_runtime_* name it `controller`.
  const byQueue = (name: string): Record<string, number> => delta(name, 'name');
  const byController = (name: string): Record<string, number> => delta(name, 'controller');
  const adds = byQueue('workqueue_adds_total');
  const waited = byQueue('workqueue_queue_duration_seconds_count');
  const waitSeconds = byQueue('workqueue_queue_duration_seconds_sum');
  const waitedUnder10s = delta('workqueue_queue_duration_seconds_bucket', (labels) =>
    labels.le === '10' ? (labels.name ?? '') : '',
  );
  const reconciles = byController('controller_runtime_reconcile_total');
  const reconcileSeconds = byController('controller_runtime_reconcile_time_seconds_sum');
  const controllers = new Set([...Object.keys(adds), ...Object.keys(reconciles)]);
  const delayBuckets = new Map<string, { le: number; count: number }[]>();
  for (const [key, count] of Object.entries(
    delta(
      'kopek_change_to_write_delay_seconds_bucket',
      (labels) => `${labels.outcome ?? ''} ${labels.le ?? ''}`,
    ),
  )) {
    const [outcome = '', le = ''] = key.split(' ');
    const list = delayBuckets.get(outcome) ?? [];
    list.push({ le: le === '+Inf' ? Infinity : Number(le), count });
    delayBuckets.set(outcome, list);
  }
  return {
    events: delta('kopek_cache_events_total', 'resource'),
    rebuilds: Object.fromEntries(
      Object.entries(rebuildCounts).map(([scope, count]) => [
        scope,
        { count, seconds: rebuildSeconds[scope] ?? 0, workloads: rebuildWorkloads[scope] ?? 0 },
      ]),
    ),
    queues: Object.fromEntries(
      [...controllers].map((controller) => {
        const taken = waited[controller] ?? 0;
        const done = reconciles[controller] ?? 0;
        return [
          controller,
          {
            adds: adds[controller] ?? 0,
            reconciles: done,
            waited: taken,
            meanWaitSeconds: mean(waitSeconds[controller] ?? 0, taken),
            waitedOver10s: taken - (waitedUnder10s[controller] ?? 0),
            reconcileMeanSeconds: mean(reconcileSeconds[controller] ?? 0, done),
          },
        ];
      }),
    ),
    applies: {
      count: applies(applyCounts),
      meanSeconds: mean(applies(applySeconds), applies(applyCounts)),
    },
    changeToWrite: Object.fromEntries(
      [...delayBuckets].map(([outcome, buckets]) => [
        outcome,
        {
          count: Math.max(...buckets.map((b) => b.count)),
          p50Seconds: bucketQuantile(buckets, 0.5),
          p99Seconds: bucketQuantile(buckets, 0.99),
        },
      ]),
    ),
  };
}

async function runFloorProcess(
  options: FloorOptions,
): Promise<FloorResult & { wallSeconds: number }> {
  const started = performance.now();
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [FLOOR_SCRIPT, JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    // 'close': at 'exit' the end of the JSON on stdout may still be unread.
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`the floor script failed (exit ${code}): ${stderr.slice(0, 1000)}`));
    });
  });
  const wallSeconds = (performance.now() - started) / 1000;
  return { ...(JSON.parse(output) as FloorResult), wallSeconds };
}

/**
 * A scrape once kopek has nothing queued and no reconcile running, or after `capMs`: the last
 * status's watch event can reach the bench before kopek has read the reply to that write, and a
 * scrape at once would miss it.
 */
async function scrapeWhenIdle(kopek: KopekProcess, capMs: number): Promise<Series[]> {
  const started = Date.now();
  for (;;) {
    const metrics = await scrape(kopek.metricsUrl, 60_000);
    const busy =
      sum(metrics, 'workqueue_depth') + sum(metrics, 'controller_runtime_active_workers');
    if (busy === 0 || Date.now() - started > capMs) return metrics;
    await sleep(200);
  }
}

/** Waits until kopek has nothing queued and no recommendation changed for `quietMs`. */
async function settle(
  kopek: KopekProcess,
  tracker: RecommendationTracker,
  quietMs: number,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    await sleep(2000);
    let depth = 1;
    try {
      depth = sum(await scrape(kopek.metricsUrl), 'workqueue_depth');
    } catch {
      // busy: not settled
    }
    if (depth === 0 && Date.now() - tracker.lastEventAt >= quietMs)
      return (Date.now() - started) / 1000;
    if (Date.now() - started > timeoutMs)
      throw new Error(`kopek did not settle within ${timeoutMs / 1000} s`);
  }
}

/** The `.heapsnapshot` that appears in `dir` once the process has written it whole. */
async function heapSnapshot(kopek: KopekProcess, dir: string): Promise<string> {
  process.kill(kopek.pid, 'SIGUSR2');
  for (;;) {
    await sleep(1000);
    if (!kopek.component.running)
      throw new Error(
        `kopek exited (${String(kopek.component.exitStatus)}) while writing its heap snapshot ` +
          '(with --memory-limit, its memory cgroup may have killed it)',
      );
    const file = (await readdir(dir)).find((name) => name.endsWith('.heapsnapshot'));
    if (file === undefined) continue;
    // Writing blocks the event loop: once /healthz answers again, the file is complete.
    try {
      if ((await fetch(`${kopek.metricsUrl}/healthz`, { signal: AbortSignal.timeout(1000) })).ok)
        return join(dir, file);
    } catch {
      // still writing
    }
  }
}

async function countRecommendations(path: string): Promise<number | undefined> {
  try {
    const list = JSON.parse(await readFile(path, 'utf8')) as { items?: unknown[] };
    return list.items?.length;
  } catch {
    return undefined;
  }
}

/** `kubectl get … -A -o FORMAT > file` as README says, timed. */
async function dump(
  cluster: LocalCluster,
  format: 'yaml' | 'json',
  path: string,
  timeoutMs: number,
): Promise<{ seconds: number; bytes: number; error?: string }> {
  const result = await timed(
    cluster.binaries.kubectl,
    [
      `--kubeconfig=${cluster.kubeconfigPath}`,
      'get',
      'nodes,pods,deploy,sts,ds,rs,jobs,cronjobs,pdb,hpa,svc,endpointslices',
      '-A',
      '-o',
      format,
    ],
    { stdout: path, timeoutMs },
  );
  const bytes = (await stat(path)).size;
  if (result.exitCode === 0) return { seconds: result.seconds, bytes };
  return {
    seconds: result.seconds,
    bytes,
    error: `kubectl get -o ${format} failed: ${result.timedOut ? 'timed out' : result.stderr.slice(0, 300)}`,
  };
}

/** A failed run, with the figures measured before it failed. */
export class ScaleBenchFailure extends Error {
  readonly partial: ScaleResult;
  constructor(cause: unknown, partial: ScaleResult) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.partial = partial;
  }
}

/** What every phase shares: the options, the result being filled, and what to stop at the end. */
interface Bench {
  options: ScaleOptions;
  result: ScaleResult;
  say: Say;
  workDir: string;
  /** The `kopek` CLI the bench runs (see ScaleOptions.typescript). */
  kopekCli: string;
  timeoutMs: number;
  stops: (() => Promise<void>)[];
  /** Records the load and announces a phase. */
  phase: (name: string) => void;
  /** Times a setup step into result.setupSeconds. */
  step: <T>(name: string, work: () => Promise<T>) => Promise<T>;
}

/** The cluster the benchmark built, and what it put in it. */
interface Built {
  registry: LocalRegistry;
  cluster: LocalCluster;
  admin: BenchApi;
  adminClient: KubeClient;
  seeded: SeededImage[];
  generated: ScaleCluster;
  /** The recommendations kopek must write, as namespace/name. */
  expected: string[];
  saKubeconfig: string;
}

/** The running kopek and what watches it. */
interface Running {
  kopek: KopekProcess;
  tracker: RecommendationTracker;
  sampler: MemorySampler;
  /** Peak memory during the cold start. */
  peak: { peakRss: number; peakHeap: number };
}

const POLICY_EXAMPLES = [
  'savingspolicy-recommend-everywhere.yaml',
  'savingspolicy-no-spot-for-payments.yaml',
];

/** The registry and control plane, the nodes, and the workloads with every pod ready. */
async function buildCluster(bench: Bench): Promise<Built> {
  const { options, result, say, step, stops, workDir, timeoutMs } = bench;
  bench.phase('setup');
  const registry = await LocalRegistry.start({ dir: workDir, name: 'bench-registry' });
  stops.push(() => registry.stop());
  const [seeded, cluster] = await Promise.all([
    step('images pushed to the registry', () =>
      seedFleet({ url: registry.url }, registry.host, 'bench', result.sizes.images, 8),
    ),
    step('control plane started', async () =>
      LocalCluster.start({
        dir: join(workDir, 'cluster'),
        componentArgs: await benchComponentArgs(workDir),
        log: (line) => {
          say(`  ${line}`);
        },
      }),
    ),
  ]);
  stops.push(() => cluster.stop({ keepDir: options.keep }));
  const admin = new BenchApi(cluster.connection());
  stops.push(() => admin.close());
  const allowEvents = await refuseEvents(admin);
  await step(`${options.nodes} nodes Ready`, async () => {
    await createObjects(admin, 'nodes', fleetNodes(scaledFleet(options.nodes)), say);
    await waitForNodes(admin, options.nodes, say, timeoutMs);
  });
  await installCrds(cluster);
  await installChartRbac(cluster);

  const generated = scaleCluster(options, seeded);
  const analysed = generated.refs.filter((ref) => ref.analysed);
  result.sizes.analysedWorkloads = analysed.length;
  result.sizes.images = generated.images.length;
  const policies = POLICY_EXAMPLES.map(
    (file) => parse(readFileSync(join(EXAMPLES, file), 'utf8')) as Record<string, unknown>,
  );
  const rest = [
    ...policies,
    ...generated.workloads,
    ...generated.services,
    ...generated.pdbs,
    ...generated.hpas,
  ];
  result.sizes.objects = generated.namespaces.length + generated.volumes.length + rest.length;
  await step(`${generated.namespaces.length} namespaces created`, async () => {
    await createObjects(admin, 'namespaces', generated.namespaces, say);
    await waitForServiceAccounts(
      admin,
      generated.namespaces.map((ns) => (ns.metadata as { name: string }).name),
    );
  });
  await step(`${rest.length + generated.volumes.length} objects created`, async () => {
    await createObjects(admin, 'PersistentVolumes', generated.volumes, say);
    await createObjects(admin, 'workloads, Services, PDBs, HPAs, policies', rest, say);
  });
  const adminClient = new KubeClient(cluster.connection());
  await step(`${generated.expectedPods} pods ready`, () =>
    waitForPods(adminClient, generated.expectedPods, say, timeoutMs),
  );
  await step(`${generated.serviceEndpoints.length} Services' EndpointSlices complete`, () =>
    waitForEndpoints(admin, generated.serviceEndpoints, say, timeoutMs),
  );
  if (options.oldRevisions > 0) {
    const deployments = await admin.listAll<Record<string, unknown>>(
      collectionPath(RESOURCES.deployments),
    );
    const replicaSets = deployments.flatMap((d) => oldRevisions(d, options.oldRevisions));
    result.sizes.objects += replicaSets.length;
    await step(`${replicaSets.length} old ReplicaSets created`, async () => {
      await createObjects(admin, 'old ReplicaSets', replicaSets, say);
      await waitForOldRevisions(admin, deployments.length, options.oldRevisions, say, timeoutMs);
    });
  }
  await allowEvents();
  return {
    registry,
    cluster,
    admin,
    adminClient,
    seeded,
    generated,
    expected: analysed.map((ref) => `${ref.namespace}/${recommendationName(ref.kind, ref.name)}`),
    saKubeconfig: await cluster.kubeconfigAsServiceAccount('kopek', 'kopek'),
  };
}

/** The floor, once over one connection pool and once with credentials per request. */
async function measureFloor(bench: Bench, built: Built): Promise<void> {
  const { options, say } = bench;
  const { admin } = built;
  bench.phase('floor');
  const watched = (Object.keys(RESOURCES) as ResourceName[]).filter((name) => name !== 'rollouts');
  const floor = async (
    namespace: string,
    agentPerRequest: boolean,
  ): Promise<FloorResult & { wallSeconds: number }> => {
    const floorResult = await runFloorProcess({
      kubeconfig: built.saKubeconfig,
      namespace,
      count: options.workloads,
      concurrency: KOPEK_WORKERS,
      resources: watched,
      agentPerRequest,
    });
    say(
      `  ${agentPerRequest ? 'credentials per request' : 'one connection pool'}: LIST ${floorResult.listedObjects} objects ${floorResult.listSeconds.toFixed(1)} s, ${floorResult.applied} applies ${floorResult.applySeconds.toFixed(1)} s, process ${floorResult.wallSeconds.toFixed(1)} s`,
    );
    // Gone before the next LIST: kopek starts with no recommendations, and must not find
    // these (it would delete them: their workloads do not exist).
    const wrecs = collectionPath(RESOURCES.workloadrecommendations, namespace);
    await admin.json('DELETE', wrecs);
    const left = await admin.listAll(wrecs);
    if (left.length > 0)
      throw new Error(`${left.length} floor recommendations are left in ${namespace}`);
    return floorResult;
  };
  // Both namespaces first, so that both floors list the same objects.
  await createObjects(
    admin,
    'namespaces',
    ['kopek-floor', 'kopek-floor-per-request'].map((name) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name },
    })),
    say,
  );
  bench.result.floor = {
    reused: await floor('kopek-floor', false),
    perRequest: await floor('kopek-floor-per-request', true),
  };
}

/** The memory cgroup kopek runs in (see ScaleOptions.memoryLimit), recorded in the result. */
function benchMemoryCgroup(bench: Bench): MemoryCgroup | undefined {
  const { options, result, say } = bench;
  if (options.profileDir && options.memoryLimit === undefined) {
    // Writing a heap snapshot of a full-size kopek took it past the chart's 512 MiB: the memory
    // cgroup killed it.
    result.memoryLimit = { none: PROFILE_WITHOUT_LIMIT };
    say(`  kopek runs without a memory limit: ${PROFILE_WITHOUT_LIMIT}`);
    return undefined;
  }
  const made = kopekMemoryCgroup(`kopek-bench-${process.pid}`, options.memoryLimit ?? 'chart');
  if ('none' in made) {
    result.memoryLimit = made;
    if (options.memoryLimit !== 'none')
      say(`  warning: kopek runs without the chart's memory limit: ${made.none}`);
    return undefined;
  }
  const { cgroup } = made;
  result.memoryLimit = { bytes: cgroup.limitBytes, cgroup: cgroup.dir };
  say(
    `  kopek runs in the memory cgroup ${cgroup.dir}, limited to ${(cgroup.limitBytes / MiB).toFixed(0)} MiB`,
  );
  return cgroup;
}

/** Starts kopek run and waits until it has written every recommendation. */
async function coldStart(bench: Bench, built: Built): Promise<Running> {
  const { options, result, say, stops, timeoutMs } = bench;
  const { expected } = built;
  bench.phase('kopek cold start');
  const tracker = new RecommendationTracker(built.adminClient);
  await tracker.start();
  stops.push(() => tracker.stop());
  if (options.profileDir) await mkdir(options.profileDir, { recursive: true });
  if (options.cpuProfileDir) await mkdir(options.cpuProfileDir, { recursive: true });
  const memoryCgroup = benchMemoryCgroup(bench);
  const machineBefore = cpuSnapshot();
  if (memoryCgroup)
    stops.push(() => {
      if ('bytes' in result.memoryLimit) result.memoryLimit.oomKills = memoryCgroup.oomKills();
      memoryCgroup.remove();
      return Promise.resolve();
    });
  const kopek = await startKopek({
    kubeconfig: built.saKubeconfig,
    registryHost: built.registry.host,
    dir: bench.workDir,
    cli: bench.kopekCli,
    env: options.kopekEnv ?? {},
    ...(memoryCgroup ? { memoryCgroup } : {}),
    nodeFlags: [
      ...(options.kopekNodeFlags ?? []),
      ...(options.profileDir
        ? [
            '--cpu-prof',
            `--cpu-prof-dir=${options.profileDir}`,
            '--heapsnapshot-signal=SIGUSR2',
            `--diagnostic-dir=${options.profileDir}`,
          ]
        : options.cpuProfileDir
          ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`]
          : []),
    ],
  });
  stops.push(() => kopek.component.stop(60_000));
  const sampler = new MemorySampler(kopek);
  stops.push(() => {
    sampler.stop();
    return Promise.resolve();
  });
  let readyAt = 0;
  void waitReady(kopek, timeoutMs).then(
    () => (readyAt = Date.now()),
    () => undefined,
  );
  const progress = setInterval(() => {
    say(
      `  recommendations written: ${tracker.writtenCount}/${expected.length}; kopek RSS ${(sampler.overall.rss / MiB).toFixed(0)} MiB (peak ${(sampler.overall.peakRss / MiB).toFixed(0)})`,
    );
  }, 10_000);
  const allWrittenAt = await Promise.race([
    tracker.waitAllWritten(expected),
    kopek.component.waitForExit().then(() => {
      const oomKills = memoryCgroup?.oomKills() ?? 0;
      throw new Error(
        `kopek exited (${String(kopek.component.exitStatus)}${oomKills > 0 ? `, killed by the OOM killer at its ${((memoryCgroup?.limitBytes ?? 0) / MiB).toFixed(0)} MiB limit` : ''}) after writing ${tracker.writtenCount} of ${expected.length} recommendations; see ${kopek.logPath}`,
      );
    }),
    sleep(timeoutMs).then(() => {
      throw new Error(
        `kopek wrote ${tracker.writtenCount} of ${expected.length} recommendations in ${options.timeoutMinutes} min; see ${kopek.logPath}`,
      );
    }),
  ]).finally(() => {
    clearInterval(progress);
  });
  // kopek's CPU up to the last recommendation, before any wait for it to be idle.
  const coldCpuSeconds = cpuSeconds(kopek.pid);
  const coldMetrics = await scrapeWhenIdle(kopek, 15_000);
  const allWrittenSeconds = (allWrittenAt - kopek.startedAt) / 1000;
  const cold = {
    readySeconds: readyAt > 0 ? (readyAt - kopek.startedAt) / 1000 : Number.NaN,
    allWrittenSeconds,
    ratioToFloor: result.floor ? allWrittenSeconds / result.floor.reused.wallSeconds : undefined,
    cpuSeconds: coldCpuSeconds,
    writes: await writeCalls(kopek.metricsUrl),
    requests: sum(coldMetrics, 'kopek_kube_requests_total'),
    recommendations: tracker.size,
    activity: activitySince([], coldMetrics),
    machineCpu: cpuSplit(machineBefore, cpuSnapshot(processNames(kopek))),
  };
  result.cold = cold;
  say(
    `  every recommendation written ${cold.allWrittenSeconds.toFixed(1)} s after start${cold.ratioToFloor ? ` (${cold.ratioToFloor.toFixed(2)}× the floor)` : ''}; ready at ${cold.readySeconds.toFixed(1)} s`,
  );
  return { kopek, tracker, sampler, peak: sampler.takeWindow() };
}

/** --profile: a heap snapshot after the cold start, then kopek stops and both are summarized. */
async function profileColdStart(bench: Bench, running: Running, dir: string): Promise<void> {
  const { kopek, sampler, peak } = running;
  bench.phase('profile');
  const snapshot = await heapSnapshot(kopek, dir);
  bench.say(`  heap snapshot: ${snapshot}`);
  await kopek.component.stop(120_000);
  const files = (await readdir(dir))
    .filter((name) => name.endsWith('.cpuprofile') || name.endsWith('.heapsnapshot'))
    .map((name) => join(dir, name));
  bench.result.profile = execFileSync(
    process.execPath,
    ['--max-old-space-size=12288', PROFILE_SCRIPT, ...files],
    { encoding: 'utf8', maxBuffer: 16 * MiB },
  );
  bench.result.memory = {
    peak: { rssBytes: peak.peakRss, heapBytes: peak.peakHeap },
    settled: { rssBytes: 0, heapBytes: 0 },
    missedHeapSamples: sampler.missedHeapSamples,
  };
}

/** Waits for kopek to settle, then counts what it does in the steady-state window. */
async function steadyState(bench: Bench, running: Running): Promise<Memory> {
  const { options, say } = bench;
  const { kopek, tracker, sampler } = running;
  bench.phase('settle');
  const settleSeconds = await settle(
    kopek,
    tracker,
    options.settleQuietSeconds * 1000,
    bench.timeoutMs,
  );
  say(`  settled ${settleSeconds.toFixed(0)} s after the last recommendation`);

  bench.phase('steady state');
  const before = await scrape(kopek.metricsUrl, 60_000);
  const writesBefore = await writeCalls(kopek.metricsUrl);
  const eventsBefore = tracker.events;
  const cpuBefore = cpuSeconds(kopek.pid);
  const started = performance.now();
  for (let left = options.steadySeconds; left > 0; left -= 60) {
    await sleep(Math.min(60, left) * 1000);
    say(
      `  ${Math.max(0, left - 60)} s to go; kopek RSS ${(sampler.overall.rss / MiB).toFixed(0)} MiB`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const after = await scrape(kopek.metricsUrl, 60_000);
  const byRequest = requestsSince(before, after);
  const requests = Object.values(byRequest).reduce((a, b) => a + b, 0);
  const steady = {
    seconds,
    writes: (await writeCalls(kopek.metricsUrl)) - writesBefore,
    recommendationEvents: tracker.events - eventsBefore,
    requestsPerMinute: (requests * 60) / seconds,
    byRequest: Object.fromEntries(
      Object.entries(byRequest).map(([k, v]) => [k, (v * 60) / seconds]),
    ),
    cpuPercent: ((cpuSeconds(kopek.pid) - cpuBefore) * 100) / seconds,
    activity: activitySince(before, after),
  };
  bench.result.steady = steady;
  say(
    `  writes ${steady.writes}, ${steady.requestsPerMinute.toFixed(1)} requests/min, CPU ${steady.cpuPercent.toFixed(1)}%`,
  );
  return memoryNow(kopek, sampler, after);
}

/** kopek's memory now, by kind, given a scrape of its /metrics just taken. */
function memoryNow(kopek: KopekProcess, sampler: MemorySampler, metrics: Series[]): Memory {
  const resident = residentByKindOf(kopek.pid);
  return {
    rssBytes: sampler.overall.rss,
    heapBytes: sum(metrics, 'nodejs_heap_size_used_bytes'),
    ...(resident
      ? {
          byKind: {
            ...resident,
            v8HeapCommitted: sum(metrics, 'nodejs_heap_size_total_bytes'),
            external: sum(metrics, 'nodejs_external_memory_bytes'),
          },
        }
      : {}),
  };
}

/** The change phase's latencies, overall and by type of change. */
export function changeLatencies(
  run: ChangeRun,
): Pick<NonNullable<ScaleResult['changes']>, 'p50Ms' | 'p99Ms' | 'maxMs' | 'byType'> {
  const latencies = (type?: ChangeType): number[] =>
    run.timings
      .filter((t) => type === undefined || t.type === type)
      .map((t) => t.latencyMs ?? Number.POSITIVE_INFINITY);
  const byType = Object.fromEntries(
    (['scale', 'image', 'annotation'] as const).map((type) => {
      const values = latencies(type);
      const p50 = quantile(values, 0.5);
      const p99 = quantile(values, 0.99);
      return [
        type,
        {
          count: run.timings.filter((t) => t.type === type).length,
          ...(p50 !== undefined ? { p50Ms: p50 } : {}),
          ...(p99 !== undefined ? { p99Ms: p99 } : {}),
          notUpdated: run.timings.filter((t) => t.type === type && t.latencyMs === undefined)
            .length,
        },
      ];
    }),
  ) as NonNullable<ScaleResult['changes']>['byType'];
  return {
    p50Ms: quantile(latencies(), 0.5),
    p99Ms: quantile(latencies(), 0.99),
    maxMs: quantile(latencies(), 1),
    byType,
  };
}

/** kopek and the benchmark both run as `node`: names them by role in the machine's CPU split. */
function processNames(kopek: KopekProcess): ProcessNames {
  return new Map([
    [kopek.pid, 'kopek'],
    [process.pid, 'bench'],
  ]);
}

/** The monotonic clock in µs, as V8's CPU profiles time their samples. */
function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * --cpu-prof: the change phase's frames from the profile kopek wrote when it stopped (the
 * newest one in the directory).
 */
async function summarizeChangeProfile(dir: string, window: TimeWindow): Promise<string> {
  const profiles = (await readdir(dir)).filter((name) => name.endsWith('.cpuprofile')).sort();
  const newest = profiles.at(-1);
  if (newest === undefined) return `no CPU profile in ${dir}: kopek did not exit cleanly`;
  return `During the change phase:\n${summarizeCpuProfile(join(dir, newest), 25, window)}`;
}

/** Workload changes at the given rate, each timed to its recommendation's update. */
async function changePhase(
  bench: Bench,
  built: Built,
  running: Running,
): Promise<{ window: TimeWindow; memory: Memory }> {
  const { options } = bench;
  const { kopek, tracker } = running;
  bench.phase('changes');
  const writesBefore = await writeCalls(kopek.metricsUrl);
  const eventsBefore = tracker.events;
  const metricsBefore = await scrape(kopek.metricsUrl, 60_000);
  const apiserverBefore = await apiServerMetrics(built.admin);
  const cpuBefore = cpuSeconds(kopek.pid);
  const machineBefore = cpuSnapshot(processNames(kopek));
  const startUs = monotonicMicros();
  const run = await runChanges({
    api: built.admin,
    tracker,
    refs: built.generated.refs,
    images: built.seeded,
    rate: options.changeRate,
    seconds: options.changeSeconds,
    drainMs: options.drainSeconds * 1000,
    say: bench.say,
  });
  const window = { startUs, endUs: monotonicMicros() };
  bench.result.changes = {
    count: run.timings.length,
    achievedRate: run.achievedRate,
    failed: run.failed,
    skipped: run.skipped,
    ...changeLatencies(run),
    notUpdated: run.timings.filter((t) => t.latencyMs === undefined).length,
    kopekWrites: (await writeCalls(kopek.metricsUrl)) - writesBefore,
    recommendationEvents: tracker.events - eventsBefore,
    activity: activitySince(metricsBefore, await scrape(kopek.metricsUrl, 60_000)),
    cpuSeconds: cpuSeconds(kopek.pid) - cpuBefore,
    machineCpu: cpuSplit(machineBefore, cpuSnapshot(processNames(kopek))),
    apiserver: apiServerActivity(apiserverBefore, await apiServerMetrics(built.admin)),
  };
  return {
    window,
    memory: memoryNow(kopek, running.sampler, await scrape(kopek.metricsUrl, 60_000)),
  };
}

/** One `kopek analyze` over a kubectl dump of the cluster in `format`. */
async function analyzeDump(
  bench: Bench,
  built: Built,
  format: 'yaml' | 'json',
): Promise<NonNullable<ScaleResult['analyze']>[number]> {
  const dumpPath = join(bench.workDir, `dump.${format}`);
  const made = await dump(built.cluster, format, dumpPath, bench.timeoutMs);
  const failed = { dump: format, dumpBytes: made.bytes, dumpSeconds: made.seconds };
  if (made.error !== undefined)
    return {
      ...failed,
      seconds: 0,
      maxRssBytes: 0,
      recommendations: undefined,
      exitCode: -1,
      error: made.error,
    };
  const outPath = join(bench.workDir, `analyze-${format}.json`);
  const analyzed = await timed(
    process.execPath,
    [
      bench.kopekCli,
      'analyze',
      '-f',
      dumpPath,
      '-o',
      'json',
      '-q',
      '--registry-lookup',
      '--insecure-registries',
      built.registry.host,
    ],
    { stdout: outPath, timeoutMs: bench.timeoutMs },
  );
  await rm(dumpPath, { force: true });
  bench.say(
    `  ${format} dump ${(made.bytes / MiB).toFixed(0)} MiB in ${made.seconds.toFixed(1)} s; analyze ${analyzed.seconds.toFixed(1)} s, ${(analyzed.maxRssBytes / MiB).toFixed(0)} MiB peak, exit ${analyzed.exitCode}`,
  );
  return {
    ...failed,
    seconds: analyzed.seconds,
    maxRssBytes: analyzed.maxRssBytes,
    recommendations: await countRecommendations(outPath),
    exitCode: analyzed.exitCode,
    ...(analyzed.exitCode !== 0
      ? {
          error: analyzed.timedOut
            ? `killed after ${bench.options.timeoutMinutes} min`
            : analyzed.stderr.trim().split('\n').slice(-3).join(' '),
        }
      : {}),
  };
}

/** Every phase after the cluster is built, in order. */
async function measure(bench: Bench, built: Built): Promise<void> {
  const { options, result } = bench;
  if (!options.profileDir) await measureFloor(bench, built);
  const running = await coldStart(bench, built);
  if (options.profileDir) {
    await profileColdStart(bench, running, options.profileDir);
    return;
  }
  const manifestGets = async (): Promise<number> => (await built.registry.manifestGets()).length;
  const settled = await steadyState(bench, running);
  const manifestGetsAfterColdStart = await manifestGets();
  const changes = await changePhase(bench, built, running);
  result.registry = {
    distinctImages: built.generated.images.length,
    manifestGetsAfterColdStart,
    manifestGetsAtEnd: await manifestGets(),
  };
  const { sampler, peak } = running;
  result.memory = {
    peak: {
      rssBytes: sampler.overall.peakRss,
      heapBytes: Math.max(peak.peakHeap, sampler.overall.peakHeap),
    },
    settled,
    afterChanges: changes.memory,
    missedHeapSamples: sampler.missedHeapSamples,
  };
  // Under --cpu-prof, kopek writes its profile (minutes of samples) as it exits: allow for it.
  await running.kopek.component.stop(options.cpuProfileDir ? 300_000 : 60_000);
  sampler.stop();
  if (options.cpuProfileDir)
    result.profile = await summarizeChangeProfile(options.cpuProfileDir, changes.window);
  if (options.analyzeFormats.length > 0) {
    bench.phase('kopek analyze');
    result.analyze = [];
    for (const format of options.analyzeFormats)
      result.analyze.push(await analyzeDump(bench, built, format));
  }
}

export async function runScaleBench(options: ScaleOptions): Promise<ScaleResult> {
  const { say } = options;
  const result: ScaleResult = {
    sizes: {
      nodes: options.nodes,
      workloads: options.workloads,
      pods: options.pods,
      images: options.images ?? defaultImageCount(options.workloads),
      analysedWorkloads: 0,
      objects: 0,
    },
    node: process.version,
    kopekNodeFlags: [...(options.kopekNodeFlags ?? [])],
    kopekEnv: { ...options.kopekEnv },
    memoryLimit: { none: 'not started yet' },
    kopekBuild: options.typescript === true ? 'typescript' : 'compiled',
    cpus: cpus().length,
    load: { start: uptime(), end: '', byPhase: {} },
    imports: [],
    setupSeconds: {},
  };
  const phase = (name: string): void => {
    result.load.byPhase[name] = loadavg().map((l) => Math.round(l * 100) / 100);
    say(`== ${name} (load ${loadavg()[0]?.toFixed(2) ?? '?'})`);
  };
  say(`machine: ${result.load.start}`);

  if (options.typescript !== true) say('compiling kopek, as the image runs it');
  const compiled = options.typescript === true ? undefined : await compileKopekCli();
  const kopekCli = compiled?.cli ?? KOPEK_CLI;
  if (options.importRuns > 0) {
    phase('import cost');
    const targets = options.importTargets ?? [
      ...(compiled
        ? [{ what: 'kopek compiled, as the image runs it', specifier: compiled.cli }]
        : []),
      ...IMPORT_TARGETS,
    ];
    result.imports = await importCosts(options.importRuns, targets);
    for (const cost of result.imports)
      say(
        `  ${cost.what}: ${cost.seconds.toFixed(2)} s, ${(cost.maxRssBytes / MiB).toFixed(0)} MiB`,
      );
  }

  const workDir = await mkdtemp(join(tmpdir(), 'kopek-scale-'));
  // Stopped by a signal: the components die with this process (their guards see to it); the
  // data would stay behind.
  const removeWorkDir = (): void => {
    if (!options.keep) rmSync(workDir, { recursive: true, force: true });
    if (compiled) rmSync(compiled.dir, { recursive: true, force: true });
  };
  process.on('exit', removeWorkDir);
  const bench: Bench = {
    options,
    result,
    say,
    workDir,
    kopekCli,
    timeoutMs: options.timeoutMinutes * 60_000,
    stops: [],
    phase,
    step: async (name, work) => {
      const started = performance.now();
      const value = await work();
      result.setupSeconds[name] = (performance.now() - started) / 1000;
      say(`  ${name}: ${result.setupSeconds[name].toFixed(1)} s`);
      return value;
    },
  };
  try {
    await measure(bench, await buildCluster(bench));
    return result;
  } catch (error) {
    throw new ScaleBenchFailure(error, result);
  } finally {
    result.load.end = uptime();
    for (const stop of bench.stops.reverse()) await stop().catch(() => undefined);
    process.off('exit', removeWorkDir);
    if (!options.keep) await rm(workDir, { recursive: true, force: true });
    else say(`kept ${workDir}`);
    if (compiled) await rm(compiled.dir, { recursive: true, force: true });
  }
}
