import { describe, expect, it } from 'vitest';
import { factsFromObjects } from '../facts-from-objects.ts';
import { deployment, NODES, pod } from './testing.ts';

describe('Services', () => {
  it('finds the Services selecting the pods, their endpoints per zone, and where clients run', () => {
    const objects = [
      ...NODES,
      deployment('web'),
      deployment('client'),
      pod(
        'web-1',
        'shop',
        'n-a',
        { kind: 'ReplicaSet', name: 'web-x1' },
        { 'pod-template-hash': 'x1' },
      ),
      ...['n-a', 'n-b', 'n-c', 'n-c'].map((n, i) =>
        pod(
          `client-${i}`,
          'shop',
          n,
          { kind: 'ReplicaSet', name: 'client-y1' },
          { 'pod-template-hash': 'y1' },
        ),
      ),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: {
          name: 'web',
          namespace: 'shop',
          annotations: { 'service.kubernetes.io/topology-mode': 'Auto' },
        },
        spec: { selector: { app: 'web' }, trafficDistribution: 'PreferClose' },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web-headless', namespace: 'shop' },
        spec: { selector: { app: 'web' }, clusterIP: 'None' },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'other', namespace: 'shop' },
        spec: { selector: { app: 'other' } },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: 'web-1',
          namespace: 'shop',
          labels: { 'kubernetes.io/service-name': 'web' },
        },
        endpoints: [
          { zone: 'us-east-1a', conditions: { ready: true } },
          { zone: 'us-east-1b', conditions: { ready: false } },
          { zone: 'us-east-1b' },
        ],
      },
    ];
    const web = factsFromObjects(objects).facts.find((f) => f.name === 'web');
    expect(web?.services).toEqual([
      {
        name: 'web',
        headless: false,
        trafficDistribution: 'PreferClose',
        topologyMode: 'Auto',
        readyEndpointsPerZone: { 'us-east-1a': 1, 'us-east-1b': 1 },
        clientWeightsByZone: { 'us-east-1a': 1, 'us-east-1b': 1, 'us-east-1c': 2 },
      },
      // No EndpointSlice: the ready pods stand in.
      {
        name: 'web-headless',
        headless: true,
        readyEndpointsPerZone: { 'us-east-1a': 1 },
        clientWeightsByZone: { 'us-east-1a': 1, 'us-east-1b': 1, 'us-east-1c': 2 },
      },
    ]);
  });

  it.each([
    ['a port named metrics', 'argocd-metrics', [{ name: 'metrics', port: 8082 }], true],
    ['http-metrics and telemetry', 'ksm', [{ name: 'http-metrics' }, { name: 'telemetry' }], true],
    ['an unnamed port of a *-metrics Service', 'app-metrics', [{ port: 9090 }], true],
    ['a metrics port beside an http one', 'web', [{ name: 'metrics' }, { name: 'http' }], false],
    ['an unnamed port', 'web', [{ port: 80 }], false],
    ['no ports', 'web-metrics', [], false],
  ])('tells a metrics Service: %s', (_, name, ports, metricsOnly) => {
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'shop' },
      spec: { selector: { app: 'web' }, ports },
    };
    const [web] = factsFromObjects([deployment('web'), service]).facts;
    expect(web?.services[0]?.metricsOnly === true).toBe(metricsOnly);
  });
});
