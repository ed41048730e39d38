/**
 * The soak and chaos run: a local cluster under steady churn (Deployments created, deleted,
 * scaled and given new images, KWOK nodes added and removed), two kopek replicas watching it
 * through a freezable proxy, an OCI registry behind a fault proxy, and — with `chaos` — faults
 * one after another: kill -9 of the API server and of etcd (then restarted), watches frozen,
 * the registry slow (5 s) and failing (500s), the leader killed with SIGKILL (then restarted).
 * It samples each replica's heap, RSS, open file descriptors, connections to the API server,
 * reconcile errors and queue depth. When churn and faults stop, it waits until the
 * recommendations stop changing, then deletes them all and lets a fresh kopek compute them from
 * scratch: the two sets must be equal, minus timestamps.
 */
import { CoreV1Api } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KubeClient, type KubeObject, type ResourceType } from '../../operator/kube/client.ts';
import { RESOURCES } from '../../operator/kube/resources.ts';
import { LEASE } from '../../operator/leader.ts';
import type { LocalCluster } from '../cluster/cluster.ts';
import { fleetNodes } from '../cluster/fleet.ts';
import { Component, waitUntil } from '../cluster/process.ts';
import { FaultProxy, PASS, type FaultRule } from '../registry/fault-proxy.ts';
import { LocalRegistry } from '../registry/registry.ts';
import { pushImage, pushIndex, type Platform } from '../registry/seed.ts';
import { KOPEK_CLI, scrape, startClusterForKopek, type MetricSample } from '../support/kopek.ts';
import { freePort } from '../support/ports.ts';
import { FreezableProxy } from '../support/tcp-proxy.ts';
import { childrenOf } from '../support/proc.ts';
import { processFacts } from './processes.ts';
import {
  kopekMemoryCgroup,
  type MemoryCgroup,
  type MemoryLimitOption,
} from '../bench/scale/memory-limit.ts';

export interface SoakOptions {
  /** Minutes of churn (faults run within them; a short run extends until each fault ran once). */
  minutes: number;
  /** Changes to the cluster per second. */
  changesPerSecond: number;
  chaos: boolean;
  /** Seeds the churn and the fault schedule. */
  seed: number;
  log: (line: string) => void;
  sampleIntervalMs?: number;
  /** Node flags every kopek replica runs with (the CLI passes the chart's `nodeOptions`). */
  kopekNodeFlags?: readonly string[];
  /** Environment variables every replica runs with (the CLI passes the chart's `mallocEnv`). */
  kopekEnv?: Readonly<Record<string, string>>;
  /** The `kopek` CLI every replica runs (default: the TypeScript sources; the CLI passes kopek compiled as the image runs it). */
  kopekCli?: string;
  /** Each replica runs in a memory cgroup of its own with this limit, as its pod (default none). */
  memoryLimit?: MemoryLimitOption;
}

export type FaultKind =
  | 'kill-apiserver'
  | 'kill-etcd'
  | 'freeze-watches'
  | 'registry-slow'
  | 'registry-500'
  | 'kill-leader';

export interface Fault {
  kind: FaultKind;
  /** Seconds since the start of churn. */
  start: number;
  end: number;
  detail: string;
}

export interface Sample {
  /** Seconds since the start of churn. */
  at: number;
  replica: string;
  /** Which start of this replica (a SIGKILLed leader is started again). */
  incarnation: number;
  heapBytes: number;
  /** The heap V8 has committed (used plus free space it keeps): what the heap costs in RSS. */
  heapTotalBytes: number;
  rssBytes: number;
  /** Anonymous resident memory (the JS heap, malloc), without mapped files such as the binary. */
  rssAnonBytes: number;
  /** Memory outside the JS heap that V8 knows of (Buffers, ArrayBuffers). */
  externalBytes: number;
  fds: number;
  /** Established connections to the API server (watches and the request pool). */
  apiConnections: number;
  /** Objects in its watch cache (kopek_cache_objects): the cluster's size as it sees it. */
  cacheObjects: number;
  reconcileErrors: number;
  /** Reconcile errors so far by reason (kopek_reconcile_errors_total). */
  errorsByReason: Record<string, number>;
  queueDepth: number;
  leading: boolean;
}

type Trends =
  | 'heapBytes'
  | 'heapTotalBytes'
  | 'rssBytes'
  | 'rssAnonBytes'
  | 'externalBytes'
  | 'fds'
  | 'apiConnections'
  | 'cacheObjects';

export interface Trend {
  replica: string;
  incarnation: number;
  /** Whether the replica led through this stretch (a leader holds facts and results). */
  leading: boolean;
  minutes: number;
  first5: number;
  last5: number;
  /** Least-squares slope over the stretch, per hour. */
  slopePerHour: number;
}

export interface ErrorCount {
  total: number;
  outsideFaults: number;
  byFault: Partial<Record<FaultKind, number>>;
}

