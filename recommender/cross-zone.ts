/**
 * Cross-AZ traffic: what the workload's Services pay for traffic between zones, and whether
 * Kubernetes' topology-aware routing would keep it in-zone. Without telemetry the cross-zone
 * share of a Service is estimated as 1 − Σz a_z·b_z (a: client share in zone z, b: ready
 * endpoint share in zone z; three even zones → 2/3) and said to be an estimate.
 */
import type { CrossZoneEdge, CrossZoneResult, ServiceCrossZone } from './api/v1alpha1.ts';
import {
  ANNOTATION_TOPOLOGY_MODE,
  LABEL_ZONE,
  effectiveReplicas,
  type ServiceFacts,
  type TrafficFact,
  type TrafficSourceName,
  type WorkloadFacts,
} from './facts.ts';
import { CROSS_ZONE_USD_PER_GB, formatUSD } from './pricing.ts';
import { clip, finding, listOf, notePatch, result, verdictOf, type Finding } from './reasons.ts';

/** AWS bills data transfer per GB of 2^30 bytes. */
export const BYTES_PER_GB = 1024 ** 3;
/** A client zone with less than this share of the traffic is not weighed when checking balance. */
export const MIN_CLIENT_SHARE = 0.05;
/** topology-mode: Auto only assigns hints with enough endpoints per zone. */
export const TOPOLOGY_MODE_MIN_ENDPOINTS = 3;
/** Requires that the suggested patch itself fixes (a zone-balancing topology spread). */
export const CROSS_ZONE_FIXED_BY_PATCH: ReadonlySet<string> = new Set(['EndpointsUnbalanced']);

/** How many measured edges a status lists (the CRD's maxItems). */
export const MAX_EDGES = 10;

const AWARE_DISTRIBUTIONS = new Set(['PreferClose', 'PreferSameZone', 'PreferSameNode']);

/** True when the Service already asks Kubernetes to keep traffic in its clients' zone. */
export function routesByTopology(s: ServiceFacts): boolean {
  return (
    (s.trafficDistribution !== undefined && AWARE_DISTRIBUTIONS.has(s.trafficDistribution)) ||
    s.topologyMode?.toLowerCase() === 'auto'
  );
}

/** How one Service would be fixed. */
export interface ServicePlan {
  name: string;
  /** The merge patch over the Service. */
  patch: Record<string, unknown>;
}

/** What the suggested patch should do for cross-zone traffic. */
export interface CrossZonePlan {
  services: ServicePlan[];
  /** Add a zone topology spread to the pod template first. */
  spreadOverZones: boolean;
}

export interface CrossZoneEvaluation {
  result: CrossZoneResult;
  actionable: boolean;
  plan: CrossZonePlan;
}

type Fix =
  | { kind: 'trafficDistribution'; value: 'PreferSameZone' | 'PreferClose' }
  | { kind: 'topologyMode' };

/** The fix the cluster's Kubernetes version supports best. */
export function chooseFix(kubernetesMinor: number | undefined): Fix {
  if (kubernetesMinor === undefined) return { kind: 'trafficDistribution', value: 'PreferClose' };
  if (kubernetesMinor >= 34) return { kind: 'trafficDistribution', value: 'PreferSameZone' };
  if (kubernetesMinor >= 31) return { kind: 'trafficDistribution', value: 'PreferClose' };
  return { kind: 'topologyMode' };
}

function fixPatch(fix: Fix): Record<string, unknown> {
  return fix.kind === 'topologyMode'
    ? { metadata: { annotations: { [ANNOTATION_TOPOLOGY_MODE]: 'Auto' } } }
    : { spec: { trafficDistribution: fix.value } };
}

function fixText(fix: Fix, service: string): string {
  return fix.kind === 'topologyMode'
    ? `Annotate Service ${service} with ${ANNOTATION_TOPOLOGY_MODE}: Auto.`
    : `Set spec.trafficDistribution: ${fix.value} on Service ${service}.`;
}

/** Weights (any scale) → shares that sum to 1; zones without weight are left out. */
export function zoneShares(weights: Readonly<Record<string, number>>): Map<string, number> {
  const total = Object.values(weights).reduce((a, b) => a + Math.max(0, b), 0);
  const out = new Map<string, number>();
  if (total <= 0) return out;
  for (const [z, w] of Object.entries(weights)) if (w > 0) out.set(z, w / total);
  return out;
}

/** The estimated share of traffic crossing zones, 1 − Σz a_z·b_z. */
export function crossZoneFraction(
  clients: ReadonlyMap<string, number>,
  endpoints: ReadonlyMap<string, number>,
): number {
  let same = 0;
  for (const [z, a] of clients) same += a * (endpoints.get(z) ?? 0);
  return Math.min(1, Math.max(0, 1 - same));
}

