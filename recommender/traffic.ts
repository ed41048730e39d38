/**
 * Measured traffic → facts. The operator (and `kopek analyze --prometheus-url`) reads one
 * telemetry source per refresh and hands its rows here as plain numbers (bytes per second
 * averaged over the window); this module ties them to the workloads, counts every edge once —
 * at its server side — and fills the facts the cross-zone evaluation reads:
 *
 * - per routed Service of the server: cross-zone bytes a month, split by the client's zone (so
 *   the fix's savings are what comes from client zones with ready endpoints), and the clients'
 *   traffic by zone, which replaces the pod counts in the check that every client zone has
 *   endpoints enough;
 * - per workload: bytes no Service of it carries, and its largest edges.
 *
 * Grafana Beyla measures zone pairs directly. Istio measures workload edges (source = client,
 * destination = server); each edge's cross-zone share then comes from where the client's pods
 * and the server's ready endpoints run. Kubecost measures what each pod sent to other zones,
 * without the peer: those bytes stay with the sender. Pure: no I/O, no clock.
 */
import { MAX_EDGES, routesByTopology, zoneShares } from './cross-zone.ts';
import type {
  ServiceFacts,
  TrafficEdgeFact,
  TrafficFact,
  TrafficMethod,
  TrafficSourceName,
  WorkloadFacts,
} from './facts.ts';

/** A 730-hour month, in seconds: the rate over the window scales to this. */
export const SECONDS_PER_MONTH = 730 * 3600;

/** A workload as telemetry names it. An empty name: telemetry could not tell (node, outside). */
export interface TrafficPeer {
  namespace: string;
  name: string;
  /** The owner kind, when the source says (Beyla: Deployment, StatefulSet, ...). */
  kind?: string;
}

/** Bytes per second, averaged over the window, sent from one end to the other. */
export interface FlowRow {
  from: TrafficPeer;
  to: TrafficPeer;
  /** The zones of the two ends, when the source measured them (Beyla). */
  fromZone?: string;
  toZone?: string;
  bytesPerSecond: number;
}

/** Bytes per second a pod sent to other zones of its region (Kubecost). */
export interface PodEgressRow {
  namespace: string;
  pod: string;
  bytesPerSecond: number;
}

/**
 * One refresh of one source. Beyla rows: `from` sent the bytes to `to`, both directions of a
 * connection appear. Istio rows: `from` is the client, `to` the server, bytes both ways.
 */
export type TrafficMeasurement =
  | { source: 'Beyla' | 'Istio'; window: string; flows: readonly FlowRow[] }
  | { source: 'Kubecost'; window: string; podEgress: readonly PodEgressRow[] };

/** A measurement, or why there is none (the estimate is used, and the reasons say why). */
export type TrafficInput = TrafficMeasurement | { error: string };

export interface TrafficResult {
  facts: WorkloadFacts[];
  /** Rows that could not be used, once per kind of problem. */
  warnings: string[];
}

const METHODS: Record<TrafficSourceName, TrafficMethod> = {
  Beyla: 'ZonePairs',
  Istio: 'WorkloadEdges',
  Kubecost: 'PodEgress',
};

/** Traffic attributed to one routed Service of a server workload. */
interface ServiceTraffic {
  cross: number;
  crossByClientZone: Map<string, number>;
  clientBytesByZone: Map<string, number>;
}

/** Everything attributed to one workload (by its index in the facts). */
interface Attributed {
  services: Map<string, ServiceTraffic>;
  /** Cross-zone bytes no Service of it carries. */
  unrouted?: number;
  edges: Map<string, TrafficEdgeFact>;
  total: number;
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

function sortedRecord(map: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...map].sort(([a], [b]) => a.localeCompare(b)));
}

/** Looks workloads up by the names telemetry uses for them. */
class WorkloadIndex {
  private readonly byName = new Map<string, number[]>();
  private readonly byPod = new Map<string, number>();
  private readonly inNamespace = new Map<string, number[]>();
  readonly facts: readonly WorkloadFacts[];