export interface SoakReport {
  seed: number;
  chaos: boolean;
  kopekNodeFlags: readonly string[];
  kopekEnv: Readonly<Record<string, string>>;
  /** The `kopek` CLI the replicas ran. */
  kopekCli: string;
  /** Each replica's memory limit and how often the OOM killer killed it, or why there was none. */
  memoryLimit: { bytes: number; oomKills: Record<string, number> } | { none: string };
  churnSeconds: number;
  changes: { applied: number; failed: number; skipped: number; perSecond: number };
  faults: Fault[];
  samples: Sample[];
  trends: Record<Trends, Trend[]>;
  reconcileErrors: {
    total: number;
    outsideFaults: number;
    /** By reason: in all, outside the fault windows, and in the window of each kind of fault. */
    byReason: Record<string, ErrorCount>;
  };
  queueDepth: { max: number; atEnd: number };
  convergence: {
    equal: boolean;
    recommendations: number;
    differences: string[];
    /** Seconds from the end of the last fault (and of churn) until kopek's recommendations equalled the fresh ones. */
    secondsAfterLastFault?: number;
  };
  load: { start: string; end: string };
  /** Where the time went: each phase of the run and its seconds. */
  phases: { name: string; seconds: number }[];
}

/** A small seeded generator (mulberry32): the same seed gives the same churn and faults. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const uptime = (): string => execFileSync('uptime', { encoding: 'utf8' }).trim();

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const NAMESPACES = ['soak-a', 'soak-b', 'soak-c'];
const DEPLOYMENTS_PER_NAMESPACE = 15;

interface Workload {
  namespace: string;
  name: string;
  replicas: number;
  image: string;
}

function deploymentObject(w: Workload): KubeObject & Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: w.name, namespace: w.namespace },
    spec: {
      replicas: w.replicas,
      selector: { matchLabels: { app: w.name } },
      template: {
        metadata: { labels: { app: w.name } },
        spec: {
          containers: [
            {
              name: 'app',
              image: w.image,
              resources: { requests: { cpu: '100m', memory: '128Mi' } },
              readinessProbe: { httpGet: { path: '/', port: 8080 } },
            },
          ],
        },
      },
    },
  };
}

/** One more KWOK node: amd64 or arm64 (Graviton), on-demand or Spot, in one of three zones. */
function soakNode(index: number): KubeObject {
  const arm = index % 2 === 1;
  const [node] = fleetNodes({
    region: 'us-east-1',
    pools: [
      {
        name: `soak${index}`,
        instanceType: arm ? 'm7g.xlarge' : 'm6i.xlarge',
        arch: arm ? 'arm64' : 'amd64',
        capacityType: index % 3 === 0 ? 'spot' : 'on-demand',
        provisioner: 'karpenter',
        zones: [['us-east-1a', 'us-east-1b', 'us-east-1c'][index % 3] ?? 'us-east-1a'],
        count: 1,
        cpu: '3920m',
        memory: '14Gi',
      },
    ],
  });
  if (!node) throw new Error('fleetNodes made no node');
  return node;
}

/** A kopek process as the soak runs it; started again after a SIGKILL. */
class Replica {
  readonly identity: string;
  readonly url: string;
  incarnation = 0;
  private readonly component: Component;

  constructor(
    identity: string,
    port: number,
    kopek: {
      cli: string;
      nodeFlags: readonly string[];
      env: Readonly<Record<string, string>>;
      args: string[];
    },
    logPath: string,
    memoryCgroup: MemoryCgroup | undefined,
  ) {
    this.identity = identity;
    this.url = `http://127.0.0.1:${port}`;
    const node = {
      command: process.execPath,
      args: [
        ...kopek.nodeFlags,
        kopek.cli,
        'run',
        ...kopek.args,
        '--identity',
        identity,
        '--metrics-bind-address',
        `127.0.0.1:${port}`,
      ],
    };
    this.component = new Component({
      name: identity,
      ...(memoryCgroup ? memoryCgroup.wrap(node.command, node.args) : node),
      logPath,
      env: { ...process.env, ...kopek.env },
    });
  }

  async start(): Promise<void> {
    this.component.start();
    this.incarnation++;
    await waitUntil(
      this.component,
      'served /readyz',
      async () => (await fetch(`${this.url}/readyz`)).ok,
      120_000,
    );
  }

  /** The node process (the component runs under a shell guard). */
  get pid(): number | undefined {
    const guard = this.component.pid;
    return guard === undefined ? undefined : childrenOf(guard)[0];
  }

  get running(): boolean {
    return this.component.running;
  }

  /** SIGKILL of kopek itself, as the OOM killer or a node failure would. */
  async killHard(): Promise<void> {
    const pid = this.pid;
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while (this.component.running && Date.now() < deadline) await sleep(100);
  }

  stop(): Promise<void> {
    return this.component.stop();
  }
}

/** A WorkloadRecommendation as compared: without timestamps, versions and server fields. */
function comparable(object: Record<string, unknown>): Record<string, unknown> {
  const metadata = object.metadata as Record<string, unknown>;
  const status = structuredClone((object.status ?? {}) as Record<string, unknown>);
  for (const condition of (status.conditions ?? []) as Record<string, unknown>[])
    delete condition.lastTransitionTime;
  return {
    metadata: {
      name: metadata.name,
      namespace: metadata.namespace,
      labels: metadata.labels,
      ownerReferences: metadata.ownerReferences,
    },
    spec: object.spec,
    status,
  };
}

type Snapshot = Map<string, string>;

async function snapshot(client: KubeClient): Promise<Snapshot> {
  const items: Record<string, unknown>[] = [];
  let continueToken: string | undefined;
  do {
    const page = await client.listPage<Record<string, unknown>>(RESOURCES.workloadrecommendations, {
      limit: 500,
      ...(continueToken ? { continueToken } : {}),
    });
    items.push(...page.items);
    continueToken = page.metadata.continue;
  } while (continueToken);
  const out: Snapshot = new Map();
  for (const item of items) {
    const view = comparable(item);
    const meta = view.metadata as { namespace: string; name: string };
    out.set(`${meta.namespace}/${meta.name}`, JSON.stringify(view));
  }
  return out;
}