/** "0.6667": the CRD's pattern allows 0–1 with up to 4 decimals. */
export function formatFraction(f: number): string {
  const s = Math.min(1, Math.max(0, f)).toFixed(4);
  return s === '1.0000' ? '1' : s.replace(/\.?0+$/, '') || '0';
}

/** GB with up to 3 decimals. */
export function formatGB(gb: number): string {
  if (!Number.isFinite(gb) || gb <= 0) return '0';
  return String(Math.round(gb * 1000) / 1000);
}

interface ServiceAnalysis {
  service: ServiceFacts;
  entry: ServiceCrossZone;
  aware: boolean;
  fraction: number;
  /** Cross-zone share left after the fix (client zones that would still lack endpoints). */
  fractionAfter: number;
  needsSpread: boolean;
  tooFewReplicas: boolean;
  crossBytes?: number;
  /** Of crossBytes, what the fix would keep in zone. */
  savingsBytes: number;
  measured: boolean;
}

/**
 * Cross-zone bytes the fix keeps in zone. Measured per client zone: all of it once the pods
 * are spread over zones, else what comes from client zones that have ready endpoints. Without
 * the split, the estimated shares scale the bytes: (share now − share after) / share now.
 */
function savableBytes(
  s: ServiceFacts,
  crossBytes: number,
  fraction: number,
  fractionAfter: number,
  needsSpread: boolean,
): number {
  const byZone = s.measuredCrossZoneBytesByClientZone;
  if (byZone !== undefined && s.measuredCrossZoneBytesPerMonth !== undefined) {
    if (needsSpread) return crossBytes;
    return Object.entries(byZone)
      .filter(([z]) => (s.readyEndpointsPerZone[z] ?? 0) > 0)
      .reduce((sum, [, bytes]) => sum + Math.max(0, bytes), 0);
  }
  return fraction > 0 ? crossBytes * Math.max(0, (fraction - fractionAfter) / fraction) : 0;
}

function analyseService(
  facts: WorkloadFacts,
  s: ServiceFacts,
  fix: Fix,
): ServiceAnalysis | undefined {
  const endpoints = zoneShares(s.readyEndpointsPerZone);
  if (endpoints.size === 0) return undefined;
  let clients = zoneShares(s.clientWeightsByZone);
  if (clients.size === 0) {
    const zones = facts.cluster.zones.length > 0 ? facts.cluster.zones : [...endpoints.keys()];
    clients = zoneShares(Object.fromEntries(zones.map((z) => [z, 1])));
  }
  const fraction = crossZoneFraction(clients, endpoints);
  const aware = routesByTopology(s);
  const minPerZone = fix.kind === 'topologyMode' ? TOPOLOGY_MODE_MIN_ENDPOINTS : 1;
  const clientZones = [...clients].filter(([, a]) => a >= MIN_CLIENT_SHARE).map(([z]) => z);
  const unbalanced = clientZones.some((z) => {
    const count = s.readyEndpointsPerZone[z] ?? 0;
    return count < minPerZone || (endpoints.get(z) ?? 0) < (clients.get(z) ?? 0) / 2;
  });
  const uncovered = [...clients]
    .filter(([z]) => (s.readyEndpointsPerZone[z] ?? 0) === 0)
    .reduce((a, [, v]) => a + v, 0);
  const tooFewReplicas = unbalanced && effectiveReplicas(facts) < clientZones.length * minPerZone;
  const needsSpread = unbalanced && !tooFewReplicas;
  const fractionAfter = needsSpread ? 0 : uncovered;

  let crossBytes: number | undefined;
  let measured = false;
  if (s.measuredCrossZoneBytesPerMonth !== undefined) {
    crossBytes = s.measuredCrossZoneBytesPerMonth;
    measured = true;
  } else if (s.measuredBytesPerMonth !== undefined) {
    // Routed by topology, only clients in zones without endpoints still cross.
    crossBytes = s.measuredBytesPerMonth * (aware ? uncovered : fraction);
    measured = facts.traffic !== undefined && !('error' in facts.traffic);
  }

  const perZone = Object.fromEntries(
    Object.entries(s.readyEndpointsPerZone)
      .sort(([a], [b]) => a.localeCompare(b))
      .slice(0, 16),
  );
  const entry: ServiceCrossZone = {
    name: clip(s.name, 63),
    crossZoneFraction: formatFraction(aware ? uncovered : fraction),
    readyEndpointsPerZone: perZone,
  };
  if (aware) {
    entry.fix = clip(
      `None needed: Service ${s.name} already routes by topology (${
        s.trafficDistribution !== undefined
          ? `trafficDistribution: ${s.trafficDistribution}`
          : `${ANNOTATION_TOPOLOGY_MODE}: ${s.topologyMode ?? ''}`
      }).`,
      1024,
    );
  } else if (tooFewReplicas) {
    entry.fix = clip(
      `Run at least ${clientZones.length * minPerZone} replicas spread over ${listOf(clientZones)}, then ${fixText(fix, s.name).replace(/^S/, 's').replace(/^A/, 'a')}`,
      1024,
    );
  } else if (needsSpread) {
    entry.fix = clip(
      `First spread the pods evenly over zones (topologySpreadConstraints on ${LABEL_ZONE}), then ${fixText(fix, s.name).replace(/^S/, 's').replace(/^A/, 'a')}`,
      1024,
    );
  } else {
    entry.fix = fixText(fix, s.name);
  }
  const out: ServiceAnalysis = {
    service: s,
    entry,
    aware,
    fraction,
    fractionAfter,
    needsSpread,
    tooFewReplicas,
    savingsBytes:
      crossBytes === undefined || aware
        ? 0
        : savableBytes(s, crossBytes, fraction, fractionAfter, needsSpread),
    measured,
  };
  if (crossBytes !== undefined) out.crossBytes = crossBytes;
  return out;
}

