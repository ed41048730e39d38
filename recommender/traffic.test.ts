import { describe, expect, it } from 'vitest';
import type { WorkloadFacts } from './facts.ts';
import { goodFacts, node, pod, service, ZONES } from './testing.ts';
import { SECONDS_PER_MONTH, applyTraffic, type FlowRow, type TrafficInput } from './traffic.ts';

const [A, B, C] = ZONES;
/** One byte per second over a 730-hour month. */
const MONTH = SECONDS_PER_MONTH;

/** A workload `name` with one pod per zone listed, and a Service of the same name unless told. */
function workload(
  name: string,
  zones: readonly string[],
  extra: Partial<WorkloadFacts> = {},
): WorkloadFacts {
  return goodFacts({
    name,
    pods: zones.map((z, i) => pod(`${name}-5d8f7c9b4-x${i}abc`, node(`node-${z}`, z))),
    services: [
      service(name, {
        readyEndpointsPerZone: Object.fromEntries(
          [...new Set(zones)].map((z) => [z, zones.filter((x) => x === z).length]),
        ),
      }),
    ],
    ...extra,
  });
}

const shop = (name: string, kind?: string) => ({
  namespace: 'shop',
  name,
  ...(kind ? { kind } : {}),
});

function flow(
  from: string,
  to: string,
  fromZone: string | undefined,
  toZone: string | undefined,
  bytesPerSecond: number,
): FlowRow {
  return {
    from: from === '' ? { namespace: '', name: '' } : shop(from),
    to: to === '' ? { namespace: '', name: '' } : shop(to),
    ...(fromZone ? { fromZone } : {}),
    ...(toZone ? { toZone } : {}),
    bytesPerSecond,
  };
}

function byName(facts: readonly WorkloadFacts[], name: string): WorkloadFacts {
  const found = facts.find((f) => f.name === name);
  if (!found) throw new Error(`no facts for ${name}`);
  return found;
}