const digest = (s: Snapshot): string =>
  createHash('sha256')
    .update(JSON.stringify([...s.entries()].sort()))
    .digest('hex');

function differences(chaos: Snapshot, fresh: Snapshot): string[] {
  const out: string[] = [];
  for (const [key, value] of chaos) {
    const other = fresh.get(key);
    if (other === undefined) out.push(`${key}: kopek kept it; a fresh kopek does not write it`);
    else if (other !== value) out.push(`${key}: differs: ${value} vs fresh ${other}`);
  }
  for (const key of fresh.keys())
    if (!chaos.has(key)) out.push(`${key}: missing; a fresh kopek writes it`);
  return out;
}

async function listAll<T>(client: KubeClient, type: ResourceType): Promise<T[]> {
  const items: T[] = [];
  let continueToken: string | undefined;
  do {
    const page = await client.listPage<T>(type, {
      limit: 500,
      ...(continueToken ? { continueToken } : {}),
    });
    items.push(...page.items);
    continueToken = page.metadata.continue;
  } while (continueToken);
  return items;
}

interface PodView {
  metadata: { name: string; namespace: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
}
interface DeploymentView {
  metadata: { name: string; namespace: string; generation?: number };
  spec: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
  };
}

/**
 * What the cluster's own controllers still have to do once churn stops: rollouts to finish, pods
 * to terminate, pods of deleted nodes to collect. kopek is compared with a fresh kopek only on a
 * settled cluster, so both see the same world. Returns a digest of that world, to check it did
 * not move during the comparison.
 *
 * Pods of deleted nodes are force-deleted here, as the pod garbage collector does only after a
 * quarantine of 40 s checked every 20 s (constants in kube-controller-manager, no flag): the
 * ReplicaSets then replace them at once instead of up to a minute later.
 */
async function untilClusterSettled(
  client: KubeClient,
  cluster: LocalCluster,
  maxMs: number,
  log: (line: string) => void,
): Promise<string> {
  const started = Date.now();
  const deadline = started + maxMs;
  let last = '';
  let nextLog = started + 20_000;
  while (Date.now() < deadline) {
    try {
      const [nodes, pods, deployments] = await Promise.all([
        listAll<{ metadata: { name: string } }>(client, RESOURCES.nodes),
        listAll<PodView>(client, RESOURCES.pods),
        listAll<DeploymentView>(client, RESOURCES.deployments),
      ]);
      const nodeNames = new Set(nodes.map((node) => node.metadata.name));
      const terminating = pods.filter((pod) => pod.metadata.deletionTimestamp !== undefined);
      const orphaned = pods.filter(
        (pod) => pod.spec.nodeName !== undefined && !nodeNames.has(pod.spec.nodeName),
      );
      const rollingOut = deployments.filter((d) => {
        const want = d.spec.replicas ?? 1;
        return (
          (d.status?.observedGeneration ?? 0) < (d.metadata.generation ?? 0) ||
          (d.status?.replicas ?? 0) !== want ||
          (d.status?.updatedReplicas ?? 0) !== want ||
          (d.status?.readyReplicas ?? 0) !== want
        );
      });
      if (orphaned.length > 0) {
        const deleting = Date.now();
        await forceDelete(cluster, orphaned);
        log(
          `force-deleted ${orphaned.length} pods of removed nodes in ${((Date.now() - deleting) / 1000).toFixed(1)} s`,
        );
      }
      const unscheduled = pods.filter((pod) => pod.spec.nodeName === undefined).length;
      last =
        `${terminating.length} pods terminating, ${orphaned.length} pods on removed nodes, ` +
        `${rollingOut.length} Deployments rolling out (${unscheduled} pods unscheduled, ${pods.length} pods in all)`;
      if (terminating.length + orphaned.length + rollingOut.length === 0)
        return createHash('sha256')
          .update(
            JSON.stringify([
              [...nodeNames].sort(),
              pods
                .map((p) => `${p.metadata.namespace}/${p.metadata.name}@${p.spec.nodeName ?? ''}`)
                .sort(),
              deployments
                .map(
                  (d) => `${d.metadata.namespace}/${d.metadata.name}:${d.metadata.generation ?? 0}`,
                )
                .sort(),
            ]),
          )
          .digest('hex');
    } catch (error) {
      last = String(error);
    }
    if (Date.now() >= nextLog) {
      log(`cluster settling for ${((Date.now() - started) / 1000).toFixed(0)} s: ${last}`);
      nextLog += 20_000;
    }
    await sleep(2000);
  }
  throw new Error(`the cluster did not settle within ${maxMs / 1000} s: ${last}`);
}

/**
 * Deletes the pods of removed nodes at once (grace period 0), as the pod garbage collector deletes
 * orphans: one delete-collection per namespace and node, selected by spec.nodeName, so the API
 * server deletes them without a round trip per pod (kubectl took about 4 min for 333 pods).
 */
