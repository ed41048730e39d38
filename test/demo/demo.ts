/**
 * `npm run demo`: a local EKS-like cluster running a commerce platform, analysed by kopek.
 *
 * 1. starts a local OCI registry holding the platform's images (with the platforms each offers),
 *    and a Prometheus scraping the traffic telemetry (Grafana Beyla's series) of its chattiest
 *    services;
 * 2. starts the local control plane with 24 KWOK nodes over three zones;
 * 3. deploys the commerce platform of test/fixtures/commerce (the workloads, Services, PDBs and
 *    policies of its dump; controllers and the scheduler create and place the pods), with
 *    EBS-like volumes for its StatefulSets and images pointing at the local registry;
 * 4. runs `kopek run` with the Helm chart's RBAC and that Prometheus, waits for every
 *    recommendation, and prints `kubectl get wrec -A`, the savings summary, the measured
 *    cross-zone dollars and the load kopek put on Prometheus;
 * 5. keeps everything running, metrics URL shown, until Ctrl-C (or exits at once with --exit),
 *    then stops all it started.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { LocalPrometheus } from '../prometheus/prometheus.ts';
import { TrafficExporter } from '../traffic/exporter.ts';
import { beylaSeries, type ChattyEdge } from '../traffic/scenario.ts';
import { until } from '../support/until.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';
import { Component, logTail, waitUntil } from '../cluster/process.ts';
import { LocalRegistry } from '../registry/registry.ts';
import { pushImage, pushIndex, type Platform } from '../registry/seed.ts';
import { installChartRbac, installCrds, KOPEK_CLI } from '../support/kopek.ts';
import { freePort } from '../support/ports.ts';
import { volumesFor, ZONES } from '../support/volumes.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/commerce/', import.meta.url));
const exitAtOnce = process.argv.includes('--exit');
/** Kinds the demo applies; controllers make the rest (ReplicaSets, Jobs, Pods, EndpointSlices). */
const APPLIED_KINDS = new Set([
  'Namespace',
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'CronJob',
  'PodDisruptionBudget',
  'HorizontalPodAutoscaler',
  'Service',
  'SavingsPolicy',
]);
/** The window kopek reads traffic over: short, so the demo's new Prometheus soon holds it. */
const TRAFFIC_WINDOW = '30s';
/** An edge between two workloads named namespace/name. */
function edge(client: string, server: string, r: number, serverKind?: string): ChattyEdge {
  const end = (ref: string) => {
    const [namespace = '', name = ''] = ref.split('/');
    return { namespace, name };
  };
  const to = end(server);
  return {
    client: end(client),
    server: serverKind ? { ...to, kind: serverKind } : to,
    requestGiBPerHour: r,
  };
}
/** The platform's chattiest calls, r GiB an hour per client zone (test/traffic/scenario.ts). */
const CHATTY: ChattyEdge[] = [
  edge('storefront/web', 'storefront/bff', 0.5),
  edge('storefront/bff', 'shop/checkout', 0.2),
  edge('storefront/bff', 'shop/cart', 0.3),
  edge('shop/checkout', 'payments/payments-api', 0.1),
  edge('shop/cart', 'shop/cart-redis', 0.4, 'StatefulSet'),
];

type Obj = Record<string, unknown>;

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** Where an image lives in the local registry: same repository path, registry host replaced. */
function localImage(registryHost: string, image: string): string {
  const parts = image.split('/');
  const first = parts[0] ?? '';
  const hasRegistry =
    parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const path = hasRegistry
    ? parts.slice(1).join('/')
    : parts.length === 1
      ? `library/${image}`
      : image;
  return `${registryHost}/${path.toLowerCase()}`;
}

