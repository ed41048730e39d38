/**
 * One Service of a workload, for cross-zone traffic: the share of its traffic that crosses zones
 * (measured, or estimated as 1 − Σz a_z·b_z), whether its ready endpoints are spread like its
 * clients, the fix the cluster's Kubernetes supports and what that fix would keep in zone.
 */
import type { ServiceCrossZone } from './api/v1alpha1.ts';
import {
  ANNOTATION_TOPOLOGY_MODE,
  LABEL_ZONE,
  effectiveReplicas,
  type ServiceFacts,
  type WorkloadFacts,
} from './facts.ts';
import { clip, listOf } from './reasons.ts';

/** A client zone with less than this share of the traffic is not weighed when checking balance. */
export const MIN_CLIENT_SHARE = 0.05;
/** topology-mode: Auto only assigns hints with enough endpoints per zone. */
export const TOPOLOGY_MODE_MIN_ENDPOINTS = 3;

const AWARE_DISTRIBUTIONS = new Set(['PreferClose', 'PreferSameZone', 'PreferSameNode']);

/** True when the Service already asks Kubernetes to keep traffic in its clients' zone. */
export function routesByTopology(s: ServiceFacts): boolean {
  return (
    (s.trafficDistribution !== undefined && AWARE_DISTRIBUTIONS.has(s.trafficDistribution)) ||
    s.topologyMode?.toLowerCase() === 'auto'
  );
}

/** How a Service is told to keep its traffic in its clients' zone. */
export type Fix =
  | { kind: 'trafficDistribution'; value: 'PreferSameZone' | 'PreferClose' }
  | { kind: 'topologyMode' };

/** The fix the cluster's Kubernetes version supports best. */
export function chooseFix(kubernetesMinor: number | undefined): Fix {
  if (kubernetesMinor === undefined) return { kind: 'trafficDistribution', value: 'PreferClose' };
  if (kubernetesMinor >= 34) return { kind: 'trafficDistribution', value: 'PreferSameZone' };
  if (kubernetesMinor >= 31) return { kind: 'trafficDistribution', value: 'PreferClose' };
  return { kind: 'topologyMode' };
}

/** The fix as a merge patch over the Service. */
export function fixPatch(fix: Fix): Record<string, unknown> {
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

export interface ServiceAnalysis {
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

export function analyseService(
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