async function forceDelete(cluster: LocalCluster, pods: readonly PodView[]): Promise<void> {
  const selections = new Map<string, { namespace: string; node: string }>();
  for (const pod of pods) {
    const { namespace } = pod.metadata;
    const node = pod.spec.nodeName ?? '';
    selections.set(JSON.stringify([namespace, node]), { namespace, node });
  }
  await Promise.all(
    [...selections.values()].map(({ namespace, node }) => deletePodsOn(cluster, namespace, node)),
  );
}

/** Deletes at once (grace period 0) the pods of one namespace on a node. */
async function deletePodsOn(cluster: LocalCluster, namespace: string, node: string): Promise<void> {
  await cluster
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .deleteCollectionNamespacedPod({
      namespace,
      fieldSelector: `spec.nodeName=${node}`,
      gracePeriodSeconds: 0,
    });
}

interface HistoryEntry {
  at: number;
  digest: string;
  snapshot: Snapshot;
}

/**
 * Trends over each stretch of one process in one role: a standby that takes the lease builds
 * its facts and results, so its memory rises once; that is not growth over time.
 */
function trend(samples: Sample[], field: Trends): Trend[] {
  const groups: Sample[][] = [];
  const open = new Map<string, Sample[]>();
  for (const sample of samples) {
    const process = `${sample.replica}#${sample.incarnation}`;
    let group = open.get(process);
    if (group?.[0]?.leading !== sample.leading) {
      group = [];
      groups.push(group);
      open.set(process, group);
    }
    group.push(sample);
  }
  const out: Trend[] = [];
  for (const group of groups) {
    const first = group[0];
    const last = group.at(-1);
    if (!first || !last) continue;
    const span = last.at - first.at;
    const mean = (list: Sample[]): number =>
      list.reduce((sum, s) => sum + s[field], 0) / Math.max(1, list.length);
    const window = Math.min(300, span / 3);
    const n = group.length;
    const mx = group.reduce((s, x) => s + x.at, 0) / n;
    const my = mean(group);
    const sxy = group.reduce((s, x) => s + (x.at - mx) * (x[field] - my), 0);
    const sxx = group.reduce((s, x) => s + (x.at - mx) ** 2, 0);
    out.push({
      replica: first.replica,
      incarnation: first.incarnation,
      leading: first.leading,
      minutes: Math.round((span / 60) * 10) / 10,
      first5: mean(group.filter((s) => s.at <= first.at + window)),
      last5: mean(group.filter((s) => s.at >= last.at - window)),
      slopePerHour: sxx === 0 ? 0 : (sxy / sxx) * 3600,
    });
  }
  return out;
}

/**
 * Reconcile errors by reason (and `''` for all of them together): in all (the last count of each
 * process, summed) and outside the fault windows (and a minute after each).
 */
function reconcileErrors(
  samples: readonly Sample[],
  faults: readonly Fault[],
): Record<string, ErrorCount> {
  const inFault = (at: number): Fault | undefined =>
    faults.findLast((f) => at >= f.start && at <= f.end + 60);
  const previous = new Map<string, number>();
  const out: Record<string, ErrorCount> = {};
  for (const s of samples) {
    const process = `${s.replica}#${s.incarnation}`;
    for (const [reason, count] of Object.entries({ '': s.reconcileErrors, ...s.errorsByReason })) {
      const key = `${process} ${reason}`;
      const delta = count - (previous.get(key) ?? 0);
      previous.set(key, count);
      if (delta <= 0) continue;
      const entry = (out[reason] ??= { total: 0, outsideFaults: 0, byFault: {} });
      entry.total += delta;
      const fault = inFault(s.at);
      if (fault) entry.byFault[fault.kind] = (entry.byFault[fault.kind] ?? 0) + delta;
      else entry.outsideFaults += delta;
    }
  }
  return out;
}

/** A counter's values summed by its `reason` label. */
function byReason(metrics: readonly MetricSample[], name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of metrics)
    if (m.name === name) out[m.labels.reason ?? ''] = (out[m.labels.reason ?? ''] ?? 0) + m.value;
  return out;
}

/**
 * Waits until one of `replicas` leads and reports no pending work (kopek_pending_work all 0:
 * recommendations, Apply mode and live prices) on two scrapes a second apart: its
 * recommendations will not change without a new event.
 * Returns false at the deadline.
 */
async function untilIdle(replicas: readonly Replica[], deadline: number): Promise<boolean> {
  let idleScrapes = 0;
  while (Date.now() < deadline) {
    let idle = false;
    for (const replica of replicas) {
      if (!replica.running) continue;
      try {
        const metrics = await scrape(replica.url);
        const leading = metrics.some(
          (m) => m.name === 'leader_election_master_status' && m.value === 1,
        );
        const pending = metrics.filter((m) => m.name === 'kopek_pending_work');
        if (leading && pending.length > 0 && pending.every((m) => m.value === 0)) idle = true;
      } catch {
        // restarting
      }
    }
    idleScrapes = idle ? idleScrapes + 1 : 0;
    if (idleScrapes >= 2) return true;
    await sleep(1000);
  }
  return false;
}

