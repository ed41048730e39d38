import { describe, expect, it } from 'vitest';
import { factsFromObjects } from './facts-from-objects.ts';
import { normalizeImageRef } from './images.ts';
import { matchesSelector, resolvePolicy, selectPolicy } from './policy.ts';
import { parseQuantity } from './quantity.ts';

type Obj = Record<string, unknown>;

function nodeObj(
  name: string,
  zone: string,
  extra: {
    type?: string;
    arch?: string;
    spot?: boolean;
    eks?: boolean;
    taints?: Obj[];
    kubelet?: string;
  } = {},
): Obj {
  const labels: Record<string, string> = {
    'topology.kubernetes.io/zone': zone,
    'topology.kubernetes.io/region': 'us-east-1',
    'node.kubernetes.io/instance-type': extra.type ?? 'm6i.xlarge',
    'kubernetes.io/arch': extra.arch ?? 'amd64',
  };
  if (extra.eks === true)
    labels['eks.amazonaws.com/capacityType'] = extra.spot === true ? 'SPOT' : 'ON_DEMAND';
  else labels['karpenter.sh/capacity-type'] = extra.spot === true ? 'spot' : 'on-demand';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: extra.taints === undefined ? {} : { taints: extra.taints },
    status: {
      capacity: { cpu: '4', memory: '16Gi' },
      nodeInfo: { kubeletVersion: extra.kubelet ?? 'v1.33.1-eks-1' },
    },
  };
}

const podSpec = (extra: Obj = {}): Obj => ({
  containers: [
    {
      name: 'app',
      image: 'nginx:1.27',
      resources: { requests: { cpu: '500m', memory: '1Gi' } },
      readinessProbe: { httpGet: { path: '/', port: 80 } },
    },
  ],
  ...extra,
});

function deployment(
  name: string,
  ns = 'shop',
  extra: { annotations?: Record<string, string>; replicas?: number; spec?: Obj } = {},
): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: ns,
      uid: `uid-${name}`,
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: {
      replicas: extra.replicas ?? 3,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: podSpec(extra.spec) },
    },
  };
}

function pod(
  name: string,
  ns: string,
  node: string,
  owner: { kind: string; name: string },
  labels: Record<string, string> = {},
  spec: Obj = {},
): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      labels,
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: 'x', controller: true },
      ],
    },
    spec: { ...podSpec(spec), nodeName: node },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

const NODES = [
  nodeObj('n-a', 'us-east-1a'),
  nodeObj('n-b', 'us-east-1b', { spot: true }),
  nodeObj('n-c', 'us-east-1c', {
    type: 'm7g.xlarge',
    arch: 'arm64',
    taints: [{ key: 'kubernetes.io/arch', value: 'arm64', effect: 'NoSchedule' }],
  }),
];