  constructor(facts: readonly WorkloadFacts[]) {
    this.facts = facts;
    facts.forEach((f, i) => {
      const key = `${f.namespace}/${f.name}`;
      this.byName.set(key, [...(this.byName.get(key) ?? []), i]);
      this.inNamespace.set(f.namespace, [...(this.inNamespace.get(f.namespace) ?? []), i]);
      for (const p of f.pods) this.byPod.set(`${f.namespace}/${p.name}`, i);
    });
  }

  private named(namespace: string, name: string, kinds?: readonly string[]): number | undefined {
    const found = this.byName.get(`${namespace}/${name}`) ?? [];
    return kinds === undefined
      ? found[0]
      : found.find((i) => kinds.includes(this.facts[i]?.kind ?? ''));
  }

  /**
   * A workload by its owner name: exactly, preferring the kind the source gave; or a
   * ReplicaSet's name (`<deployment>-<pod-template-hash>`) or a CronJob's Job
   * (`<cronjob>-<scheduled time>`), for sources that name the direct owner.
   */
  workload(peer: TrafficPeer): number | undefined {
    if (peer.name === '' || peer.namespace === '') return undefined;
    const exact =
      (peer.kind !== undefined ? this.named(peer.namespace, peer.name, [peer.kind]) : undefined) ??
      this.named(peer.namespace, peer.name);
    if (exact !== undefined) return exact;
    const replicaSet = /^(.+)-[a-z0-9]{5,10}$/.exec(peer.name)?.[1];
    const job = /^(.+)-\d+$/.exec(peer.name)?.[1];
    return (
      (replicaSet === undefined
        ? undefined
        : this.named(peer.namespace, replicaSet, ['Deployment', 'Rollout'])) ??
      (job === undefined ? undefined : this.named(peer.namespace, job, ['CronJob']))
    );
  }

  /**
   * The workload of a pod: a pod that runs now by its name; one that has gone (the window is
   * days long) by the names its controller gives pods.
   */
  podWorkload(namespace: string, pod: string): number | undefined {
    const running = this.byPod.get(`${namespace}/${pod}`);
    if (running !== undefined) return running;
    const suffixes: Record<string, RegExp> = {
      Deployment: /^[a-z0-9]{1,10}-[a-z0-9]{5}$/,
      Rollout: /^[a-z0-9]{1,10}-[a-z0-9]{5}$/,
      StatefulSet: /^\d+$/,
      DaemonSet: /^[a-z0-9]{5}$/,
      ReplicaSet: /^[a-z0-9]{5}$/,
      Job: /^[a-z0-9]{5}$/,
      CronJob: /^\d+-[a-z0-9]{5}$/,
    };
    let best: number | undefined;
    for (const i of this.inNamespace.get(namespace) ?? []) {
      const f = this.facts[i];
      if (f === undefined || !pod.startsWith(`${f.name}-`)) continue;
      const rest = pod.slice(f.name.length + 1);
      if (!(suffixes[f.kind]?.test(rest) ?? false)) continue;
      if (best === undefined || f.name.length > (this.facts[best]?.name.length ?? 0)) best = i;
    }
    return best;
  }
}

/** Shares of a workload's pods by zone (scheduled pods whose node has a zone). */
function podZoneShares(f: WorkloadFacts): Map<string, number> {
  const counts: Record<string, number> = {};
  for (const p of f.pods) {
    const zone = p.node?.zone;
    if (zone !== undefined) counts[zone] = (counts[zone] ?? 0) + 1;
  }
  return zoneShares(counts);
}

function routed(f: WorkloadFacts): ServiceFacts[] {
  return f.services.filter((s) => !s.headless);
}

/** Collects attributions per workload; the three sources feed it in their own ways. */
class Attribution {
  readonly index: WorkloadIndex;
  readonly byWorkload = new Map<number, Attributed>();

  constructor(index: WorkloadIndex) {
    this.index = index;
  }

  of(i: number): Attributed {
    let a = this.byWorkload.get(i);
    if (a === undefined) {
      a = { services: new Map(), edges: new Map(), total: 0 };
      this.byWorkload.set(i, a);
    }
    return a;
  }