/** One soak run: the parts it started, the churn, the samples and the faults. */
class Soak {
  readonly options: SoakOptions;
  readonly rand: () => number;
  readonly stops: (() => Promise<void>)[] = [];
  readonly samples: Sample[] = [];
  readonly faults: Fault[] = [];
  readonly changes = { applied: 0, failed: 0, skipped: 0 };
  readonly workloads = new Map<string, Workload>();
  readonly replicas: Replica[] = [];
  readonly phases: { name: string; seconds: number }[] = [];
  private phaseStart = Date.now();
  dir = '';
  started = 0;
  images: string[] = [];
  kopekArgs: string[] = [];
  private freshTags = 0;
  private nextWorkload = 0;
  private nodeIndex = 0;
  private readonly extraNodes: number[] = [];
  private inFlight = 0;
  private readonly churnStop = new AbortController();
  memoryLimit: SoakReport['memoryLimit'] = { none: 'no replica started' };
  private readonly oomKillCounters = new Map<string, () => number>();
  // Set by setUp.
  registry!: LocalRegistry;
  registryProxy!: FaultProxy;
  cluster!: LocalCluster;
  admin!: KubeClient;
  apiProxy!: FreezableProxy;

  constructor(options: SoakOptions) {
    this.options = options;
    this.rand = random(options.seed);
  }

