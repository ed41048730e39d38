/**
 * The traffic telemetry kopek reads from Prometheus: for each source, the series that reveal
 * it, the default PromQL (one query per refresh, whatever the number of workloads; `$window`
 * stands for the window), and how its answer becomes rows for recommender/traffic.ts. Every
 * query answers bytes per second averaged over the window; the recommender scales that to a
 * 730-hour month.
 */
import type { TrafficSourceName } from '../../recommender/facts.ts';
import type { FlowRow, PodEgressRow, TrafficMeasurement } from '../../recommender/traffic.ts';
import type { VectorSample } from './prometheus.ts';

export type TrafficSourceId = 'beyla' | 'istio' | 'kubecost';
/** Best first: zone pairs measured beat workload edges, which beat egress without a peer. */
export const TRAFFIC_SOURCES: readonly TrafficSourceId[] = ['beyla', 'istio', 'kubecost'];

export interface SourceDefinition {
  id: TrafficSourceId;
  name: TrafficSourceName;
  /** A selector whose series exist when the source is installed and labelled as kopek needs. */
  detect: string;
  /** The query, `$window` standing for the window. */
  query: string;
  /** The answer's series → a measurement. */
  measurement(samples: readonly VectorSample[], window: string): TrafficMeasurement;
}

const BEYLA_ENDS =
  'k8s_src_namespace, k8s_src_owner_name, k8s_dst_namespace, k8s_dst_owner_name, src_zone, dst_zone';
const BEYLA_FLOW_WITH_ZONES = 'beyla_network_flow_bytes_total{src_zone!="", dst_zone!=""}';
const ISTIO_EDGE =
  'reporter, source_workload_namespace, source_workload, destination_workload_namespace, destination_workload';
const ISTIO_METRICS = [
  ['istio_request_bytes_sum', 'request'],
  ['istio_response_bytes_sum', 'response'],
  ['istio_tcp_received_bytes_total', 'tcp_received'],
  ['istio_tcp_sent_bytes_total', 'tcp_sent'],
] as const;

/** Istio and Beyla say "unknown" or nothing for an end they could not name. */
function named(value: string | undefined): string {
  return value === undefined || value === 'unknown' ? '' : value;
}

function beylaRows(samples: readonly VectorSample[]): FlowRow[] {
  return samples.map(({ metric: m, value }) => {
    const row: FlowRow = {
      from: { namespace: named(m.k8s_src_namespace), name: named(m.k8s_src_owner_name) },
      to: { namespace: named(m.k8s_dst_namespace), name: named(m.k8s_dst_owner_name) },
      bytesPerSecond: value,
    };
    if (m.k8s_src_owner_type) row.from.kind = m.k8s_src_owner_type;
    if (m.k8s_dst_owner_type) row.to.kind = m.k8s_dst_owner_type;
    if (m.src_zone) row.fromZone = m.src_zone;
    if (m.dst_zone) row.toZone = m.dst_zone;
    return row;
  });
}

/**
 * Both proxies of an edge report it (reporter="source" at the client, "destination" at the
 * server): the server's report is used when there is one, else the client's, never both.
 */
function istioRows(samples: readonly VectorSample[]): FlowRow[] {
  const edges = new Map<string, { row: FlowRow; reporters: Map<string, number> }>();
  for (const { metric: m, value } of samples) {
    const from = { namespace: named(m.source_workload_namespace), name: named(m.source_workload) };
    const to = {
      namespace: named(m.destination_workload_namespace),
      name: named(m.destination_workload),
    };
    const key = `${from.namespace}/${from.name}>${to.namespace}/${to.name}`;
    const edge = edges.get(key) ?? {
      row: { from, to, bytesPerSecond: 0 },
      reporters: new Map<string, number>(),
    };
    const reporter = m.reporter ?? '';
    edge.reporters.set(reporter, (edge.reporters.get(reporter) ?? 0) + value);
    edges.set(key, edge);
  }
  return [...edges.values()].map(({ row, reporters }) => ({
    ...row,
    bytesPerSecond:
      reporters.get('destination') ??
      reporters.get('source') ??
      [...reporters.values()].reduce((a, b) => a + b, 0),
  }));
}