const SOURCE_LABELS: Record<TrafficSourceName, string> = {
  Beyla: 'Grafana Beyla',
  Istio: 'Istio',
  Kubecost: 'Kubecost network costs',
};

/** The measured money of the workload: volume, cost and its largest edges. */
function measuredPart(bytes: number, traffic: TrafficFact | undefined): Partial<CrossZoneResult> {
  const part: Partial<CrossZoneResult> = {
    source: 'Measured',
    monthlyCrossZoneGB: formatGB(bytes / BYTES_PER_GB),
    monthlyCostUSD: formatUSD((bytes / BYTES_PER_GB) * CROSS_ZONE_USD_PER_GB),
  };
  const edges = traffic !== undefined && !('error' in traffic) ? traffic.edges : [];
  if (edges.length > 0) part.edges = edges.slice(0, MAX_EDGES).map(edgeOf);
  return part;
}

function edgeOf(edge: { peer: CrossZoneEdge['peer']; crossZoneBytesPerMonth: number }) {
  const peer: CrossZoneEdge['peer'] = { name: clip(edge.peer.name, 253) };
  if (edge.peer.namespace !== undefined) peer.namespace = clip(edge.peer.namespace, 63);
  if (edge.peer.kind !== undefined) peer.kind = clip(edge.peer.kind, 63);
  const gb = edge.crossZoneBytesPerMonth / BYTES_PER_GB;
  return {
    peer,
    monthlyCrossZoneGB: formatGB(gb),
    monthlyCostUSD: formatUSD(gb * CROSS_ZONE_USD_PER_GB),
  };
}

/** Why the numbers are measured: the source, its window, and whom each edge is counted at. */
function measuredFinding(facts: WorkloadFacts, bytes: number): Finding {
  const t = facts.traffic;
  if (t === undefined || 'error' in t)
    return finding(
      'MeasuredTraffic',
      'Info',
      'Cross-zone bytes are measured from traffic telemetry.',
    );
  const gb = `${formatGB(bytes / BYTES_PER_GB)} GB`;
  const over = `over the last ${t.window}, scaled to a 730-hour month`;
  const edges = `${t.edgeCount} edge${t.edgeCount === 1 ? '' : 's'}`;
  const messages = {
    ZonePairs: `${SOURCE_LABELS[t.source]} measured ${gb} a month crossing zones to and from it (zone pairs measured directly, ${edges}) ${over}. Each edge is counted once, at its server side: the end a Service selects, else the end that sends more.`,
    WorkloadEdges: `${SOURCE_LABELS[t.source]} measured ${formatGB((t.totalBytesPerMonth ?? 0) / BYTES_PER_GB)} GB a month between it and its clients (${edges}) ${over}; ${gb} of it crosses zones, a share estimated for each edge from where the two workloads' pods run. Each edge is counted once, at its server side (the destination workload).`,
    PodEgress: `${SOURCE_LABELS[t.source]} measured ${gb} a month that its pods sent to other zones of the region ${over}. Kubecost does not name the peer: each byte is counted once, at the pod that sent it.`,
  };
  return finding('MeasuredTraffic', 'Info', clip(messages[t.method], 1024));
}

