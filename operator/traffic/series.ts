/**
 * The per-workload cross-zone series: monthly bytes, and the largest measured edges with
 * their bytes and cost. An edge series goes when it leaves the workload's top edges, and all
 * of them when the workload goes.
 */
import type { CrossZoneResult } from '../../recommender/api/v1alpha1.ts';
import { BYTES_PER_GB } from '../../recommender/cross-zone.ts';
import type { Metrics } from '../metrics.ts';

export interface WorkloadLabels {
  namespace: string;
  kind: string;
  name: string;
}

type EdgeLabels = WorkloadLabels & { peer_namespace: string; peer_kind: string; peer_name: string };

const keyOf = (labels: WorkloadLabels): string =>
  `${labels.namespace}/${labels.kind}/${labels.name}`;

export class CrossZoneSeries {
  private readonly metrics: Metrics;
  private readonly edges = new Map<string, EdgeLabels[]>();

  constructor(metrics: Metrics) {
    this.metrics = metrics;
  }

  record(labels: WorkloadLabels, crossZone: CrossZoneResult | undefined): void {
    const { workloadCrossZoneBytes, workloadCrossZoneEdgeBytes, workloadCrossZoneEdgeCost } =
      this.metrics;
    if (crossZone?.monthlyCrossZoneGB === undefined) workloadCrossZoneBytes.remove(labels);
    else workloadCrossZoneBytes.set(labels, Number(crossZone.monthlyCrossZoneGB) * BYTES_PER_GB);
    const next = (crossZone?.edges ?? []).map((edge) => ({
      edge,
      labels: {
        ...labels,
        peer_namespace: edge.peer.namespace ?? '',
        peer_kind: edge.peer.kind ?? '',
        peer_name: edge.peer.name,
      },
    }));
    const kept = new Set(next.map(({ labels: l }) => JSON.stringify(l)));
    for (const old of this.edges.get(keyOf(labels)) ?? []) {
      if (kept.has(JSON.stringify(old))) continue;
      workloadCrossZoneEdgeBytes.remove(old);
      workloadCrossZoneEdgeCost.remove(old);
    }
    for (const { edge, labels: l } of next) {
      workloadCrossZoneEdgeBytes.set(l, Number(edge.monthlyCrossZoneGB) * BYTES_PER_GB);
      workloadCrossZoneEdgeCost.set(l, Number(edge.monthlyCostUSD));
    }
    if (next.length > 0)
      this.edges.set(
        keyOf(labels),
        next.map(({ labels: l }) => l),
      );
    else this.edges.delete(keyOf(labels));
  }

  forget(labels: WorkloadLabels): void {
    this.record(labels, undefined);
  }
}