  /** Ends the current phase of the run, and logs its length. */
  phase(name: string): void {
    const seconds = (Date.now() - this.phaseStart) / 1000;
    this.phaseStart = Date.now();
    this.phases.push({ name, seconds });
    this.options.log(`${name}: ${seconds.toFixed(0)} s`);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rand() * items.length)] as T;
  }

  seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** The registry, its fault proxy and the first images. */
  private async startRegistry(): Promise<void> {
    this.registry = await LocalRegistry.start({ dir: this.dir, name: 'soak-registry' });
    this.stops.push(() => this.registry.stop());
    this.registryProxy = await FaultProxy.start(this.registry.host);
    this.stops.push(() => this.registryProxy.close());
    const target = { url: this.registry.url };
    const tags = ['m1', 'm2', 'm3', 'm4', 'a1', 'a2'];
    // One tag at a time: the tags share blobs, and the registry can refuse a manifest whose
    // blob another upload of the same digest is still moving into place (DIGEST_INVALID).
    for (const tag of tags)
      await (tag.startsWith('m')
        ? pushIndex(target, 'soak/app', tag, [AMD64, ARM64], 'oci')
        : pushImage(target, 'soak/app', tag, AMD64, 'docker'));
    this.images = tags.map((tag) => `${this.registryProxy.host}/soak/app:${tag}`);
  }

  private async startCluster(): Promise<void> {
    // The cluster's own lines (how long a restarted component took to become healthy).
    this.cluster = await startClusterForKopek({
      log: (line) => {
        this.options.log(`cluster: ${line}`);
      },
    });
    this.stops.push(() => this.cluster.stop());
  }

  async setUp(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'kopek-soak-'));
    this.options.log('starting the local cluster and the registry');
    // Side by side; both settle before anything fails, so tearDown stops whatever started.
    const started = await Promise.allSettled([this.startRegistry(), this.startCluster()]);
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    this.admin = new KubeClient(this.cluster.connection());
    this.apiProxy = new FreezableProxy(Number(new URL(this.cluster.server).port));
    await this.apiProxy.start();
    this.stops.push(() => this.apiProxy.stop());
    // kopek reaches the API server only through the proxy, so its watches can be frozen.
    const kubeconfig = join(this.dir, 'kopek-through-proxy.kubeconfig');
    const direct = await this.cluster.kubeconfigAsServiceAccount('kopek', 'kopek');
    await writeFile(
      kubeconfig,
      (await readFile(direct, 'utf8')).replace(
        this.cluster.server,
        `https://127.0.0.1:${this.apiProxy.port}`,
      ),
    );
    await this.cluster.kubectl(['apply', '-f', '-'], {
      input: NAMESPACES.map((name) =>
        stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }),
      ).join('---\n'),
    });
    // Each createWorkload draws its random numbers before its first await: the same seed
    // gives the same Deployments.
    await Promise.all(
      NAMESPACES.flatMap((namespace) =>
        Array.from({ length: DEPLOYMENTS_PER_NAMESPACE }, () => this.createWorkload(namespace)),
      ),
    );
    this.kopekArgs = [
      '--kubeconfig',
      kubeconfig,
      '--metrics-secure',
      'false',
      '--leader-election-namespace',
      'kopek',
      '--batch-interval',
      '500ms',
      '--watch-idle-timeout',
      '20s',
      '--insecure-registries',
      this.registryProxy.host,
      '--log-level',
      'warn',
    ];
    this.replicas.push(
      ...(await Promise.all(['kopek-a', 'kopek-b'].map((identity) => this.startReplica(identity)))),
    );
    this.options.log(`${this.workloads.size} Deployments; two kopek replicas ready`);
  }

  async startReplica(identity: string): Promise<Replica> {
    const memoryCgroup = this.memoryCgroup(identity);
    const replica = new Replica(
      identity,
      await freePort(),
      {
        cli: this.options.kopekCli ?? KOPEK_CLI,
        nodeFlags: this.options.kopekNodeFlags ?? [],
        env: this.options.kopekEnv ?? {},
        args: this.kopekArgs,
      },
      join(this.dir, `${identity}.log`),
      memoryCgroup,
    );
    this.stops.push(() => {
      memoryCgroup?.remove();
      return Promise.resolve();
    });
    this.stops.push(() => replica.stop());
    await replica.start();
    return replica;
  }

  private async applyWorkload(w: Workload): Promise<void> {
    await this.admin.apply(RESOURCES.deployments, deploymentObject(w), {
      fieldManager: 'soak',
      force: true,
    });
  }

  private async createWorkload(namespace: string): Promise<void> {
    const w: Workload = {
      namespace,
      name: `app-${this.nextWorkload++}`,
      replicas: 1 + Math.floor(this.rand() * 3),
      image: this.pick(this.images),
    };
    this.workloads.set(`${w.namespace}/${w.name}`, w);
    await this.applyWorkload(w);
  }

  /** A new image for a workload; one in four is a tag kopek never saw, so it must ask the registry. */
  private async newImage(w: Workload): Promise<void> {
    if (this.rand() < 0.25) {
      const tag = `n${++this.freshTags}`;
      const target = { url: this.registry.url };
      if (this.rand() < 0.5) await pushIndex(target, 'soak/app', tag, [AMD64, ARM64], 'oci');
      else await pushImage(target, 'soak/app', tag, AMD64, 'docker');
      w.image = `${this.registryProxy.host}/soak/app:${tag}`;
    } else w.image = this.pick(this.images);
    await this.applyWorkload(w);
  }

  /** One change: scale, new image, create, delete, or a node added or removed. */
  private async change(): Promise<void> {
    const roll = this.rand();
    const base = NAMESPACES.length * DEPLOYMENTS_PER_NAMESPACE;
    const some = this.workloads.get(this.pick([...this.workloads.keys()]));
    if (roll < 0.35 && some) {
      some.replicas = 1 + Math.floor(this.rand() * 3);
      await this.applyWorkload(some);
    } else if (roll < 0.65 && some) {
      await this.newImage(some);
    } else if (roll < 0.75 && this.workloads.size < base * 1.3) {
      await this.createWorkload(this.pick(NAMESPACES));
    } else if (roll < 0.85 && some && this.workloads.size > base * 0.7) {
      this.workloads.delete(`${some.namespace}/${some.name}`);
      await this.admin.delete(RESOURCES.deployments, some.name, some.namespace);
    } else if (this.extraNodes.length < 6 && (this.extraNodes.length === 0 || this.rand() < 0.5)) {
      const index = this.nodeIndex++;
      this.extraNodes.push(index);
      await this.admin.create(RESOURCES.nodes, soakNode(index));
    } else {
      const index = this.extraNodes.shift();
      if (index === undefined) return;
      const node = soakNode(index).metadata.name;
      await this.admin.delete(RESOURCES.nodes, node);
      // Its pods go at once, as a pod garbage collector keeping up would delete them: over an
      // hour's churn the real one (a 40 s quarantine, slower under load) left thousands behind,
      // and the cluster never settled for the final comparison.
      await Promise.all(NAMESPACES.map((namespace) => deletePodsOn(this.cluster, namespace, node)));
    }
  }

  /** Starts `changesPerSecond` changes a second, at most 16 in flight; resolves once stopped. */
  async churn(): Promise<void> {
    const interval = 1000 / this.options.changesPerSecond;
    let due = Date.now();
    while (!this.churnStop.signal.aborted) {
      due += interval;
      if (this.inFlight >= 16) this.changes.skipped++;
      else {
        this.inFlight++;
        this.change().then(
          () => {
            this.changes.applied++;
            this.inFlight--;
          },
          () => {
            this.changes.failed++;
            this.inFlight--;
          },
        );
      }
      await sleep(Math.max(0, due - Date.now()));
    }
    while (this.inFlight > 0) await sleep(100);
  }

  stopChurn(): void {
    this.churnStop.abort();
  }

  /** One sample of every running replica. */
  async sample(): Promise<void> {
    for (const replica of this.replicas) {
      const pid = replica.pid;
      if (!replica.running || pid === undefined) continue;
      try {
        const metrics = await scrape(replica.url);
        const sum = (name: string): number =>
          metrics.filter((m) => m.name === name).reduce((total, m) => total + m.value, 0);
        const facts = processFacts(pid, this.apiProxy.port);
        this.samples.push({
          at: this.seconds(),
          replica: replica.identity,
          incarnation: replica.incarnation,
          heapBytes: sum('nodejs_heap_size_used_bytes'),
          heapTotalBytes: sum('nodejs_heap_size_total_bytes'),
          rssBytes: sum('process_resident_memory_bytes'),
          rssAnonBytes: facts.rssAnonBytes,
          externalBytes: sum('nodejs_external_memory_bytes'),
          fds: facts.fds,
          apiConnections: facts.connections,
          cacheObjects: sum('kopek_cache_objects'),
          reconcileErrors: sum('controller_runtime_reconcile_errors_total'),
          errorsByReason: byReason(metrics, 'kopek_reconcile_errors_total'),
          queueDepth: sum('workqueue_depth'),
          leading: sum('leader_election_master_status') === 1,
        });
      } catch {
        // a replica restarting: no sample
      }
    }
  }

  private async killAndRestart(name: 'etcd' | 'kube-apiserver', downMs: number): Promise<string> {
    await this.cluster.killComponent(name);
    await sleep(downMs);
    // A restart on a machine shared with other work can take minutes; that is load, not a fault.
    await this.cluster.startComponent(name, 10 * 60_000);
    return `${name} killed with SIGKILL, restarted after ${downMs / 1000} s`;
  }

  private async registryFault(rule: FaultRule, ms: number): Promise<void> {
    this.registryProxy.reset(rule);
    await sleep(ms);
    this.registryProxy.reset(PASS);
  }

  private async killLeader(downMs: number): Promise<string> {
    const lease = await this.admin.get<{ spec?: { holderIdentity?: string } }>(
      LEASE,
      'kopek',
      'kopek',
    );
    const leader = this.replicas.find((r) => r.identity === lease.spec?.holderIdentity);
    if (!leader) return 'no leader to kill';
    await leader.killHard();
    await sleep(downMs);
    await leader.start();
    return `${leader.identity} killed with SIGKILL while leading, restarted after ${downMs / 1000} s`;
  }

  /** Injects one fault, waits until it is over, and records it. */
  async inject(kind: FaultKind, scale: number): Promise<void> {
    const start = this.seconds();
    let detail: string;
    switch (kind) {
      case 'kill-apiserver':
        detail = await this.killAndRestart('kube-apiserver', 5000 * scale);
        break;
      case 'kill-etcd':
        detail = await this.killAndRestart('etcd', 5000 * scale);
        break;
      case 'freeze-watches':
        this.apiProxy.freeze();
        await sleep(40_000 * scale);
        this.apiProxy.thaw();
        detail = `every connection to the API server frozen for ${40 * scale} s (watch idle timeout 20 s)`;
        break;
      case 'registry-slow':
        await this.registryFault(() => ({ action: 'pass', delayMs: 5000 }), 30_000 * scale);
        detail = `every registry request delayed 5 s for ${30 * scale} s`;
        break;
      case 'registry-500':
        await this.registryFault(
          () => ({ action: 'respond', status: 500, body: 'chaos' }),
          30_000 * scale,
        );
        detail = `every registry request answered 500 for ${30 * scale} s`;
        break;
      case 'kill-leader':
        detail = await this.killLeader(5000 * scale);
        break;
    }
    this.faults.push({ kind, start, end: this.seconds(), detail });
    this.options.log(`fault ${kind} ${start.toFixed(0)}-${this.seconds().toFixed(0)} s: ${detail}`);
  }

  /**
   * A clean first stretch (for the memory trends), then every fault in a shuffled order, again
   * and again until two thirds of the run; the leader is killed last, a minute before churn
   * stops. A short run goes through each fault once, however long that takes.
   */
  async chaos(churnMs: number): Promise<void> {
    const short = this.options.minutes < 10;
    const scale = short ? 0.5 : 1;
    const kinds: FaultKind[] = [
      'registry-slow',
      'freeze-watches',
      'kill-apiserver',
      'registry-500',
      'kill-etcd',
    ];
    const twoThirds = (churnMs / 1000) * (2 / 3);
    await sleep(short ? 10_000 : 120_000);
    let round = 0;
    while (round === 0 || this.seconds() < twoThirds) {
      for (const kind of [...kinds].sort(() => this.rand() - 0.5)) {
        if (round > 0 && this.seconds() > twoThirds) break;
        await this.inject(kind, scale);
        await sleep(short ? 2000 : 30_000 + this.rand() * 90_000);
      }
      round++;
    }
    const untilLast = churnMs - 60_000 - (Date.now() - this.started);
    if (untilLast > 0) await sleep(untilLast);
    await this.inject('kill-leader', scale);
  }

  /**
   * Once the cluster has settled and kopek is quiet: delete every recommendation, let a fresh
   * kopek compute them from scratch, and compare.
   */
  async converge(churnStopped: number): Promise<SoakReport['convergence']> {
    // kopek's recommendations are recorded from the moment churn stops, so the convergence
    // time is measured, not bounded by how long the cluster's own controllers take to settle.
    const history: HistoryEntry[] = [];
    const recording = new AbortController();
    const recorder = (async () => {
      while (!recording.signal.aborted) {
        try {
          const current = await snapshot(this.admin);
          const d = digest(current);
          if (history.at(-1)?.digest !== d)
            history.push({ at: Date.now(), digest: d, snapshot: current });
        } catch {
          // the API server is still coming back
        }
        await sleep(1000);
      }
    })();
    // The cluster's own controllers catch up on a long churn for minutes on a busy machine.
    const settleMs = Math.max(5, this.options.minutes / 3) * 60_000;
    let world: string;
    try {
      world = await untilClusterSettled(this.admin, this.cluster, settleMs, this.options.log);
    } catch (error) {
      // Comparing on a moving cluster would prove nothing; the figures are still reported.
      recording.abort();
      await recorder;
      return {
        equal: false,
        recommendations: history.at(-1)?.snapshot.size ?? 0,
        differences: [`not compared: ${(error as Error).message}`],
      };
    }
    this.phase('the cluster settled after churn');
    // Quiet when the leader says nothing is pending (retries, image lookups to ask again, a
    // rebuild due), not after a fixed window as long as its longest timer.
    const quiet = await untilIdle(this.replicas, Date.now() + 8 * 60_000);
    recording.abort();
    await recorder;
    // The state once idle, recorded whether or not the recorder saw it change.
    const last = await snapshot(this.admin);
    if (history.at(-1)?.digest !== digest(last))
      history.push({ at: Date.now(), digest: digest(last), snapshot: last });
    await this.sample();
    const final = history.at(-1);
    await Promise.all(this.replicas.map((replica) => replica.stop()));
    this.phase('kopek quiet');
    await this.cluster.kubectl(['delete', 'workloadrecommendations', '--all', '-A', '--wait=true']);
    const fresh = await this.startReplica('kopek-fresh');
    const freshDone = await untilIdle([fresh], Date.now() + 8 * 60_000);
    const freshState = await snapshot(this.admin);
    await fresh.stop();
    this.phase('a fresh kopek computed them from scratch');
    const diff = final ? differences(final.snapshot, freshState) : ['no snapshot'];
    if (!quiet) diff.push('kopek still had pending work 8 minutes after the cluster settled');
    if (!freshDone) diff.push('the fresh kopek still had pending work after 8 minutes');
    if ((await untilClusterSettled(this.admin, this.cluster, 60_000, this.options.log)) !== world)
      diff.push('the cluster changed during the comparison; the result is void');
    // Converged at the first state from which kopek's recommendations stayed the fresh ones.
    let convergedAt: number | undefined;
    const freshDigest = digest(freshState);
    for (let i = history.length - 1; i >= 0 && diff.length === 0; i--) {
      const entry = history[i];
      if (entry?.digest !== freshDigest) break;
      convergedAt = entry.at;
    }
    const lastFault = this.started + Math.max(this.faults.at(-1)?.end ?? 0, churnStopped) * 1000;
    return {
      equal: diff.length === 0,
      recommendations: freshState.size,
      differences: diff.slice(0, 20),
      ...(convergedAt !== undefined
        ? { secondsAfterLastFault: Math.max(0, (convergedAt - lastFault) / 1000) }
        : {}),
    };
  }

  /** The replica's memory cgroup (its own, as each pod has its own limit), if it runs in one. */
  private memoryCgroup(identity: string): MemoryCgroup | undefined {
    const made = kopekMemoryCgroup(
      `kopek-soak-${process.pid}-${identity}`,
      this.options.memoryLimit ?? 'none',
    );
    if ('none' in made) {
      this.memoryLimit = made;
      return undefined;
    }
    const { cgroup } = made;
    if (!('bytes' in this.memoryLimit))
      this.memoryLimit = { bytes: cgroup.limitBytes, oomKills: {} };
    this.memoryLimit.oomKills[identity] = 0;
    this.oomKillCounters.set(identity, () => cgroup.oomKills());
    return cgroup;
  }

  /** Each replica's OOM kills so far (read before its cgroup goes). */
  countOomKills(): void {
    if (!('bytes' in this.memoryLimit)) return;
    for (const [identity, count] of this.oomKillCounters)
      this.memoryLimit.oomKills[identity] = count();
  }

  async tearDown(): Promise<void> {
    for (const stop of this.stops.reverse()) await stop().catch(() => undefined);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** Runs the soak (and chaos) on a fresh local cluster; everything it starts it stops. */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const load = { start: uptime(), end: '' };
  const soak = new Soak(options);
  try {
    await soak.setUp();
    soak.phase('set up');
    soak.started = Date.now();
    const churn = soak.churn();
    const sampling = new AbortController();
    const sampler = (async () => {
      while (!sampling.signal.aborted) {
        await soak.sample();
        await sleep(options.sampleIntervalMs ?? 10_000);
      }
    })();
    const churnMs = options.minutes * 60_000;
    if (options.chaos) await soak.chaos(churnMs);
    const remaining = churnMs - (Date.now() - soak.started);
    // With chaos, churn stops soon after the last fault; without, after `minutes`.
    if (remaining > 0) await sleep(options.chaos ? Math.min(remaining, 10_000) : remaining);
    soak.stopChurn();
    await churn;
    const churnSeconds = soak.seconds();
    soak.phase('churn and faults');
    options.log(
      `churn stopped after ${churnSeconds.toFixed(0)} s: ${soak.changes.applied} changes applied, ${soak.changes.failed} failed`,
    );
    sampling.abort();
    await sampler;
    const convergence = await soak.converge(churnSeconds);
    soak.countOomKills();
    load.end = uptime();
    const samples = soak.samples;
    const { '': errors = { total: 0, outsideFaults: 0, byFault: {} }, ...byReason } =
      reconcileErrors(samples, soak.faults);
    return {
      seed: options.seed,
      chaos: options.chaos,
      kopekNodeFlags: options.kopekNodeFlags ?? [],
      kopekEnv: options.kopekEnv ?? {},
      kopekCli: options.kopekCli ?? KOPEK_CLI,
      memoryLimit: soak.memoryLimit,
      churnSeconds,
      changes: { ...soak.changes, perSecond: soak.changes.applied / churnSeconds },
      faults: soak.faults,
      samples,
      trends: {
        heapBytes: trend(samples, 'heapBytes'),
        heapTotalBytes: trend(samples, 'heapTotalBytes'),
        rssBytes: trend(samples, 'rssBytes'),
        rssAnonBytes: trend(samples, 'rssAnonBytes'),
        externalBytes: trend(samples, 'externalBytes'),
        fds: trend(samples, 'fds'),
        apiConnections: trend(samples, 'apiConnections'),
        cacheObjects: trend(samples, 'cacheObjects'),
      },
      reconcileErrors: { total: errors.total, outsideFaults: errors.outsideFaults, byReason },
      queueDepth: {
        max: Math.max(0, ...samples.map((s) => s.queueDepth)),
        atEnd: samples.filter((s) => s.leading).at(-1)?.queueDepth ?? 0,
      },
      convergence,
      load,
      phases: soak.phases,
    };
  } finally {
    await soak.tearDown();
  }
}