/** Why the numbers are estimated although a telemetry source is configured. */
function notMeasuredFindings(facts: WorkloadFacts): Finding[] {
  const t = facts.traffic;
  if (t === undefined) return [];
  if ('error' in t) {
    return [
      finding(
        'TrafficTelemetryUnavailable',
        'Info',
        clip(
          `Traffic telemetry could not be read (${t.error}); the cross-zone share is estimated from where clients and endpoints run.`,
          1024,
        ),
      ),
    ];
  }
  return [
    finding(
      'NoMeasuredTraffic',
      'Info',
      `${SOURCE_LABELS[t.source]} has no traffic of it over the last ${t.window}; the cross-zone share is estimated from where clients and endpoints run.`,
    ),
  ];
}

function notApplicable(facts: WorkloadFacts, code: string, message: string): CrossZoneEvaluation {
  const bytes = facts.measuredCrossZoneBytesPerMonth;
  const findings = [finding(code, 'Info', message)];
  if (bytes !== undefined) findings.push(measuredFinding(facts, bytes));
  return {
    result: {
      ...result('NotApplicable', findings, '0.00'),
      ...(bytes !== undefined ? measuredPart(bytes, facts.traffic) : {}),
    },
    actionable: false,
    plan: { services: [], spreadOverZones: false },
  };
}

/** Decides whether the workload's Services should keep traffic in-zone, and what it costs now. */
export function evaluateCrossZone(facts: WorkloadFacts): CrossZoneEvaluation {
  if (!facts.policy.crossZone.enabled) {
    return notApplicable(
      facts,
      'DisabledByPolicy',
      `SavingsPolicy ${facts.policy.name ?? '(default)'} turns cross-zone advice off for this workload.`,
    );
  }
  const headless = facts.services.filter((s) => s.headless).map((s) => s.name);
  // A metrics Service carries scrapes, not client traffic: it never asks for more replicas.
  const metrics = facts.services.filter((s) => !s.headless && s.metricsOnly === true);
  const routed = facts.services.filter((s) => !s.headless && s.metricsOnly !== true);
  if (routed.length === 0 && metrics.length > 0) {
    return notApplicable(
      facts,
      'MetricsServiceOnly',
      `Only metrics Service ${listOf(metrics.map((s) => s.name))} selects its pods: its traffic is a scraper's, too little to route by zone or to add replicas for.`,
    );
  }
  if (routed.length === 0) {
    return headless.length > 0
      ? notApplicable(
          facts,
          'HeadlessServiceOnly',
          `Only headless Service ${listOf(headless)} selects its pods: clients connect to pod IPs directly, so Service routing cannot keep traffic in-zone.`,
        )
      : notApplicable(
          facts,
          'NoServiceTraffic',
          facts.measuredCrossZoneBytesPerMonth === undefined
            ? 'No Service selects its pods, and no telemetry measured traffic to it.'
            : 'No Service selects its pods: Service routing cannot keep its traffic in-zone.',
        );
  }
  const fix = chooseFix(facts.cluster.kubernetesMinor);
  const analyses: ServiceAnalysis[] = [];
  const findings: Finding[] = [];
  for (const s of [...routed].sort((a, b) => a.name.localeCompare(b.name))) {
    const a = analyseService(facts, s, fix);
    if (a === undefined) {
      findings.push(
        finding(
          'NoReadyEndpoints',
          'Info',
          `Service ${s.name} has no ready endpoints in any known zone.`,
        ),
      );
    } else {
      analyses.push(a);
    }
  }
  if (analyses.length === 0) {
    return {
      result: result('Unknown', findings, '0.00'),
      actionable: false,
      plan: { services: [], spreadOverZones: false },
    };
  }
  return decide(facts, analyses, findings, fix);
}

function volumeOf(facts: WorkloadFacts, analyses: readonly ServiceAnalysis[]) {
  let bytes: number | undefined = facts.measuredCrossZoneBytesPerMonth;
  let savingsBytes = 0;
  let measured = facts.measuredCrossZoneBytesPerMonth !== undefined;
  for (const a of analyses) {
    if (a.crossBytes === undefined) continue;
    bytes = (bytes ?? 0) + a.crossBytes;
    if (a.measured) measured = true;
    savingsBytes += a.savingsBytes;
  }
  return { bytes, savingsBytes, measured };
}