function platformOf(text: string): Platform | undefined {
  const [os, architecture, variant] = text.split('/');
  if (!os || !architecture || os === 'unknown') return undefined;
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Pushes every image of the fixture's platform table, offering exactly its platforms. */
async function seedRegistry(
  registry: LocalRegistry,
  table: Record<string, string[] | { platforms?: string[]; error?: string }>,
): Promise<number> {
  let pushed = 0;
  for (const [image, entry] of Object.entries(table)) {
    // An entry that records a registry error stays unpushed: kopek will find it missing.
    const platformTexts = Array.isArray(entry) ? entry : (entry.platforms ?? []);
    const reference = localImage(registry.host, image).slice(registry.host.length + 1);
    const at = reference.lastIndexOf(':');
    const [repository, tag] =
      at > 0 ? [reference.slice(0, at), reference.slice(at + 1)] : [reference, 'latest'];
    const platforms = platformTexts.flatMap((text) => platformOf(text) ?? []);
    const target = { url: registry.url };
    if (platforms.length === 1 && platforms[0])
      await pushImage(target, repository, tag, platforms[0], 'docker');
    else if (platforms.length > 1) await pushIndex(target, repository, tag, platforms, 'oci');
    else continue;
    pushed++;
  }
  return pushed;
}

function rewriteImages(template: unknown, registryHost: string): void {
  const spec = (template as { spec?: { containers?: Obj[]; initContainers?: Obj[] } } | undefined)
    ?.spec;
  for (const container of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
    if (typeof container.image === 'string')
      container.image = localImage(registryHost, container.image);
  }
}

/** The dump's top-level objects as a person would apply them: no status, no server fields. */
function manifests(dump: { items: Obj[] }, registryHost: string): Obj[] {
  const out: Obj[] = [];
  for (const item of dump.items) {
    const metadata = item.metadata as Obj & { ownerReferences?: unknown; namespace?: string };
    if (!APPLIED_KINDS.has(String(item.kind)) || metadata.ownerReferences) continue;
    if (
      ['kube-system', 'kube-public', 'kube-node-lease', 'default'].includes(
        String(metadata.namespace ?? metadata.name),
      )
    ) {
      if (item.kind === 'Namespace') continue;
    }
    const {
      uid: _uid,
      resourceVersion: _rv,
      creationTimestamp: _ct,
      generation: _gen,
      ...cleanMeta
    } = metadata;
    const { status: _status, ...object } = item;
    const clean: Obj = { ...object, metadata: cleanMeta };
    const spec = clean.spec as
      | {
          template?: unknown;
          jobTemplate?: { spec?: { template?: unknown } };
          clusterIP?: unknown;
          clusterIPs?: unknown;
        }
      | undefined;
    if (spec?.template) rewriteImages(spec.template, registryHost);
    if (spec?.jobTemplate?.spec?.template)
      rewriteImages(spec.jobTemplate.spec.template, registryHost);
    if (item.kind === 'Service' && spec) {
      delete spec.clusterIP;
      delete spec.clusterIPs;
    }
    out.push(clean);
  }
  return out;
}

function money(text: string | undefined): number {
  return Number(text ?? 0);
}

function summary(wrecs: WorkloadRecommendation[]): void {
  let cost = 0;
  let savings = 0;
  const parts = { spot: 0, arm64: 0, crossZone: 0 };
  const counts = new Map<string, number>();
  for (const wrec of wrecs) {
    const status = wrec.status ?? {};
    cost += money(status.monthlyCostUSD);
    savings += money(status.potentialMonthlySavingsUSD);
    for (const key of ['spot', 'arm64', 'crossZone'] as const) {
      const part = status[key];
      if (!part) continue;
      if (part.verdict === 'Recommended') parts[key] += money(part.monthlySavingsUSD);
      const label = `${key} ${part.verdict}`;
      counts.set(label, (counts.get(label) ?? 0) + 1);
    }
  }
  const usd = (value: number): string =>
    `$${value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  say('\nSavings summary');
  say(`  workloads analysed        ${wrecs.length}`);
  say(`  monthly cost now          ${usd(cost)}`);
  say(
    `  potential savings / month ${usd(savings)} (${cost > 0 ? ((100 * savings) / cost).toFixed(1) : '0'}% — all recommended changes together, not a sum)`,
  );
  say(`    Spot recommended        ${usd(parts.spot)}`);
  say(`    arm64 recommended       ${usd(parts.arm64)}`);
  say(`    cross-zone recommended  ${usd(parts.crossZone)}`);
  say('  verdicts');
  for (const [label, count] of [...counts].sort()) say(`    ${label.padEnd(28)}${count}`);
  const top = [...wrecs]
    .sort(
      (a, b) =>
        money(b.status?.potentialMonthlySavingsUSD) - money(a.status?.potentialMonthlySavingsUSD),
    )
    .slice(0, 5);
  say('  top savings');
  for (const wrec of top)
    say(
      `    ${`${wrec.metadata.namespace ?? ''}/${wrec.spec.targetRef.name}`.padEnd(36)}${usd(money(wrec.status?.potentialMonthlySavingsUSD))}/mo`,
    );
}

/** The measured cross-zone money, workload by workload, with each one's largest edge. */
function measured(wrecs: WorkloadRecommendation[]): void {
  const rows = wrecs
    .filter((wrec) => wrec.status?.crossZone?.source === 'Measured')
    .sort(
      (a, b) =>
        money(b.status?.crossZone?.monthlyCostUSD) - money(a.status?.crossZone?.monthlyCostUSD),
    );
  say(
    '\nCross-zone traffic measured from Prometheus (Grafana Beyla), each edge counted at its server',
  );
  for (const wrec of rows) {
    const cz = wrec.status?.crossZone;
    const edge = cz?.edges?.[0];
    say(
      `  ${`${wrec.metadata.namespace ?? ''}/${wrec.spec.targetRef.name}`.padEnd(28)}${`${cz?.monthlyCrossZoneGB ?? '?'} GB/mo`.padEnd(16)}  $${(cz?.monthlyCostUSD ?? '?').padStart(7)}/mo  saves $${cz?.monthlySavingsUSD ?? '0.00'}${edge ? `  (largest edge: ${edge.peer.namespace ?? ''}/${edge.peer.name})` : ''}`,
    );
  }
}

/** Sums the samples of a metric (all label sets) in an exposition text. */
function total(metrics: string, pattern: RegExp): number {
  return metrics
    .split('\n')
    .filter((line) => pattern.test(line))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

const workDir = await mkdtemp(join(tmpdir(), 'kopek-demo-'));
const started: { stop(): Promise<void> }[] = [];
let stopping = false;
async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('\nStopping kopek, the cluster and the registry...');
    for (const part of started.reverse()) await part.stop().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
    say('Stopped; nothing left running.');
  }
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

try {
  say('kopek demo');
  say('1/4 starting a local OCI registry with the platform images');
  const registry = await LocalRegistry.start({ dir: workDir, name: 'demo-registry' });
  started.push({ stop: () => registry.component.stop() });
  const table = JSON.parse(await readFile(join(FIXTURE, 'image-platforms.json'), 'utf8')) as Record<
    string,
    string[] | { platforms?: string[] }
  >;
  say(`    ${await seedRegistry(registry, table)} images pushed to ${registry.host}`);
  const exporter = await TrafficExporter.start(beylaSeries(CHATTY, ZONES));
  started.push({ stop: () => exporter.stop() });
  const prometheus = await LocalPrometheus.start({
    dir: join(workDir, 'prometheus'),
    config: {
      global: { scrape_interval: '1s' },
      scrape_configs: [{ job_name: 'beyla', static_configs: [{ targets: [exporter.target] }] }],
    },
  });
  started.push({ stop: () => prometheus.stop() });
  say(
    `    Prometheus ${prometheus.url} scraping Beyla's series of ${CHATTY.length} chatty services`,
  );

  say(
    '2/4 starting the local control plane (the first run builds Kubernetes from source: minutes)',
  );
  const cluster = await LocalCluster.start({
    log: (line) => {
      say(`    ${line}`);
    },
  });
  started.push({ stop: () => cluster.stop() });
  await cluster.addFleet(DEFAULT_FLEET);
  await installCrds(cluster);
  await installChartRbac(cluster);

  say('3/4 deploying the commerce platform');
  const dump = parse(await readFile(join(FIXTURE, 'dump.yaml'), 'utf8')) as { items: Obj[] };
  const objects = manifests(dump, registry.host);
  const namespaces = objects.filter((object) => object.kind === 'Namespace');
  await cluster.kubectl(['apply', '-f', '-'], {
    input: namespaces.map((object) => stringify(object)).join('---\n'),
  });
  const rest = [...volumesFor(objects), ...objects.filter((object) => object.kind !== 'Namespace')];
  await cluster.kubectl(['apply', '-f', '-'], {
    input: rest.map((object) => stringify(object)).join('---\n'),
  });
  const workloads = objects.filter((object) =>
    ['Deployment', 'StatefulSet', 'DaemonSet', 'CronJob'].includes(String(object.kind)),
  ).length;
  say(
    `    ${workloads} workloads and ${objects.length - workloads} other objects applied; waiting for pods`,
  );
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const pods = (
    await cluster.kubectl([
      'get',
      'pods',
      '-A',
      '--no-headers',
      '-o',
      'custom-columns=PHASE:.status.phase',
    ])
  ).stdout
    .trim()
    .split('\n');
  say(
    `    ${pods.filter((phase) => phase === 'Running').length} pods Running, ${pods.filter((phase) => phase === 'Pending').length} Pending`,
  );

  say("4/4 running kopek with the Helm chart's RBAC, reading traffic from Prometheus");
  // Prometheus divides the counters' growth by the whole window: wait until it holds all of it.
  await until(
    `Prometheus holds ${TRAFFIC_WINDOW} of scrapes`,
    async () =>
      Number(
        (await prometheus.query(`count_over_time(up{job="beyla"}[${TRAFFIC_WINDOW}])`)).data
          ?.result[0]?.value[1] ?? 0,
      ),
    (scrapes) => scrapes >= 28,
    120_000,
  );
  const port = await freePort();
  const kopek = new Component({
    name: 'kopek',
    command: process.execPath,
    args: [
      KOPEK_CLI,
      'run',
      '--kubeconfig',
      await cluster.kubeconfigAsServiceAccount('kopek', 'kopek'),
      '--metrics-bind-address',
      `127.0.0.1:${port}`,
      // The demo's metrics are for the person at this machine: plain HTTP on loopback.
      '--metrics-secure',
      'false',
      '--leader-election-namespace',
      'kopek',
      '--insecure-registries',
      registry.host,
      '--prometheus-url',
      prometheus.url,
      '--traffic-window',
      TRAFFIC_WINDOW,
      '--traffic-refresh-interval',
      '1m',
    ],
    logPath: join(workDir, 'kopek.log'),
  });
  const kopekStarted = Date.now();
  kopek.start();
  started.push({ stop: () => kopek.stop() });
  const metricsUrl = `http://127.0.0.1:${port}`;
  await waitUntil(
    kopek,
    'became ready',
    async () => (await fetch(`${metricsUrl}/readyz`)).ok,
    60_000,
  );

  // All written: the count stops growing and matches the workloads kopek analyses.
  let wrecs: WorkloadRecommendation[] = [];
  let stableSince = Date.now();
  let lastCount = -1;
  await waitUntil(
    kopek,
    'wrote every recommendation',
    async () => {
      const list = JSON.parse(
        (await cluster.kubectl(['get', 'wrec', '-A', '-o', 'json'])).stdout,
      ) as { items: WorkloadRecommendation[] };
      wrecs = list.items;
      const complete = wrecs.filter((wrec) => wrec.status?.conditions?.length).length;
      if (complete !== lastCount) {
        lastCount = complete;
        stableSince = Date.now();
      }
      return complete > 0 && complete === wrecs.length && Date.now() - stableSince > 3000;
    },
    120_000,
  );
  // The last recommendation was written when the count last changed.
  const writtenSeconds = (stableSince - kopekStarted) / 1000;

  say(
    `\n$ kubectl get wrec -A    # ${wrecs.length} recommendations, all written ${writtenSeconds.toFixed(1)} s after kopek started`,
  );
  say((await cluster.kubectl(['get', 'wrec', '-A'])).stdout.trimEnd());
  summary(wrecs);
  measured(wrecs);
  const metrics = await (await fetch(`${metricsUrl}/metrics`)).text();
  const refreshes = total(metrics, /^kopek_traffic_refreshes_total\{/);
  const queries = total(metrics, /^kopek_traffic_queries_total\{/);
  const detections = total(metrics, /^kopek_traffic_queries_total\{source="detect"/);
  const seconds = total(metrics, /^kopek_traffic_query_duration_seconds_sum\{/);
  say(
    `\nLoad on Prometheus: ${refreshes} refresh${refreshes === 1 ? '' : 'es'}, ${queries} quer${queries === 1 ? 'y' : 'ies'} (${detections} to detect the source), ${(queries / Math.max(1, refreshes)).toFixed(1)} per refresh for ${wrecs.length} workloads, ${((1000 * seconds) / Math.max(1, queries)).toFixed(0)} ms per query on average`,
  );
  const rss = Number(/^process_resident_memory_bytes (\S+)/m.exec(metrics)?.[1] ?? 0);
  say(`\nkopek's resident memory: ${(rss / 2 ** 20).toFixed(0)} MiB`);
  say(`Metrics: ${metricsUrl}/metrics   Health: ${metricsUrl}/readyz`);
  say(
    `Try: KUBECONFIG=${cluster.kubeconfigPath} ${cluster.binaries.kubectl} get wrec -n shop deployment-checkout -o yaml`,
  );
} catch (error) {
  say(`\nDemo failed: ${error instanceof Error ? error.message : String(error)}`);
  const log = join(workDir, 'kopek.log');
  const tail = logTail(log, 20);
  if (tail) say(`Last lines of kopek's log:\n${tail}`);
  await stopAll(1);
}

if (exitAtOnce) await stopAll(0);
say('\nEverything keeps running. Press Ctrl-C to stop it and clean up.');
setInterval(() => undefined, 1 << 30);