describe('facts from a kubectl dump', () => {
  it('ties pods to Deployments through their ReplicaSet, with or without the ReplicaSet in the dump', () => {
    const objects = [
      ...NODES,
      deployment('web'),
      deployment('api'),
      {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: 'web-abc',
          namespace: 'shop',
          ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }],
        },
        spec: { template: {} },
      },
      pod('web-abc-1', 'shop', 'n-a', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod('web-abc-2', 'shop', 'n-b', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod(
        'api-7d9f-1',
        'shop',
        'n-c',
        { kind: 'ReplicaSet', name: 'api-7d9f' },
        { 'pod-template-hash': '7d9f' },
      ),
    ];
    const { facts, warnings } = factsFromObjects(objects);
    expect(warnings).toEqual([]);
    expect(facts.map((f) => `${f.kind}/${f.name}:${f.pods.map((p) => p.name).join(',')}`)).toEqual([
      'Deployment/api:api-7d9f-1',
      'Deployment/web:web-abc-1,web-abc-2',
    ]);
    const web = facts.find((f) => f.name === 'web');
    expect(web?.pods[0]).toMatchObject({
      cpuRequestCores: 0.5,
      memoryRequestBytes: 1024 ** 3,
      ready: true,
      node: {
        zone: 'us-east-1a',
        instanceType: 'm6i.xlarge',
        capacityType: 'on-demand',
        arch: 'amd64',
        cpuCores: 4,
      },
    });
    expect(web?.pods[1]?.node?.capacityType).toBe('spot');
  });

  it('ties pods to CronJobs through their Job, with or without the Job in the dump', () => {
    const cron = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'report', namespace: 'batch' },
      spec: {
        schedule: '@daily',
        jobTemplate: {
          spec: {
            backoffLimit: 2,
            template: { metadata: { labels: { app: 'report' } }, spec: podSpec() },
          },
        },
      },
    };
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'report-100',
        namespace: 'batch',
        ownerReferences: [{ kind: 'CronJob', name: 'report', controller: true }],
      },
      spec: { template: { spec: podSpec() } },
      status: { startTime: '2026-07-01T02:00:00Z', completionTime: '2026-07-01T02:10:00Z' },
    };
    const objects = [
      ...NODES,
      cron,
      job,
      pod('report-100-x', 'batch', 'n-a', { kind: 'Job', name: 'report-100' }),
      pod('report-200-y', 'batch', 'n-b', { kind: 'Job', name: 'report-200' }),
    ];
    const { facts } = factsFromObjects(objects);
    expect(facts).toHaveLength(1);
    expect(facts[0]).toMatchObject({
      kind: 'CronJob',
      name: 'report',
      job: { backoffLimit: 2, observedRunSeconds: 600 },
    });
    expect(facts[0]?.pods.map((p) => p.name)).toEqual(['report-100-x', 'report-200-y']);
  });

  it('skips system namespaces and kopek.dev/ignore, and says so', () => {
    const { facts, skipped } = factsFromObjects([
      deployment('coredns', 'kube-system'),
      deployment('exp', 'shop', { annotations: { 'kopek.dev/ignore': 'true' } }),
      deployment('web'),
    ]);
    expect(facts.map((f) => f.name)).toEqual(['web']);
    expect(skipped).toEqual([
      { namespace: 'kube-system', kind: 'Deployment', name: 'coredns', reason: 'system namespace' },
      {
        namespace: 'shop',
        kind: 'Deployment',
        name: 'exp',
        reason: 'annotated kopek.dev/ignore: "true"',
      },
    ]);
  });

  it('warns, per object, about what it cannot use, and never throws', () => {
    const objects = [
      'just a string',
      { kind: 'Deployment' },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' } },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: 'x' } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'no-template', namespace: 'x' },
        spec: {},
      },
      deployment('bad-cpu', 'shop', {
        spec: {
          containers: [
            {
              name: 'app',
              image: 'nginx',
              resources: { requests: { cpu: 'lots', memory: '1Gi' } },
            },
          ],
        },
      }),
      pod('stray', 'shop', 'nowhere', { kind: 'ReplicaSet', name: 'gone-123' }),
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'bare', namespace: 'shop' },
        spec: { nodeName: 'n-a', containers: [] },
        status: { phase: 'Running' },
      },
      nodeObj('n-a', 'us-east-1a'),
    ];
    const { facts, warnings } = factsFromObjects(objects);
    expect(facts.map((f) => f.name)).toEqual(['bad-cpu']);
    expect(warnings).toEqual(
      expect.arrayContaining([
        'object 0: not a Kubernetes object; skipped',
        'an object without apiVersion is not a Kubernetes object; skipped',
        'a Deployment without metadata.name; skipped',
        'Deployment x/no-template: it has no pod template (spec.template); skipped',
        'Deployment shop/bad-cpu container app: cpu request "lots" is not a quantity; counted as 0',
        'Pod shop/stray runs on node nowhere, which is not in the input; it is not priced',
        'ignored 2 ConfigMap objects: kopek does not read that kind',
        expect.stringMatching(/^1 pod has no owning workload .*Pod shop\/bare/),
      ]),
    );
  });

  it('reads HPAs, PDBs (from their spec), volumes, probes, preStop sleeps and pins', () => {
    const spec = {
      terminationGracePeriodSeconds: 60,
      priorityClassName: 'high',
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'shop', effect: 'NoSchedule' }],
      topologySpreadConstraints: [
        {
          topologyKey: 'topology.kubernetes.io/zone',
          maxSkew: 1,
          whenUnsatisfiable: 'DoNotSchedule',
        },
      ],
      volumes: [
        { name: 'h', hostPath: { path: '/x' } },
        { name: 'd', persistentVolumeClaim: { claimName: 'fast' } },
        { name: 't', emptyDir: {} },
      ],
      initContainers: [
        {
          name: 'proxy',
          image: 'envoy:1',
          restartPolicy: 'Always',
          resources: { limits: { cpu: '100m', memory: '128Mi' } },
        },
      ],
      containers: [
        {
          name: 'app',
          image: 'nginx:1.27',
          resources: { requests: { cpu: '1', memory: '2Gi' } },
          lifecycle: { preStop: { exec: { command: ['sh', '-c', 'sleep 15'] } } },
        },
      ],
    };
    const objects = [
      deployment('web', 'shop', { spec, replicas: 2 }),
      {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          scaleTargetRef: { kind: 'Deployment', name: 'web' },
          minReplicas: 4,
          maxReplicas: 10,
        },
      },
      {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'web', namespace: 'shop' },
        spec: { maxUnavailable: '25%', selector: { matchLabels: { app: 'web' } } },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'fast', namespace: 'shop' },
        spec: { volumeName: 'pv-1' },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'pv-1' },
        spec: { local: { path: '/mnt' } },
      },
    ];
    const [web] = factsFromObjects(objects).facts;
    expect(web?.hpa).toEqual({ name: 'web', minReplicas: 4, maxReplicas: 10 });
    // 25% of 4 (the HPA minimum) rounds up to 1.
    expect(web?.pdb).toEqual({ name: 'web', disruptionsAllowed: 1 });
    expect(web?.template).toMatchObject({
      terminationGracePeriodSeconds: 60,
      priorityClassName: 'high',
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      volumes: [
        { name: 'h', kind: 'hostPath' },
        { name: 'd', kind: 'local', claimName: 'fast' },
        { name: 't', kind: 'emptyDir' },
      ],
      topologySpread: [
        {
          topologyKey: 'topology.kubernetes.io/zone',
          maxSkew: 1,
          whenUnsatisfiable: 'DoNotSchedule',
        },
      ],
    });
    expect(web?.template.containers).toEqual([
      {
        name: 'proxy',
        image: 'envoy:1',
        role: 'sidecar',
        readinessProbe: false,
        cpuRequestCores: 0.1,
        memoryRequestBytes: 128 * 1024 ** 2,
      },
      {
        name: 'app',
        image: 'nginx:1.27',
        role: 'main',
        readinessProbe: false,
        cpuRequestCores: 1,
        memoryRequestBytes: 2 * 1024 ** 3,
        preStopSleepSeconds: 15,
      },
    ]);
  });

  it('computes a PDB allowance from minAvailable', () => {
    const pdb = (minAvailable: number | string) => ({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'p', namespace: 'shop' },
      spec: { minAvailable, selector: { matchLabels: { app: 'web' } } },
    });
    expect(
      factsFromObjects([deployment('web', 'shop', { replicas: 3 }), pdb(2)]).facts[0]?.pdb
        ?.disruptionsAllowed,
    ).toBe(1);
    expect(
      factsFromObjects([deployment('web', 'shop', { replicas: 3 }), pdb('100%')]).facts[0]?.pdb
        ?.disruptionsAllowed,
    ).toBe(0);
  });

  it("counts a pod's requests like the scheduler: init containers, sidecars, overhead", () => {
    const spec = {
      initContainers: [
        { name: 'migrate', image: 'm', resources: { requests: { cpu: '2', memory: '1Gi' } } },
        {
          name: 'proxy',
          image: 'p',
          restartPolicy: 'Always',
          resources: { requests: { cpu: '250m', memory: '256Mi' } },
        },
      ],
      containers: [
        { name: 'app', image: 'a', resources: { requests: { cpu: '500m', memory: '1Gi' } } },
      ],
      overhead: { cpu: '100m', memory: '64Mi' },
    };
    const objects = [
      NODES[0],
      deployment('web'),
      pod(
        'web-1',
        'shop',
        'n-a',
        { kind: 'ReplicaSet', name: 'web-1a2b' },
        { 'pod-template-hash': '1a2b' },
        spec,
      ),
    ];
    const p = factsFromObjects(objects).facts[0]?.pods[0];
    // CPU: max(0.5 + 0.25, 2) + 0.1 = 2.1; memory: max(1Gi + 256Mi, 1Gi) + 64Mi.
    expect(p?.cpuRequestCores).toBeCloseTo(2.1, 12);
    expect(p?.memoryRequestBytes).toBe((1024 + 256 + 64) * 1024 ** 2);
  });

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

  it('reads the cluster: region, zones, architectures, capacity labels, pool taints, version', () => {
    const cluster = factsFromObjects([
      ...NODES,
      nodeObj('n-d', 'us-east-1a', { eks: true, kubelet: 'v1.34.2' }),
      deployment('web'),
    ]).facts[0]?.cluster;
    expect(cluster).toEqual({
      region: 'us-east-1',
      zones: ['us-east-1a', 'us-east-1b', 'us-east-1c'],
      architectures: ['amd64', 'arm64'],
      capacityTypes: ['on-demand', 'spot'],
      capacityLabelSchemes: ['eks', 'karpenter'],
      spotNodeTaints: [],
      arm64NodeTaints: [{ key: 'kubernetes.io/arch', value: 'arm64', effect: 'NoSchedule' }],
      kubernetesMinor: 34,
    });
    expect(
      factsFromObjects([...NODES, deployment('web')], { region: 'eu-west-1', kubernetesMinor: 30 })
        .facts[0]?.cluster,
    ).toMatchObject({ region: 'eu-west-1', kubernetesMinor: 30 });
  });

  it('looks image platforms up under any spelling of the reference', () => {
    const objects = [deployment('web')];
    const { facts } = factsFromObjects(objects, {
      imagePlatforms: { 'docker.io/library/nginx:1.27': { platforms: ['linux/arm64'] } },
    });
    expect(facts[0]?.imagePlatforms).toEqual({ 'nginx:1.27': { platforms: ['linux/arm64'] } });
  });

  it('applies the SavingsPolicy with the highest priority that matches', () => {
    const policy = (name: string, priority: number, spec: Obj) => ({
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'SavingsPolicy',
      metadata: { name },
      spec: { priority, ...spec },
    });
    const objects = [
      deployment('web', 'payments'),
      deployment('web', 'shop'),
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { environment: 'production' } },
      },
      policy('everywhere', 0, {}),
      policy('prod', 100, {
        namespaceSelector: { matchLabels: { environment: 'production' } },
        spot: { minReplicas: 3 },
      }),
      policy('no-spot-for-payments', 500, {
        namespaceSelector: {
          matchExpressions: [
            { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['payments'] },
          ],
        },
        spot: { enabled: false },
      }),
    ];
    const byNs = Object.fromEntries(
      factsFromObjects(objects).facts.map((f) => [f.namespace, f.policy]),
    );
    expect(byNs.payments).toMatchObject({
      name: 'no-spot-for-payments',
      spot: { enabled: false, minReplicas: 2 },
    });
    expect(byNs.shop).toMatchObject({
      name: 'prod',
      spot: { enabled: true, minReplicas: 3, maxTerminationGracePeriodSeconds: 90 },
    });
  });

  it('is deterministic whatever the input order', () => {
    const objects = [
      ...NODES,
      deployment('b'),
      deployment('a'),
      pod('a-1', 'shop', 'n-a', { kind: 'ReplicaSet', name: 'a-h' }, { 'pod-template-hash': 'h' }),
    ];
    expect(JSON.stringify(factsFromObjects(objects))).toBe(
      JSON.stringify(factsFromObjects([...objects].reverse())),
    );
  });
});

