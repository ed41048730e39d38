/**
 * Measured cross-zone traffic in a workload's status: the volume and its cost, its largest edges,
 * and the reason that says where the figures come from (or why they are estimated).
 */
import type { CrossZoneEdge, CrossZoneResult } from './api/v1alpha1.ts';
import type { TrafficFact, TrafficSourceName, WorkloadFacts } from './facts.ts';
import { CROSS_ZONE_USD_PER_GB, formatUSD } from './pricing.ts';
import { clip, finding, type Finding } from './reasons.ts';

/** AWS bills data transfer per GB of 2^30 bytes. */
export const BYTES_PER_GB = 1024 ** 3;

/** How many measured edges a status lists (the CRD's maxItems). */
export const MAX_EDGES = 10;

/** GB with up to 3 decimals. */
export function formatGB(gb: number): string {
  if (!Number.isFinite(gb) || gb <= 0) return '0';
  return String(Math.round(gb * 1000) / 1000);
}

const SOURCE_LABELS: Record<TrafficSourceName, string> = {
  Beyla: 'Grafana Beyla',
  Istio: 'Istio',
  Kubecost: 'Kubecost network costs',
};

/** The measured money of the workload: volume, cost and its largest edges. */
export function measuredPart(
  bytes: number,
  traffic: TrafficFact | undefined,
): Partial<CrossZoneResult> {
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
export function measuredFinding(facts: WorkloadFacts, bytes: number): Finding {
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
export function notMeasuredFindings(facts: WorkloadFacts): Finding[] {
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