  service(i: number, name: string): ServiceTraffic {
    const a = this.of(i);
    let s = a.services.get(name);
    if (s === undefined) {
      s = { cross: 0, crossByClientZone: new Map(), clientBytesByZone: new Map() };
      a.services.set(name, s);
    }
    return s;
  }

  unrouted(i: number, bytes: number): void {
    const a = this.of(i);
    a.unrouted = (a.unrouted ?? 0) + bytes;
  }

  edge(i: number, peer: TrafficEdgeFact['peer'], crossBytes: number): void {
    const key = `${peer.namespace ?? ''}/${peer.kind ?? ''}/${peer.name}`;
    const edges = this.of(i).edges;
    const e = edges.get(key);
    edges.set(key, {
      peer,
      crossZoneBytesPerMonth: (e?.crossZoneBytesPerMonth ?? 0) + crossBytes,
    });
  }

  /** The peer as the status names it: the analysed workload, else what telemetry said. */
  peerOf(end: TrafficPeer, i: number | undefined): TrafficEdgeFact['peer'] {
    const f = i === undefined ? undefined : this.index.facts[i];
    if (f !== undefined) return { namespace: f.namespace, kind: f.kind, name: f.name };
    const peer: TrafficEdgeFact['peer'] = { name: end.name === '' ? 'unknown' : end.name };
    if (end.namespace !== '') peer.namespace = end.namespace;
    if (end.kind !== undefined && end.kind !== '') peer.kind = end.kind;
    return peer;
  }
}

/**
 * Istio: every row is a workload edge, client → server, with its bytes both ways. The server
 * takes it; each routed Service of the server an equal part. Per client zone z, the part that
 * crosses is a_z·(1 − b_z) (a: the client's pods by zone, b: the Service's ready endpoints by
 * zone); a Service already routed by topology keeps clients in zones with endpoints in-zone.
 */
function attributeIstio(flows: readonly FlowRow[], into: Attribution, warnings: string[]): void {
  let unattributed = 0;
  for (const row of flows) {
    const server = into.index.workload(row.to);
    const serverFacts = server === undefined ? undefined : into.index.facts[server];
    if (server === undefined || serverFacts === undefined) {
      unattributed++;
      continue;
    }
    const client = into.index.workload(row.from);
    const clientFacts = client === undefined ? undefined : into.index.facts[client];
    const bytes = row.bytesPerSecond * SECONDS_PER_MONTH;
    const clientShares = clientFacts === undefined ? undefined : podZoneShares(clientFacts);
    const services = routed(serverFacts);
    const peer = into.peerOf(row.from, client);
    into.of(server).total += bytes;
    if (services.length === 0) {
      const a =
        clientShares ??
        zoneShares(Object.fromEntries(serverFacts.cluster.zones.map((z) => [z, 1])));
      const b = podZoneShares(serverFacts);
      let same = 0;
      for (const [z, share] of a) same += share * (b.get(z) ?? 0);
      const cross = bytes * Math.max(0, 1 - same);
      into.unrouted(server, cross);
      into.edge(server, peer, cross);
      continue;
    }
    let edgeCross = 0;
    for (const s of services) {
      const part = bytes / services.length;
      // An unnamed client (outside the mesh): where the Service's other clients run.
      const a =
        clientShares !== undefined && clientShares.size > 0
          ? clientShares
          : zoneShares(s.clientWeightsByZone);
      const b = zoneShares(s.readyEndpointsPerZone);
      const aware = routesByTopology(s);
      const t = into.service(server, s.name);
      for (const [z, share] of a) {
        const crossing = aware
          ? (s.readyEndpointsPerZone[z] ?? 0) > 0
            ? 0
            : 1
          : 1 - (b.get(z) ?? 0);
        const cross = part * share * crossing;
        t.cross += cross;
        edgeCross += cross;
        add(t.crossByClientZone, z, cross);
        add(t.clientBytesByZone, z, part * share);
      }
    }
    into.edge(server, peer, edgeCross);
  }
  if (unattributed > 0)
    warnings.push(
      `${unattributed} Istio edge${unattributed === 1 ? '' : 's'} lead to no workload kopek analyses (system namespaces, ignored workloads, services outside the mesh); not attributed`,
    );
}

