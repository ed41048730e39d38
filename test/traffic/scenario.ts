/**
 * Chatty services for the tests and the demo: workload edges with known request volumes, and
 * the series Grafana Beyla, Istio and Kubecost would expose for them. Per client zone z the
 * client sends r GiB an hour to the server's pod in z and r to the one in the next zone; the
 * server answers 3r each. So, per edge over three zones:
 *
 * - Beyla: 24r GiB/h in all, of which 12r cross zones (r + 3r from each client zone);
 * - Istio: request bodies 6r, responses 18r (both proxies report them);
 * - Kubecost: the server's pods sent 9r to other zones (responses), the client's pods 3r.
 */
import type { GrowingSeries } from './exporter.ts';

export const GiB = 2 ** 30;
const PER_SECOND = GiB / 3600;

/** One end of an edge: a workload (a Deployment unless told). */
export interface EdgeEnd {
  namespace: string;
  name: string;
  kind?: string;
}

export interface ChattyEdge {
  client: EdgeEnd;
  server: EdgeEnd;
  /** r: GiB an hour the client sends to one server pod from each zone. */
  requestGiBPerHour: number;
  /** Istio reports it as TCP instead of HTTP. */
  tcp?: boolean;
}

const next = (zones: readonly string[], i: number): string => zones[(i + 1) % zones.length] ?? '';

export function beylaSeries(
  edges: readonly ChattyEdge[],
  zones: readonly string[],
): GrowingSeries[] {
  const series: GrowingSeries[] = [];
  for (const e of edges) {
    const r = e.requestGiBPerHour * PER_SECOND;
    const end = (side: 'src' | 'dst', workload: EdgeEnd) => ({
      [`k8s_${side}_namespace`]: workload.namespace,
      [`k8s_${side}_owner_name`]: workload.name,
      [`k8s_${side}_owner_type`]: workload.kind ?? 'Deployment',
    });
    zones.forEach((zone, i) => {
      for (const serverZone of [zone, next(zones, i)]) {
        const request = { ...end('src', e.client), ...end('dst', e.server) };
        const response = { ...end('src', e.server), ...end('dst', e.client) };
        const rows = [
          { labels: { ...request, src_zone: zone, dst_zone: serverZone }, perSecond: r },
          { labels: { ...response, src_zone: serverZone, dst_zone: zone }, perSecond: 3 * r },
        ];
        for (const row of rows) {
          const labels = { k8s_cluster_name: 'demo', ...row.labels };
          series.push({ name: 'beyla_network_flow_bytes_total', labels, perSecond: row.perSecond });
          if (serverZone !== zone)
            series.push({
              name: 'beyla_network_inter_zone_bytes_total',
              labels,
              perSecond: row.perSecond,
            });
        }
      }
    });
  }
  return series;
}

export function istioSeries(
  edges: readonly ChattyEdge[],
  zones: readonly string[],
): GrowingSeries[] {
  return edges.flatMap((e) => {
    const r = e.requestGiBPerHour * PER_SECOND * zones.length;
    const labels = {
      source_workload: e.client.name,
      source_workload_namespace: e.client.namespace,
      destination_workload: e.server.name,
      destination_workload_namespace: e.server.namespace,
      destination_service_name: e.server.name,
    };
    return ['source', 'destination'].flatMap((reporter): GrowingSeries[] =>
      e.tcp
        ? [
            {
              name: 'istio_tcp_received_bytes_total',
              labels: { reporter, ...labels },
              perSecond: 2 * r,
            },
            {
              name: 'istio_tcp_sent_bytes_total',
              labels: { reporter, ...labels },
              perSecond: 6 * r,
            },
          ]
        : [
            {
              name: 'istio_request_bytes',
              labels: { reporter, ...labels, response_code: '200' },
              perSecond: 2 * r,
              histogram: true,
            },
            {
              name: 'istio_response_bytes',
              labels: { reporter, ...labels, response_code: '200' },
              perSecond: 6 * r,
              histogram: true,
            },
          ],
    );
  });
}

/**
 * Each pod's bytes to other zones (and, to be filtered out, to its own zone), split evenly
 * over the pods `podsOf` names for its workload.
 */
export function kubecostSeries(
  edges: readonly ChattyEdge[],
  zones: readonly string[],
  podsOf: (namespace: string, workload: string) => readonly string[],
): GrowingSeries[] {
  const egress = new Map<string, { namespace: string; workload: string; cross: number }>();
  const add = (namespace: string, workload: string, cross: number) => {
    const key = `${namespace}/${workload}`;
    const e = egress.get(key) ?? { namespace, workload, cross: 0 };
    e.cross += cross;
    egress.set(key, e);
  };
  for (const e of edges) {
    const r = e.requestGiBPerHour * PER_SECOND * zones.length;
    add(e.server.namespace, e.server.name, 3 * r);
    add(e.client.namespace, e.client.name, r);
  }
  return [...egress.values()].flatMap(({ namespace, workload, cross }) => {
    const pods = podsOf(namespace, workload);
    return pods.flatMap((pod): GrowingSeries[] =>
      [
        ['false', cross / pods.length],
        ['true', cross / pods.length],
      ].map(([sameZone, perSecond]) => ({
        name: 'kubecost_pod_network_egress_bytes_total',
        labels: {
          namespace,
          pod_name: pod,
          internet: 'false',
          same_region: 'true',
          same_zone: String(sameZone),
          service: '',
        },
        perSecond: Number(perSecond),
      })),
    );
  });
}
