import { afterEach, describe, expect, it } from 'vitest';
import { SECONDS_PER_MONTH, type TrafficInput } from '../../recommender/traffic.ts';
import { RESOURCES } from '../kube/resources.ts';
import {
  deployment,
  recommendationOf,
  startFakeOperator,
  type FakeOperator,
} from '../testing/harness.ts';
import type { TrafficSource } from './telemetry.ts';

/** A traffic source whose answer the test sets; each new answer is a refresh. */
class SetTraffic implements TrafficSource {
  private input: TrafficInput;
  private onUpdate: (() => void) | undefined;
  started = 0;

  constructor(input: TrafficInput) {
    this.input = input;
  }

  current(): TrafficInput {
    return this.input;
  }

  start(onUpdate: () => void): Promise<void> {
    this.started++;
    this.onUpdate = onUpdate;
    return Promise.resolve();
  }

  stop(): void {
    this.onUpdate = undefined;
  }

  set(input: TrafficInput): void {
    this.input = input;
    this.onUpdate?.();
  }
}

const GiB = 2 ** 30;
/** web in zone a ↔ api in zone b: web sends 10 GiB a month, api answers 30 GiB. */
const MEASURED: TrafficInput = {
  source: 'Beyla',
  window: '7d',
  flows: [
    {
      from: { namespace: 'shop', name: 'web' },
      to: { namespace: 'shop', name: 'api' },
      fromZone: 'us-east-1a',
      toZone: 'us-east-1b',
      bytesPerSecond: (10 * GiB) / SECONDS_PER_MONTH,
    },
    {
      from: { namespace: 'shop', name: 'api' },
      to: { namespace: 'shop', name: 'web' },
      fromZone: 'us-east-1b',
      toZone: 'us-east-1a',
      bytesPerSecond: (30 * GiB) / SECONDS_PER_MONTH,
    },
  ],
};

interface CrossZone {
  source?: string;
  monthlyCrossZoneGB?: string;
  edges?: { peer: { name: string } }[];
}

let operator: FakeOperator | undefined;
afterEach(async () => {
  await operator?.stop();
  operator = undefined;
});

const crossZone = (op: FakeOperator, name: string): CrossZone | undefined =>
  (recommendationOf(op.kube, 'shop', name) as { status?: { crossZone?: CrossZone } } | undefined)
    ?.status?.crossZone;

const edgeSeries = async (op: FakeOperator): Promise<string[]> =>
  (
    await op.metrics.registry
      .getSingleMetric('kopek_workload_cross_zone_edge_monthly_cost_usd')
      ?.get()
  )?.values.map((v) => `${String(v.labels.name)}<-${String(v.labels.peer_name)} ${v.value}`) ?? [];

describe('measured traffic in the recommendation controller', () => {
  it('puts each refresh into the facts, the status and the edge series, and takes them out again', async () => {
    const traffic = new SetTraffic(MEASURED);
    operator = await startFakeOperator({ traffic });
    const op = operator;
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web'));
    op.kube.put(RESOURCES.deployments, deployment('shop', 'api'));
    await op.until(() => crossZone(op, 'api')?.source === 'Measured');
    expect(traffic.started).toBe(1);
    // Neither has a Service: api sends more, so it is the edge's server and pays for it.
    expect(crossZone(op, 'api')).toMatchObject({
      monthlyCrossZoneGB: '40',
      edges: [{ peer: { name: 'web' } }],
    });
    expect(crossZone(op, 'web')?.monthlyCrossZoneGB).toBeUndefined();
    // 40 GB × $0.02 = $0.80
    expect(await edgeSeries(op)).toEqual(['api<-web 0.8']);

    traffic.set({ error: 'Prometheus at http://prometheus:9090 did not answer within 30 s' });
    await op.until(() => crossZone(op, 'api')?.monthlyCrossZoneGB === undefined);
    expect(await edgeSeries(op)).toEqual([]);
  });
});