/** One end of a Beyla pair: the analysed workload it joins, if any. */
interface End {
  peer: TrafficPeer;
  workload: number | undefined;
  key: string;
}

interface Pair {
  ends: [End, End];
  /** The rows of both directions, with the key of the end that sent them. */
  rows: { row: FlowRow; from: string }[];
}

/** Beyla rows gathered per pair of ends (both directions together). */
function pairsOf(
  flows: readonly FlowRow[],
  index: WorkloadIndex,
): { pairs: Pair[]; unnamed: number; unattributed: number } {
  const pairs = new Map<string, Pair>();
  let unnamed = 0;
  let unattributed = 0;
  for (const row of flows) {
    if (row.from.name === '' && row.to.name === '') {
      unnamed++;
      continue;
    }
    const ends = [row.from, row.to].map((peer): End => {
      const workload = index.workload(peer);
      const key = workload !== undefined ? `w${workload}` : `x${peer.namespace}/${peer.name}`;
      return { peer, workload, key };
    }) as [End, End];
    if (ends[0].workload === undefined && ends[1].workload === undefined) {
      unattributed++;
      continue;
    }
    const sorted: [End, End] = ends[0].key <= ends[1].key ? ends : [ends[1], ends[0]];
    const key = `${sorted[0].key}|${sorted[1].key}`;
    const pair = pairs.get(key) ?? { ends: sorted, rows: [] };
    pair.rows.push({ row, from: ends[0].key });
    pairs.set(key, pair);
  }
  return { pairs: [...pairs.values()], unnamed, unattributed };
}

/**
 * The server side of a pair: the only end kopek analyses; else the end a routed Service
 * selects; else (both or neither) the end that sends more, as responses outweigh requests.
 */
function serverOf(pair: Pair, index: WorkloadIndex): End {
  const [a, b] = pair.ends;
  if (a.workload === undefined) return b;
  if (b.workload === undefined) return a;
  const serves = (end: End): boolean => {
    const f = end.workload === undefined ? undefined : index.facts[end.workload];
    return f !== undefined && routed(f).length > 0;
  };
  if (serves(a) !== serves(b)) return serves(a) ? a : b;
  const sent = (end: End): number =>
    pair.rows.filter((r) => r.from === end.key).reduce((sum, r) => sum + r.row.bytesPerSecond, 0);
  return sent(b) > sent(a) ? b : a;
}

/**
 * Beyla: rows are one direction of an edge, with the zones of both ends. The two directions
 * are gathered per pair of ends and counted once, at the server side (see serverOf). Bytes
 * with an end telemetry could not name stay with the named end, outside its Services. Returns
 * whether the rows include in-zone traffic (the flow metric with zones), which the clients'
 * shares by zone need.
 */
function attributeBeyla(flows: readonly FlowRow[], into: Attribution, warnings: string[]): boolean {
  const { pairs, unnamed, unattributed } = pairsOf(flows, into.index);
  let sameZoneRows = false;
  for (const pair of pairs) {
    const server = serverOf(pair, into.index);
    const client = server === pair.ends[0] ? pair.ends[1] : pair.ends[0];
    const i = server.workload;
    const f = i === undefined ? undefined : into.index.facts[i];
    if (i === undefined || f === undefined) continue;
    const services = client.workload === undefined ? [] : routed(f);
    let edgeCross = 0;
    for (const { row, from } of pair.rows) {
      const bytes = row.bytesPerSecond * SECONDS_PER_MONTH;
      into.of(i).total += bytes;
      if (!row.fromZone || !row.toZone) continue;
      const clientZone = from === server.key ? row.toZone : row.fromZone;
      const crosses = row.fromZone !== row.toZone;
      if (crosses) edgeCross += bytes;
      else sameZoneRows = true;
      if (services.length === 0) {
        if (crosses) into.unrouted(i, bytes);
        continue;
      }
      for (const s of services) {
        const t = into.service(i, s.name);
        const part = bytes / services.length;
        add(t.clientBytesByZone, clientZone, part);
        if (!crosses) continue;
        t.cross += part;
        add(t.crossByClientZone, clientZone, part);
      }
    }
    into.edge(i, into.peerOf(client.peer, client.workload), edgeCross);
  }
  if (unnamed > 0)
    warnings.push(
      `${unnamed} Beyla row${unnamed === 1 ? '' : 's'} name no owner at either end: include k8s.src.owner.name, k8s.src.namespace, k8s.dst.owner.name and k8s.dst.namespace in Beyla's attributes.select for the metric`,
    );
  if (unattributed > 0)
    warnings.push(
      `${unattributed} Beyla row${unattributed === 1 ? '' : 's'} join no workload kopek analyses (system namespaces, ignored workloads); not attributed`,
    );
  return sameZoneRows;
}