function decide(
  facts: WorkloadFacts,
  analyses: ServiceAnalysis[],
  findings: Finding[],
  fix: Fix,
): CrossZoneEvaluation {
  const services = analyses.slice(0, 32).map((a) => a.entry);
  const open = analyses.filter((a) => !a.aware && a.fraction > 0);
  const { bytes, savingsBytes, measured } = volumeOf(facts, analyses);
  const base: Partial<CrossZoneResult> =
    measured && bytes !== undefined
      ? { ...measuredPart(bytes, facts.traffic), services }
      : { source: 'Estimated', services };
  if (bytes !== undefined && !measured) {
    base.monthlyCrossZoneGB = formatGB(bytes / BYTES_PER_GB);
    base.monthlyCostUSD = formatUSD((bytes / BYTES_PER_GB) * CROSS_ZONE_USD_PER_GB);
  }
  const telemetry =
    measured && bytes !== undefined ? [measuredFinding(facts, bytes)] : notMeasuredFindings(facts);
  const none = { services: [], spreadOverZones: false };

  const aware = analyses.filter((a) => a.aware).map((a) => a.service.name);
  if (aware.length > 0) {
    findings.push(
      finding(
        'TopologyAwareRouting',
        'Info',
        `Service ${listOf(aware)} already keeps traffic in-zone where it can.`,
      ),
    );
  }
  if (open.length === 0) {
    findings.push(...telemetry);
    if (aware.length === 0) {
      findings.push(
        finding(
          'NoCrossZoneTraffic',
          'Info',
          'Its clients and endpoints share zones: no traffic is expected to cross zones.',
        ),
      );
    }
    return {
      result: { ...result('AlreadyOptimized', findings, '0.00'), ...base },
      actionable: false,
      plan: none,
    };
  }

  const worst = Math.max(...open.map((a) => a.fraction));
  const names = open.map((a) => a.service.name);
  findings.push(
    ...telemetry,
    ...(measured
      ? []
      : [
          finding(
            'EstimatedFromPlacement',
            'Info',
            `${facts.traffic === undefined ? 'No traffic telemetry' : 'No measured traffic'}; up to ${Math.round(worst * 100)}% of the traffic to Service ${listOf(names)} is estimated to cross zones, from where its clients and ready endpoints run.`,
          ),
        ]),
    finding(
      'CrossZoneShare',
      'Raises',
      `Up to ${Math.round(worst * 100)}% of its Service traffic crosses zones, at $0.02/GB.`,
      Math.round(10 + 40 * worst),
    ),
  );
  const spread = open.filter((a) => a.needsSpread).map((a) => a.service.name);
  if (spread.length > 0) {
    findings.push(
      finding(
        'EndpointsUnbalanced',
        'Requires',
        `Ready endpoints of Service ${listOf(spread)} are not spread like its clients; spread its pods over zones first.`,
        10,
      ),
    );
  }
  const few = open.filter((a) => a.tooFewReplicas).map((a) => a.service.name);
  if (few.length > 0) {
    findings.push(
      finding(
        'TooFewReplicasForZones',
        'Requires',
        `Service ${listOf(few)} has too few replicas to keep ready endpoints in every client zone${fix.kind === 'topologyMode' ? ` (${TOPOLOGY_MODE_MIN_ENDPOINTS} per zone for topology-mode)` : ''}.`,
        15,
      ),
    );
  }
  const savingsUSD = (savingsBytes / BYTES_PER_GB) * CROSS_ZONE_USD_PER_GB;
  if (bytes === undefined) {
    findings.push(
      finding(
        'TrafficVolumeUnknown',
        'Info',
        'Without traffic telemetry the volume, and so the savings, cannot be priced.',
      ),
    );
  } else if (savingsUSD < facts.policy.crossZone.minMonthlySavingsUSD) {
    findings.push(
      finding(
        'BelowSavingsThreshold',
        'Blocks',
        `Keeping it in-zone would save ${formatUSD(savingsUSD)} USD a month, under the policy's ${formatUSD(facts.policy.crossZone.minMonthlySavingsUSD)}.`,
      ),
    );
  }
  const verdict = verdictOf(findings, false);
  const afterPatch = findings.filter(
    (f) => !(f.effect === 'Requires' && CROSS_ZONE_FIXED_BY_PATCH.has(f.code)),
  );
  const actionable =
    verdict === 'Recommended' ||
    (verdict === 'Possible' && verdictOf(afterPatch, false) === 'Recommended');
  const savings =
    verdict === 'Recommended' || verdict === 'Possible' ? formatUSD(savingsUSD) : '0.00';
  const plan: CrossZonePlan = {
    services: open
      .filter((a) => !a.tooFewReplicas)
      .map((a) => ({ name: a.service.name, patch: fixPatch(fix) })),
    spreadOverZones: spread.length > 0,
  };
  const explained = actionable ? notePatch(findings, CROSS_ZONE_FIXED_BY_PATCH) : findings;
  return { result: { ...result(verdict, explained, savings), ...base }, actionable, plan };
}