describe('Beyla: zone pairs measured directly, each edge counted once at its server side', () => {
  // web (no Service) calls checkout (Service, endpoints in a, b, c). Requests 1 B/s, responses
  // 3 B/s from each web zone; web's pods run in a and b.
  const web = workload('web', [A, B], { services: [] });
  const checkout = workload('checkout', [A, B, C]);
  const flows: FlowRow[] = [
    flow('web', 'checkout', A, A, 1),
    flow('checkout', 'web', A, A, 3),
    flow('web', 'checkout', A, B, 1),
    flow('checkout', 'web', B, A, 3),
    flow('web', 'checkout', B, C, 1),
    flow('checkout', 'web', C, B, 3),
  ];
  const { facts } = applyTraffic([web, checkout], { source: 'Beyla', window: '7d', flows });

  it('gives the server (the end a Service selects) the cross-zone bytes of both directions', () => {
    const s = byName(facts, 'checkout').services[0];
    // Crossing rows: a→b (1+3 B/s) and b→c (1+3 B/s) = 8 B/s = 8 × 2,628,000 B a month.
    expect(s?.measuredCrossZoneBytesPerMonth).toBe(8 * MONTH);
    // By the client's zone: web in a sent/received 4 B/s across, web in b 4 B/s.
    expect(s?.measuredCrossZoneBytesByClientZone).toEqual({ [A]: 4 * MONTH, [B]: 4 * MONTH });
    // Clients' traffic by zone, in-zone rows included: a 4 + 4, b 4.
    expect(s?.clientWeightsByZone).toEqual({ [A]: 8 * MONTH, [B]: 4 * MONTH });
  });

  it('lists the edge at the server only: the client is not charged again', () => {
    expect(byName(facts, 'checkout').traffic).toEqual({
      source: 'Beyla',
      window: '7d',
      method: 'ZonePairs',
      edges: [
        {
          peer: { namespace: 'shop', kind: 'Deployment', name: 'web' },
          crossZoneBytesPerMonth: 8 * MONTH,
        },
      ],
      edgeCount: 1,
      totalBytesPerMonth: 12 * MONTH,
    });
    const client = byName(facts, 'web');
    expect(client.traffic).toMatchObject({ edges: [], edgeCount: 0 });
    expect(client.measuredCrossZoneBytesPerMonth).toBeUndefined();
  });

  it('picks the end that sends more when both ends have a Service', () => {
    const frontend = workload('frontend', [A]);
    const api = workload('api', [B]);
    const { facts: out } = applyTraffic([frontend, api], {
      source: 'Beyla',
      window: '1d',
      flows: [flow('frontend', 'api', A, B, 2), flow('api', 'frontend', B, A, 10)],
    });
    expect(byName(out, 'api').services[0]?.measuredCrossZoneBytesPerMonth).toBe(12 * MONTH);
    expect(byName(out, 'frontend').services[0]?.measuredCrossZoneBytesPerMonth).toBeUndefined();
  });

  it('keeps bytes with an unnamed peer at the named end, outside its Services', () => {
    const { facts: out } = applyTraffic([checkout], {
      source: 'Beyla',
      window: '7d',
      flows: [flow('', 'checkout', A, B, 5), flow('checkout', '', B, A, 5)],
    });
    const f = byName(out, 'checkout');
    expect(f.measuredCrossZoneBytesPerMonth).toBe(10 * MONTH);
    expect(f.services[0]?.measuredCrossZoneBytesPerMonth).toBeUndefined();
    expect(f.traffic).toMatchObject({
      edges: [{ peer: { name: 'unknown' }, crossZoneBytesPerMonth: 10 * MONTH }],
    });
  });

  it('keeps the pod counts as client shares when only the inter-zone metric is there', () => {
    const { facts: out } = applyTraffic([web, checkout], {
      source: 'Beyla',
      window: '7d',
      flows: flows.filter((f) => f.fromZone !== f.toZone),
    });
    const s = byName(out, 'checkout').services[0];
    expect(s?.measuredCrossZoneBytesPerMonth).toBe(8 * MONTH);
    expect(s?.clientWeightsByZone).toEqual(checkout.services[0]?.clientWeightsByZone);
  });

  it('joins owners named by their ReplicaSet or a CronJob Job to the workload', () => {
    const report = workload('report', [A], { kind: 'CronJob', services: [] });
    const { facts: out } = applyTraffic([checkout, report], {
      source: 'Beyla',
      window: '7d',
      flows: [
        {
          from: shop('report-29123456', 'Job'),
          to: shop('checkout-5d8f7c9b4', 'ReplicaSet'),
          fromZone: A,
          toZone: B,
          bytesPerSecond: 1,
        },
      ],
    });
    expect(byName(out, 'checkout').traffic).toMatchObject({
      edges: [{ peer: { kind: 'CronJob', name: 'report' } }],
    });
  });

  it('warns about rows that name no owner, and rows of workloads it does not analyse', () => {
    const { warnings } = applyTraffic([checkout], {
      source: 'Beyla',
      window: '7d',
      flows: [
        flow('', '', A, B, 1),
        {
          from: { namespace: 'kube-system', name: 'coredns' },
          to: shop('gone'),
          bytesPerSecond: 1,
        },
      ],
    });
    expect(warnings).toEqual([
      expect.stringMatching(/^1 Beyla row name no owner .*k8s\.src\.owner\.name/),
      expect.stringMatching(/^1 Beyla row join no workload kopek analyses/),
    ]);
  });
});

