/**
 * The Services that select a workload's pods: their ready endpoints per zone (from
 * EndpointSlices, or the ready pods when there are none), their traffic distribution, and the
 * zones their clients run in.
 */
import { ANNOTATION_TOPOLOGY_MODE, type ServiceFacts } from '../facts.ts';
import { matchesSelector } from '../policy.ts';
import { kindList, SYSTEM_NAMESPACES, type Index } from './index.ts';
import type { RunningPod } from './pods.ts';
import { obj, objectKey, objs, str, strMap, type K8s } from './read.ts';
import { SelectorIndex } from './selectors.ts';

export interface ZoneCounts {
  total: Map<string, number>;
  byWorkload: Map<string, Map<string, number>>;
}

/** The zone a running pod counts as a client in, or undefined when it is not a client. */
export function clientZone(p: RunningPod): string | undefined {
  if (SYSTEM_NAMESPACES.has(p.pod.meta.namespace) || p.workload?.startsWith('DaemonSet/') === true)
    return undefined;
  return p.node?.facts.zone;
}

/** Where client pods run: every non-system, non-DaemonSet running pod, per zone. */
export function clientZones(pods: readonly RunningPod[]): ZoneCounts {
  const total = new Map<string, number>();
  const byWorkload = new Map<string, Map<string, number>>();
  for (const p of pods) {
    const zone = clientZone(p);
    if (zone === undefined) continue;
    total.set(zone, (total.get(zone) ?? 0) + 1);
    if (p.workload !== undefined) {
      const m = byWorkload.get(p.workload) ?? new Map<string, number>();
      m.set(zone, (m.get(zone) ?? 0) + 1);
      byWorkload.set(p.workload, m);
    }
  }
  return { total, byWorkload };
}

/** A Service that selects pods, with its selector and its EndpointSlices. */
export interface SelectingService {
  service: K8s;
  selector: Record<string, string>;
  slices: K8s[];
}

/** The Services that select pods (ExternalName Services and those without a selector do not). */
export function readServices(index: Index): SelectorIndex<SelectingService> {
  const slices = new Map<string, K8s[]>();
  for (const slice of kindList(index, 'EndpointSlice')) {
    const key = serviceOfSlice(slice);
    if (key === undefined) continue;
    const list = slices.get(key);
    if (list === undefined) slices.set(key, [slice]);
    else list.push(slice);
  }
  const services = new SelectorIndex<SelectingService>();
  for (const service of kindList(index, 'Service')) {
    const selector = serviceSelector(service.raw.spec);
    if (selector === undefined) continue;
    services.add(service.meta.namespace, selector, {
      service,
      selector,
      slices: slices.get(`${service.meta.namespace}/${service.meta.name}`) ?? [],
    });
  }
  return services;
}

/** The pods a Service's spec selects, or undefined when it selects none (ExternalName, no selector). */
export function serviceSelector(spec: unknown): Record<string, string> | undefined {
  if (obj(spec).type === 'ExternalName') return undefined;
  const selector = strMap(obj(spec).selector);
  return Object.keys(selector).length === 0 ? undefined : selector;
}

/** The Service (`namespace/name`) an EndpointSlice belongs to, from its service-name label. */
export function serviceOfSlice(slice: K8s): string | undefined {
  const service = slice.meta.labels[SERVICE_NAME_LABEL];
  return service === undefined ? undefined : `${slice.meta.namespace}/${service}`;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Port names (or, for unnamed ports, Service names) of a metrics endpoint. */
const METRICS_NAME = /(^|[-_])(metrics|telemetry)$|^prometheus$/;

/** True when every port of the Service serves metrics (see ServiceFacts.metricsOnly). */
function servesOnlyMetrics(service: K8s): boolean {
  const ports = objs(obj(service.raw.spec).ports);
  return (
    ports.length > 0 && ports.every((p) => METRICS_NAME.test(str(p.name) ?? service.meta.name))
  );
}

/** Ready endpoints per zone from the EndpointSlices, or from the ready pods when there are none. */
function readyEndpointsPerZone(
  slices: readonly K8s[],
  pods: readonly RunningPod[],
): Record<string, number> {
  const perZone: Record<string, number> = {};
  const count = (zone: string | undefined, ready: boolean): void => {
    if (zone !== undefined && ready) perZone[zone] = (perZone[zone] ?? 0) + 1;
  };
  if (slices.length === 0) {
    for (const p of pods) count(p.node?.facts.zone, p.ready);
    return perZone;
  }
  for (const slice of slices) {
    for (const ep of objs(slice.raw.endpoints)) {
      count(str(ep.zone), obj(ep.conditions).ready !== false);
    }
  }
  return perZone;
}

export function servicesFor(
  w: K8s,
  templateLabels: Record<string, string>,
  pods: readonly RunningPod[],
  clients: ZoneCounts,
  services: SelectorIndex<SelectingService>,
): ServiceFacts[] {
  const wkey = objectKey(w.kind, w.meta.namespace, w.meta.name);
  const own = clients.byWorkload.get(wkey) ?? new Map<string, number>();
  const clientWeights: Record<string, number> = {};
  for (const [z, n] of [...clients.total].sort(([a], [b]) => a.localeCompare(b))) {
    const weight = n - (own.get(z) ?? 0);
    if (weight > 0) clientWeights[z] = weight;
  }
  const out: ServiceFacts[] = [];
  for (const { service: s, selector, slices } of services.candidates(
    w.meta.namespace,
    templateLabels,
  )) {
    if (!matchesSelector({ matchLabels: selector }, templateLabels)) continue;
    const spec = obj(s.raw.spec);
    const fact: ServiceFacts = {
      name: s.meta.name,
      headless: spec.clusterIP === 'None',
      readyEndpointsPerZone: readyEndpointsPerZone(slices, pods),
      clientWeightsByZone: clientWeights,
    };
    const td = str(spec.trafficDistribution);
    const mode =
      s.meta.annotations[ANNOTATION_TOPOLOGY_MODE] ??
      s.meta.annotations['service.kubernetes.io/topology-aware-hints'];
    if (servesOnlyMetrics(s)) fact.metricsOnly = true;
    if (td !== undefined) fact.trafficDistribution = td;
    if (mode !== undefined) fact.topologyMode = mode;
    out.push(fact);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