/** Kubecost: each pod's bytes sent to other zones stay with its workload (its Services, if any). */
function attributeKubecost(
  rows: readonly PodEgressRow[],
  into: Attribution,
  warnings: string[],
): void {
  let unattributed = 0;
  for (const row of rows) {
    const i = into.index.podWorkload(row.namespace, row.pod);
    const f = i === undefined ? undefined : into.index.facts[i];
    if (i === undefined || f === undefined) {
      unattributed++;
      continue;
    }
    const bytes = row.bytesPerSecond * SECONDS_PER_MONTH;
    const services = routed(f);
    if (services.length === 0) into.unrouted(i, bytes);
    for (const s of services) into.service(i, s.name).cross += bytes / services.length;
  }
  if (unattributed > 0)
    warnings.push(
      `${unattributed} Kubecost pod${unattributed === 1 ? '' : 's'} belong to no workload kopek analyses; not attributed`,
    );
}

/**
 * Facts with the measured traffic filled in (or, on an error, the reason the estimate is used).
 * Every workload gets a `traffic` fact, so the reasons can say what the source saw of it.
 */
export function applyTraffic(facts: readonly WorkloadFacts[], input: TrafficInput): TrafficResult {
  if ('error' in input) {
    return { facts: facts.map((f) => ({ ...f, traffic: { error: input.error } })), warnings: [] };
  }
  const warnings: string[] = [];
  const into = new Attribution(new WorkloadIndex(facts));
  // Client traffic by zone replaces the pod counts only when it covers in-zone traffic too.
  let clientSharesMeasured = true;
  if (input.source === 'Kubecost') {
    attributeKubecost(input.podEgress, into, warnings);
    clientSharesMeasured = false;
  } else if (input.source === 'Istio') {
    attributeIstio(input.flows, into, warnings);
  } else {
    clientSharesMeasured = attributeBeyla(input.flows, into, warnings);
  }
  const method = METHODS[input.source];
  const out = facts.map((f, i): WorkloadFacts => {
    const a = into.byWorkload.get(i);
    const edges = [...(a?.edges.values() ?? [])]
      .filter((e) => e.crossZoneBytesPerMonth > 0)
      .sort(
        (x, y) =>
          y.crossZoneBytesPerMonth - x.crossZoneBytesPerMonth ||
          `${x.peer.namespace ?? ''}/${x.peer.name}`.localeCompare(
            `${y.peer.namespace ?? ''}/${y.peer.name}`,
          ),
      );
    const traffic: TrafficFact = {
      source: input.source,
      window: input.window,
      method,
      edges: edges.slice(0, MAX_EDGES),
      edgeCount: a?.edges.size ?? 0,
    };
    if (a !== undefined && a.total > 0 && method !== 'PodEgress')
      traffic.totalBytesPerMonth = a.total;
    const next: WorkloadFacts = { ...f, traffic };
    if (a === undefined) return next;
    if (a.unrouted !== undefined) next.measuredCrossZoneBytesPerMonth = a.unrouted;
    next.services = f.services.map((s) => {
      const t = a.services.get(s.name);
      if (t === undefined) return s;
      const measured: ServiceFacts = { ...s, measuredCrossZoneBytesPerMonth: t.cross };
      if (method !== 'PodEgress')
        measured.measuredCrossZoneBytesByClientZone = sortedRecord(t.crossByClientZone);
      if (clientSharesMeasured && t.clientBytesByZone.size > 0)
        measured.clientWeightsByZone = sortedRecord(t.clientBytesByZone);
      return measured;
    });
    return next;
  });
  return { facts: out, warnings };
}