describe('Istio: workload edges, cross-zone share from where the two workloads run', () => {
  it('charges the destination a_z·(1 − b_z) of each client zone', () => {
    // cart's 2 pods run in zone a; checkout's endpoints are one per zone; 30 B/s both ways.
    const cart = workload('cart', [A, A], { services: [] });
    const checkout = workload('checkout', [A, B, C]);
    const { facts } = applyTraffic([cart, checkout], {
      source: 'Istio',
      window: '7d',
      flows: [{ from: shop('cart'), to: shop('checkout'), bytesPerSecond: 30 }],
    });
    const s = byName(facts, 'checkout').services[0];
    // a_a = 1, b_a = 1/3: 30 × (1 − 1/3) = 20 B/s across zones.
    expect(s?.measuredCrossZoneBytesPerMonth).toBeCloseTo(20 * MONTH, 3);
    expect(s?.measuredCrossZoneBytesByClientZone?.[A]).toBeCloseTo(20 * MONTH, 3);
    expect(s?.clientWeightsByZone).toEqual({ [A]: 30 * MONTH });
    expect(byName(facts, 'checkout').traffic).toMatchObject({
      method: 'WorkloadEdges',
      totalBytesPerMonth: 30 * MONTH,
      edgeCount: 1,
    });
    expect(byName(facts, 'cart').traffic).toMatchObject({ edges: [], edgeCount: 0 });
  });

  it('keeps clients in zones with endpoints in-zone once the Service routes by topology', () => {
    const cart = workload('cart', [A, C], { services: [] });
    const checkout = workload('checkout', [A, B], {
      services: [
        service('checkout', {
          trafficDistribution: 'PreferSameZone',
          readyEndpointsPerZone: { [A]: 1, [B]: 1 },
        }),
      ],
    });
    const { facts } = applyTraffic([cart, checkout], {
      source: 'Istio',
      window: '7d',
      flows: [{ from: shop('cart'), to: shop('checkout'), bytesPerSecond: 10 }],
    });
    // Half the client is in c, where checkout has no endpoint: 5 B/s still cross.
    expect(byName(facts, 'checkout').services[0]?.measuredCrossZoneBytesPerMonth).toBe(5 * MONTH);
  });

  it('uses the Service’s other clients for a client outside the mesh, and splits over Services', () => {
    const checkout = workload('checkout', [A, B, C], {
      services: [service('checkout'), service('checkout-grpc')],
    });
    const { facts } = applyTraffic([checkout], {
      source: 'Istio',
      window: '7d',
      flows: [
        {
          from: { namespace: 'unknown', name: 'unknown' },
          to: shop('checkout'),
          bytesPerSecond: 9,
        },
      ],
    });
    const [http, grpc] = byName(facts, 'checkout').services;
    // Even clients and endpoints in three zones: 2/3 of 4.5 B/s on each Service.
    expect(http?.measuredCrossZoneBytesPerMonth).toBeCloseTo(3 * MONTH, 3);
    expect(grpc?.measuredCrossZoneBytesPerMonth).toBeCloseTo(3 * MONTH, 3);
    expect(byName(facts, 'checkout').traffic).toMatchObject({
      edges: [{ peer: { namespace: 'unknown', name: 'unknown' } }],
    });
  });

  it('charges a server without a routed Service outside its Services, from its pods’ zones', () => {
    const cart = workload('cart', [A], { services: [] });
    const redis = workload('redis', [B], { services: [service('redis', { headless: true })] });
    const { facts } = applyTraffic([cart, redis], {
      source: 'Istio',
      window: '7d',
      flows: [{ from: shop('cart'), to: shop('redis'), bytesPerSecond: 4 }],
    });
    expect(byName(facts, 'redis').measuredCrossZoneBytesPerMonth).toBe(4 * MONTH);
  });
});

describe('Kubecost: bytes each pod sent to other zones, kept at its workload', () => {
  const checkout = workload('checkout', [A, B, C]);
  const worker = workload('worker', [A], { kind: 'StatefulSet', services: [] });

  it('rolls pods up to workloads, running or gone, and never names a peer', () => {
    const { facts, warnings } = applyTraffic([checkout, worker], {
      source: 'Kubecost',
      window: '7d',
      podEgress: [
        { namespace: 'shop', pod: 'checkout-5d8f7c9b4-x0abc', bytesPerSecond: 1 },
        { namespace: 'shop', pod: 'checkout-6c7d8e9f1-qwert', bytesPerSecond: 2 },
        { namespace: 'shop', pod: 'worker-0', bytesPerSecond: 5 },
        { namespace: 'shop', pod: 'somebody-else', bytesPerSecond: 7 },
      ],
    });
    const s = byName(facts, 'checkout').services[0];
    expect(s?.measuredCrossZoneBytesPerMonth).toBe(3 * MONTH);
    expect(s?.measuredCrossZoneBytesByClientZone).toBeUndefined();
    expect(s?.clientWeightsByZone).toEqual(checkout.services[0]?.clientWeightsByZone);
    expect(byName(facts, 'worker').measuredCrossZoneBytesPerMonth).toBe(5 * MONTH);
    expect(byName(facts, 'checkout').traffic).toEqual({
      source: 'Kubecost',
      window: '7d',
      method: 'PodEgress',
      edges: [],
      edgeCount: 0,
    });
    expect(warnings).toEqual([expect.stringMatching(/^1 Kubecost pod belong to no workload/)]);
  });
});

describe('no measurement', () => {
  it('tells every workload why, and changes nothing else', () => {
    const facts = [goodFacts()];
    const input: TrafficInput = { error: 'Prometheus did not answer within 30 s' };
    const { facts: out } = applyTraffic(facts, input);
    expect(out).toEqual([
      { ...facts[0], traffic: { error: 'Prometheus did not answer within 30 s' } },
    ]);
  });
});