function kubecostRows(samples: readonly VectorSample[]): PodEgressRow[] {
  return samples.flatMap(({ metric: m, value }) => {
    const pod = m.pod_name ?? m.pod;
    if (!m.namespace || !pod) return [];
    return [{ namespace: m.namespace, pod, bytesPerSecond: value }];
  });
}

export const SOURCES: Record<TrafficSourceId, SourceDefinition> = {
  beyla: {
    id: 'beyla',
    name: 'Beyla',
    detect: `beyla_network_inter_zone_bytes_total or ${BEYLA_FLOW_WITH_ZONES}`,
    // The flow metric with zone attributes has in-zone traffic too (the clients' shares); the
    // inter-zone metric only what crosses. Use the first when it is there, never both.
    query: [
      `sum by (${BEYLA_ENDS}) (rate(${BEYLA_FLOW_WITH_ZONES}[$window]))`,
      `or (sum by (${BEYLA_ENDS}) (rate(beyla_network_inter_zone_bytes_total[$window]))`,
      `unless on () count(${BEYLA_FLOW_WITH_ZONES}))`,
    ].join('\n'),
    measurement: (samples, window) => ({ source: 'Beyla', window, flows: beylaRows(samples) }),
  },
  istio: {
    id: 'istio',
    name: 'Istio',
    detect: ISTIO_METRICS.map(([metric]) => metric).join(' or '),
    // Request and response bodies (HTTP, gRPC) and TCP bytes both ways. Each rate is tagged
    // before the union, as series of different metrics would otherwise collide once rate()
    // drops their names.
    query: `sum by (${ISTIO_EDGE}) (\n${ISTIO_METRICS.map(
      ([metric, part]) =>
        `  label_replace(rate(${metric}{reporter=~"source|destination"}[$window]), "kopek_part", "${part}", "", "")`,
    ).join('\n  or\n')}\n)`,
    measurement: (samples, window) => ({ source: 'Istio', window, flows: istioRows(samples) }),
  },
  kubecost: {
    id: 'kubecost',
    name: 'Kubecost',
    detect: 'kubecost_pod_network_egress_bytes_total',
    query:
      'sum by (namespace, pod_name) (rate(kubecost_pod_network_egress_bytes_total{same_zone="false", same_region="true"}[$window]))',
    measurement: (samples, window) => ({
      source: 'Kubecost',
      window,
      podEgress: kubecostRows(samples),
    }),
  },
};

/** One query that names, per source, whether its series exist. */
export function detectionQuery(): string {
  return TRAFFIC_SOURCES.map(
    (id) => `label_replace(count(${SOURCES[id].detect}), "kopek_source", "${id}", "", "")`,
  ).join(' or ');
}

/** The sources a detection answer found, best first. */
export function detectedSources(samples: readonly VectorSample[]): TrafficSourceId[] {
  const found = new Set(samples.filter((s) => s.value > 0).map((s) => s.metric.kopek_source));
  return TRAFFIC_SOURCES.filter((id) => found.has(id));
}

/** `$window` (or `${window}`) replaced by the window. */
export function withWindow(query: string, window: string): string {
  return query.replaceAll(/\$\{window\}|\$window\b/g, window);
}

/**
 * A Prometheus duration (1h, 7d, 2w, 1h30m) → seconds, or undefined when it is not one.
 */
export function windowSeconds(text: string): number | undefined {
  const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
  const parts = [...text.matchAll(/(\d+)([smhdw])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  const seconds = parts.reduce((sum, [, n = '0', u = 's']) => sum + Number(n) * (units[u] ?? 0), 0);
  return seconds > 0 ? seconds : undefined;
}
