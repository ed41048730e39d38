import { afterEach, describe, expect, it } from 'vitest';
import { RESOURCES } from '../kube/resources.ts';
import { deployment, startFakeOperator, type FakeOperator } from '../testing/harness.ts';

let operator: FakeOperator | undefined;
afterEach(async () => {
  await operator?.stop();
  operator = undefined;
});

function node(name: string, labels: Record<string, string>): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } };
}

describe('the cluster gauges', () => {
  it('count Spot nodes under either label scheme, whatever the case of the value', async () => {
    operator = await startFakeOperator();
    const { kube, cache, controller, metrics } = operator;
    kube.put(
      RESOURCES.nodes,
      node('a', { 'karpenter.sh/capacity-type': 'spot', 'kubernetes.io/arch': 'arm64' }),
    );
    kube.put(
      RESOURCES.nodes,
      node('b', { 'eks.amazonaws.com/capacityType': 'SPOT', 'kubernetes.io/arch': 'arm64' }),
    );
    kube.put(
      RESOURCES.nodes,
      node('c', { 'eks.amazonaws.com/capacityType': 'spot', 'kubernetes.io/arch': 'arm64' }),
    );
    kube.put(
      RESOURCES.nodes,
      node('d', { 'eks.amazonaws.com/capacityType': 'ON_DEMAND', 'kubernetes.io/arch': 'amd64' }),
    );
    await operator.until(() => [...cache.list('nodes')].length === 4);
    controller.updateMetrics();
    const values = (await metrics.nodes.get()).values.map((v) => [v.labels, v.value]);
    expect(values).toEqual(
      expect.arrayContaining([
        [{ capacity_type: 'spot', arch: 'arm64' }, 3],
        [{ capacity_type: 'on-demand', arch: 'amd64' }, 1],
      ]),
    );
  });

  it('total the money of every workload exactly, to the cent', async () => {
    operator = await startFakeOperator();
    const { kube, controller, metrics } = operator;
    kube.put(RESOURCES.nodes, {
      ...node('n', { 'node.kubernetes.io/instance-type': 'm6i.xlarge' }),
      status: { capacity: { cpu: '4', memory: '16Gi' } },
    });
    for (let i = 0; i < 30; i++) {
      const name = `web-${i}`;
      kube.put(RESOURCES.deployments, deployment('shop', name));
      kube.put(RESOURCES.pods, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${name}-0`,
          namespace: 'shop',
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: name, controller: true },
          ],
        },
        spec: {
          nodeName: 'n',
          containers: [
            { name, image: 'x', resources: { requests: { cpu: `${101 + i}m`, memory: '333Mi' } } },
          ],
        },
        status: { phase: 'Running' },
      });
    }
    await operator.until(() => kube.objects(RESOURCES.workloadrecommendations).length === 30);
    await operator.clock.advance(5_000);
    controller.updateMetrics();
    const costs = kube
      .objects(RESOURCES.workloadrecommendations)
      .map((wrec) => (wrec.status as { monthlyCostUSD?: string }).monthlyCostUSD ?? '0');
    const cents = costs.reduce((sum, usd) => sum + Math.round(Number(usd) * 100), 0);
    expect(cents).toBeGreaterThan(0);
    expect((await metrics.monthlyCost.get()).values[0]?.value).toBe(cents / 100);
  });
});