describe('quantities', () => {
  it.each([
    ['500m', 0.5],
    ['1', 1],
    ['1.5', 1.5],
    ['2k', 2000],
    ['512Mi', 512 * 1024 ** 2],
    ['1Gi', 1024 ** 3],
    ['1G', 1e9],
    ['1e3', 1000],
    ['1E', 1e18],
    ['100n', 1e-7],
    [4, 4],
  ])('%s → %s', (q, n) => {
    expect(parseQuantity(q)).toBeCloseTo(n, 12);
  });
  it.each(['lots', '', '1Gb', '--1', '1.2.3', 'Mi'])('%s is not a quantity', (q) => {
    expect(parseQuantity(q)).toBeUndefined();
  });
});

describe('image references', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['bitnami/kafka:3.9', 'docker.io/bitnami/kafka:3.9'],
    ['index.docker.io/library/redis:7', 'docker.io/library/redis:7'],
    ['ghcr.io/acme/web:1', 'ghcr.io/acme/web:1'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['registry:5000/app:2', 'registry:5000/app:2'],
    ['nginx@sha256:abc', 'docker.io/library/nginx@sha256:abc'],
  ])('%s → %s', (ref, norm) => {
    expect(normalizeImageRef(ref)).toBe(norm);
  });
});

describe('policies', () => {
  it('fills in the CRD defaults', () => {
    expect(resolvePolicy({}, 'p')).toEqual({
      name: 'p',
      mode: 'Recommend',
      spot: {
        enabled: true,
        minReplicas: 2,
        maxTerminationGracePeriodSeconds: 90,
        placement: 'Preferred',
      },
      arm64: { enabled: true, placement: 'Preferred' },
      crossZone: { enabled: true, minMonthlySavingsUSD: 10 },
    });
    expect(
      resolvePolicy({ crossZone: { minMonthlySavingsUSD: '25' } }).crossZone.minMonthlySavingsUSD,
    ).toBe(25);
  });

  it('matches label selectors', () => {
    expect(matchesSelector(undefined, {})).toBe(true);
    expect(
      matchesSelector(
        { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] },
        { a: 'y' },
      ),
    ).toBe(true);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: 'y' }),
    ).toBe(false);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: 'y' }),
    ).toBe(true);
  });

  it('breaks priority ties by name, and without a match uses the defaults', () => {
    const p = (name: string) => ({
      apiVersion: 'kopek.dev/v1alpha1' as const,
      kind: 'SavingsPolicy' as const,
      metadata: { name },
      spec: { priority: 1 },
    });
    expect(selectPolicy([p('b'), p('a')], {}, {}).name).toBe('a');
    expect(selectPolicy([], {}, {}).name).toBeUndefined();
  });
});
