/**
 * Arbitrary JSON shaped like a `kubectl get -o json` dump of a cluster, for fuzzing
 * factsFromObjects and recommend: objects of every kind kopek reads that refer to one another
 * (pods owned by workloads and scheduled on nodes, Services selecting pods, slices naming
 * Services, HPAs and PDBs aimed at workloads), with any field missing or of the wrong type,
 * unicode and oversized strings, negative, enormous and malformed quantities, and now and then a
 * list thousands of items long.
 */
import fc from 'fast-check';
import type { BuildOptions } from '../../recommender/facts-from-objects.ts';
import type { ImagePlatformsFact } from '../../recommender/facts.ts';

type Arb<T> = fc.Arbitrary<T>;
type Obj = Record<string, unknown>;

/** Usually `good`, sometimes missing, sometimes any JSON value at all. */
function maybe(good: Arb<unknown>): Arb<unknown> {
  return fc.oneof(
    { weight: 12, arbitrary: good },
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
}

/** An object without its undefined fields, as JSON would carry it. */
function record(shape: Record<string, Arb<unknown>>): Arb<Obj> {
  return fc
    .record(shape)
    .map((fields) => Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)));
}

const UNICODE = fc.string({ unit: 'grapheme', maxLength: 40 });
const HUGE_STRING = fc.nat({ max: 5000 }).map((n) => 'x'.repeat(n + 300));

const NAMESPACES = ['shop', 'payments', 'kube-system', 'ünï-cødé', ''];
// Object names are what the API server lets them be (DNS subdomains of up to 253 characters,
// so no dump holds others); every other string field may be any text.
const NAMES = ['web', 'api', 'db', 'worker', 'a', 'web.v2', 'x'.repeat(253)];
const APPS = ['web', 'api', 'db', 'worker'];
const NODES = ['node-a', 'node-b', 'node-c', 'node-d', 'ip-10-0-1-23.ec2.internal'];
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c', 'eu-west-1a', '', '🌍'];
const TYPES = [
  'm6i.xlarge',
  'm5.large',
  'c6i.2xlarge',
  'r7g.large',
  't3.medium',
  'p4d.24xlarge',
  'x9z.huge',
  'm6i',
  '.',
];
const IMAGES = [
  'web:1',
  'registry.example.com/shop/api:2',
  'db@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
  'ghcr.io/acme/worker',
  'Not A Valid Image!!',
  '',
];

const name: Arb<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...NAMES) },
  { weight: 2, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.jsonValue({ maxDepth: 2 }).filter((value) => typeof value !== 'string'),
  },
);
const namespace: Arb<unknown> = maybe(fc.constantFrom(...NAMESPACES));

/** Quantities as people, YAML and broken tools write them. */
const quantity: Arb<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('100m', '500m', '1', '2', '1.5', '512Mi', '4Gi', '1G') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '-1',
      '-500m',
      '0',
      '1e308',
      '1e309',
      '9'.repeat(400),
      '1E',
      'NaN',
      'Infinity',
      '12Qi',
      ' 2 ',
      '0.000000001n',
      '1Ei',
      '999999999Ei',
    ),
  },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.double(),
      fc.integer(),
      fc.constantFrom(-1, 1e308, Number.MAX_SAFE_INTEGER, -0),
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
);

const count: Arb<unknown> = maybe(
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 12 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(-1, -2147483648, 2147483647, 1e12, 1.5, Number.MAX_VALUE),
    },
    { weight: 1, arbitrary: fc.constantFrom('3', 'three', null) },
  ),
);

const labels: Arb<unknown> = maybe(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...APPS).map((app) => ({ app })) },
    {
      weight: 2,
      arbitrary: fc.dictionary(
        fc.constantFrom('app', 'tier', 'pod-template-hash', 'kubernetes.io/arch', 'ü'),
        fc.oneof(fc.constantFrom(...APPS, 'amd64', 'arm64'), UNICODE),
        { maxKeys: 4 },
      ),
    },
  ),
);

const annotations: Arb<unknown> = maybe(
  fc.dictionary(
    fc.constantFrom(
      'kopek.dev/ignore',
      'kopek.dev/spot',
      'kopek.dev/arm64',
      'karpenter.sh/do-not-disrupt',
      'cluster-autoscaler.kubernetes.io/safe-to-evict',
      'service.kubernetes.io/topology-mode',
      'note',
    ),
    fc.oneof(fc.constantFrom('true', 'false', 'never', 'Auto', 'auto'), UNICODE),
    { maxKeys: 3 },
  ),
);

const ownerKind = fc.constantFrom(
  'ReplicaSet',
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'Rollout',
  'Node',
  'Unknown',
);

const ownerReferences: Arb<unknown> = maybe(
  fc.array(
    record({
      apiVersion: maybe(fc.constantFrom('apps/v1', 'batch/v1', 'argoproj.io/v1alpha1')),
      kind: maybe(ownerKind),
      name: maybe(fc.oneof(fc.constantFrom(...NAMES), fc.constantFrom('web-5d4f8', 'job-123'))),
      uid: maybe(fc.uuid()),
      controller: maybe(fc.boolean()),
    }),
    { maxLength: 3 },
  ),
);

function metadata(options: { namespaced: boolean; owned?: boolean }): Arb<unknown> {
  return maybe(
    record({
      name,
      ...(options.namespaced ? { namespace } : {}),
      uid: maybe(fc.uuid()),
      labels,
      annotations,
      ...(options.owned ? { ownerReferences } : {}),
      generation: maybe(fc.integer({ min: 1, max: 10 })),
    }),
  );
}

const resources: Arb<unknown> = maybe(
  record({
    requests: maybe(record({ cpu: maybe(quantity), memory: maybe(quantity) })),
    limits: maybe(record({ cpu: maybe(quantity), memory: maybe(quantity) })),
  }),
);

const container: Arb<unknown> = record({
  name: maybe(fc.oneof(fc.constantFrom('app', 'sidecar', 'init'), UNICODE)),
  image: maybe(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...IMAGES) }, HUGE_STRING)),
  resources,
  readinessProbe: maybe(fc.constantFrom({ httpGet: { path: '/', port: 80 } }, {})),
  lifecycle: maybe(
    fc.constantFrom(
      { preStop: { sleep: { seconds: 30 } } },
      { preStop: { sleep: { seconds: -5 } } },
      { preStop: { sleep: { seconds: 1e15 } } },
      { preStop: { exec: { command: ['sleep', '20'] } } },
      { preStop: { exec: { command: ['sh', '-c', 'sleep notanumber'] } } },
    ),
  ),
  restartPolicy: maybe(fc.constantFrom('Always', 'Never')),
});

/** Most lists are short; one in a hundred is thousands of items long. */
function list<T>(item: Arb<T>, max = 4): Arb<unknown> {
  return maybe(
    fc.oneof(
      { weight: 99, arbitrary: fc.array(item, { maxLength: max }) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(item, fc.integer({ min: 500, max: 3000 }))
          .map(([one, n]) => Array.from({ length: n }, () => one)),
      },
    ),
  );
}

const matchExpression = record({
  key: maybe(
    fc.constantFrom(
      'kubernetes.io/arch',
      'karpenter.sh/capacity-type',
      'eks.amazonaws.com/capacityType',
      'topology.kubernetes.io/zone',
      'node.kubernetes.io/instance-type',
    ),
  ),
  operator: maybe(fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Bogus')),
  values: maybe(
    fc.array(fc.constantFrom('amd64', 'arm64', 'spot', 'on-demand', 'SPOT', 'us-east-1a'), {
      maxLength: 3,
    }),
  ),
});

const podSpec: Arb<unknown> = maybe(
  record({
    containers: list(container),
    initContainers: list(container, 2),
    nodeSelector: maybe(
      fc.dictionary(
        fc.constantFrom('kubernetes.io/arch', 'karpenter.sh/capacity-type', 'disk'),
        fc.constantFrom('amd64', 'arm64', 'spot', 'on-demand', 'ssd'),
        { maxKeys: 2 },
      ),
    ),
    affinity: maybe(
      record({
        nodeAffinity: maybe(
          record({
            requiredDuringSchedulingIgnoredDuringExecution: maybe(
              record({
                nodeSelectorTerms: list(record({ matchExpressions: list(matchExpression, 3) }), 2),
              }),
            ),
            preferredDuringSchedulingIgnoredDuringExecution: list(
              record({
                weight: count,
                preference: record({ matchExpressions: list(matchExpression, 2) }),
              }),
              2,
            ),
          }),
        ),
      }),
    ),
    tolerations: list(
      record({
        key: maybe(fc.constantFrom('karpenter.sh/capacity-type', 'dedicated', '')),
        operator: maybe(fc.constantFrom('Equal', 'Exists')),
        value: maybe(fc.constantFrom('spot', 'arm64', '')),
        effect: maybe(fc.constantFrom('NoSchedule', 'NoExecute', '')),
      }),
      3,
    ),
    topologySpreadConstraints: list(
      record({
        topologyKey: maybe(
          fc.constantFrom('topology.kubernetes.io/zone', 'kubernetes.io/hostname'),
        ),
        maxSkew: count,
        whenUnsatisfiable: maybe(fc.constantFrom('DoNotSchedule', 'ScheduleAnyway')),
      }),
      2,
    ),
    volumes: list(
      fc.oneof(
        record({ name: maybe(fc.constantFrom('data', 'tmp')), emptyDir: fc.constant({}) }),
        record({ name: maybe(fc.constant('host')), hostPath: maybe(record({ path: UNICODE })) }),
        record({
          name: maybe(fc.constant('data')),
          persistentVolumeClaim: maybe(record({ claimName: maybe(fc.constantFrom(...NAMES)) })),
        }),
      ),
      3,
    ),
    terminationGracePeriodSeconds: count,
    priorityClassName: maybe(fc.constantFrom('system-cluster-critical', 'high', '')),
    restartPolicy: maybe(fc.constantFrom('Always', 'OnFailure', 'Never')),
    imagePullSecrets: list(record({ name: maybe(fc.constantFrom('regcred')) }), 2),
  }),
);

const template: Arb<unknown> = maybe(
  record({ metadata: maybe(record({ labels, annotations })), spec: podSpec }),
);

const selector: Arb<unknown> = maybe(
  record({
    matchLabels: labels,
    matchExpressions: list(
      record({
        key: maybe(fc.constant('app')),
        operator: maybe(fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist', 'Nope')),
        values: maybe(fc.array(fc.constantFrom(...APPS), { maxLength: 2 })),
      }),
      2,
    ),
  }),
);

function object(
  apiVersion: string,
  kind: string,
  fields: Record<string, Arb<unknown>>,
  options: { namespaced?: boolean; owned?: boolean } = {},
): Arb<Obj> {
  return record({
    apiVersion: maybe(fc.constant(apiVersion)),
    kind: fc.oneof({ weight: 20, arbitrary: fc.constant(kind) }, { weight: 1, arbitrary: UNICODE }),
    metadata: metadata({ namespaced: options.namespaced ?? true, owned: options.owned ?? false }),
    ...fields,
  });
}

const workloadSpec = (extra: Record<string, Arb<unknown>> = {}): Arb<unknown> =>
  maybe(record({ replicas: count, selector, template, ...extra }));

const workloads: Arb<Obj>[] = [
  object('apps/v1', 'Deployment', { spec: workloadSpec() }),
  object('apps/v1', 'ReplicaSet', { spec: workloadSpec() }, { owned: true }),
  object('argoproj.io/v1alpha1', 'Rollout', { spec: workloadSpec() }),
  object('apps/v1', 'StatefulSet', {
    spec: workloadSpec({
      volumeClaimTemplates: list(record({ metadata: maybe(record({ name })) }), 2),
    }),
  }),
  object('apps/v1', 'DaemonSet', { spec: workloadSpec() }),
  object(
    'batch/v1',
    'Job',
    {
      spec: maybe(
        record({
          template,
          backoffLimit: count,
          parallelism: count,
          activeDeadlineSeconds: count,
        }),
      ),
    },
    { owned: true },
  ),
  object('batch/v1', 'CronJob', {
    spec: maybe(
      record({
        schedule: maybe(fc.constantFrom('*/5 * * * *', '0 3 * * *', 'nonsense')),
        jobTemplate: maybe(record({ spec: maybe(record({ template, backoffLimit: count })) })),
      }),
    ),
  }),
];

const pod = object(
  'v1',
  'Pod',
  {
    spec: podSpec.map((spec) =>
      spec !== null && typeof spec === 'object' && !Array.isArray(spec) ? spec : {},
    ),
    status: maybe(
      record({
        phase: maybe(fc.constantFrom('Running', 'Pending', 'Succeeded', 'Failed', 'Unknown')),
        conditions: list(
          record({
            type: maybe(fc.constantFrom('Ready', 'PodScheduled')),
            status: maybe(fc.constantFrom('True', 'False')),
          }),
          2,
        ),
      }),
    ),
  },
  { owned: true },
).chain((p) =>
  // Most pods are scheduled on one of the nodes.
  fc.option(fc.constantFrom(...NODES), { nil: undefined }).map((node) => {
    const spec = (p.spec ?? {}) as Obj;
    return node === undefined ? p : { ...p, spec: { ...spec, nodeName: node } };
  }),
);

const node = object(
  'v1',
  'Node',
  {
    status: maybe(
      record({
        capacity: maybe(record({ cpu: maybe(quantity), memory: maybe(quantity) })),
        allocatable: maybe(record({ cpu: maybe(quantity), memory: maybe(quantity) })),
        nodeInfo: maybe(
          record({ kubeletVersion: maybe(fc.constantFrom('v1.33.2', 'v1.35.0', 'v2', 'x')) }),
        ),
      }),
    ),
    spec: maybe(
      record({
        taints: list(
          record({
            key: maybe(fc.constantFrom('karpenter.sh/capacity-type', 'arch')),
            value: maybe(fc.constantFrom('spot', 'arm64')),
            effect: maybe(fc.constantFrom('NoSchedule', 'NoExecute')),
          }),
          2,
        ),
      }),
    ),
  },
  { namespaced: false },
).chain((n) =>
  fc
    .record({
      name: fc.constantFrom(...NODES),
      zone: fc.constantFrom(...ZONES),
      type: fc.oneof(fc.constantFrom(...TYPES), UNICODE),
      arch: fc.constantFrom('amd64', 'arm64', 's390x', ''),
      capacity: fc.constantFrom('spot', 'on-demand', 'SPOT', 'ON_DEMAND', 'weird'),
      region: fc.constantFrom('us-east-1', 'eu-west-1', 'mars-north-1', ''),
    })
    .map(({ name: nodeName, zone, type, arch, capacity, region }) => {
      const meta = (typeof n.metadata === 'object' && n.metadata !== null ? n.metadata : {}) as Obj;
      return {
        ...n,
        metadata: {
          ...meta,
          name: nodeName,
          labels: {
            ...((meta.labels ?? {}) as Obj),
            'topology.kubernetes.io/zone': zone,
            'topology.kubernetes.io/region': region,
            'node.kubernetes.io/instance-type': type,
            'kubernetes.io/arch': arch,
            'karpenter.sh/capacity-type': capacity,
          },
        },
      };
    }),
);

const service = object('v1', 'Service', {
  spec: maybe(
    record({
      selector: labels,
      clusterIP: maybe(fc.constantFrom('10.96.0.10', 'None')),
      trafficDistribution: maybe(fc.constantFrom('PreferClose', 'PreferSameZone', 'Bogus')),
      ports: list(record({ port: count }), 2),
    }),
  ),
});

const endpointSlice = object('discovery.k8s.io/v1', 'EndpointSlice', {
  endpoints: list(
    record({
      zone: maybe(fc.constantFrom(...ZONES)),
      nodeName: maybe(fc.constantFrom(...NODES)),
      conditions: maybe(record({ ready: maybe(fc.boolean()) })),
    }),
    6,
  ),
}).map((slice) => {
  // Slices name their Service in a label.
  const meta = (
    typeof slice.metadata === 'object' && slice.metadata !== null ? slice.metadata : {}
  ) as Obj;
  return {
    ...slice,
    metadata: {
      ...meta,
      labels: { ...((meta.labels ?? {}) as Obj), 'kubernetes.io/service-name': 'web' },
    },
  };
});

/**
 * A Service selecting one app and its EndpointSlice, in a List: the pairs cross-zone advice
 * needs, which independent objects rarely line up to form.
 */
const serviceWithSlice: Arb<Obj> = fc
  .record({
    app: fc.constantFrom(...APPS),
    namespace: fc.constantFrom('shop', 'payments'),
    headless: fc.boolean(),
    distribution: fc.option(fc.constantFrom('PreferClose', 'PreferSameZone', 'Bogus'), {
      nil: undefined,
    }),
    endpoints: fc.array(
      fc.record({
        zone: fc.constantFrom(...ZONES),
        ready: fc.oneof(fc.boolean(), fc.constant(undefined)),
      }),
      { maxLength: 9 },
    ),
  })
  .map(({ app, namespace: ns, headless, distribution, endpoints }) => ({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: app, namespace: ns },
        spec: {
          selector: { app },
          clusterIP: headless ? 'None' : '10.96.0.20',
          ...(distribution === undefined ? {} : { trafficDistribution: distribution }),
        },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${app}-abc`,
          namespace: ns,
          labels: { 'kubernetes.io/service-name': app },
        },
        endpoints: endpoints.map(({ zone, ready }) => ({
          zone,
          conditions: ready === undefined ? {} : { ready },
        })),
      },
    ],
  }));

const pdb = object('policy/v1', 'PodDisruptionBudget', {
  spec: maybe(record({ selector, minAvailable: maybe(count), maxUnavailable: maybe(count) })),
  status: maybe(record({ disruptionsAllowed: count, expectedPods: count })),
});

const hpa = object('autoscaling/v2', 'HorizontalPodAutoscaler', {
  spec: maybe(
    record({
      scaleTargetRef: maybe(
        record({
          kind: maybe(fc.constantFrom('Deployment', 'StatefulSet', 'Rollout', 'Pod')),
          name: maybe(fc.constantFrom(...NAMES)),
          apiVersion: maybe(fc.constantFrom('apps/v1', 'argoproj.io/v1alpha1')),
        }),
      ),
      minReplicas: count,
      maxReplicas: count,
    }),
  ),
});

const pvc = object('v1', 'PersistentVolumeClaim', {
  spec: maybe(
    record({
      volumeName: maybe(fc.constantFrom('pv-local', 'pv-ebs')),
      storageClassName: maybe(fc.constantFrom('local-storage', 'gp3')),
    }),
  ),
});

const pv = object(
  'v1',
  'PersistentVolume',
  {
    spec: maybe(
      record({
        local: maybe(record({ path: maybe(UNICODE) })),
        hostPath: maybe(record({ path: maybe(UNICODE) })),
        nodeAffinity: maybe(
          record({
            required: maybe(
              record({
                nodeSelectorTerms: list(record({ matchExpressions: list(matchExpression, 2) }), 2),
              }),
            ),
          }),
        ),
      }),
    ),
  },
  { namespaced: false },
);

const namespaceObject = object('v1', 'Namespace', {}, { namespaced: false });

const optimization = maybe(
  record({
    enabled: maybe(fc.boolean()),
    minReplicas: count,
    maxTerminationGracePeriodSeconds: count,
    placement: maybe(fc.constantFrom('Preferred', 'Required', 'Sometimes')),
  }),
);

const savingsPolicy = object(
  'kopek.dev/v1alpha1',
  'SavingsPolicy',
  {
    spec: maybe(
      record({
        mode: maybe(fc.constantFrom('Recommend', 'Apply', 'Maybe')),
        priority: count,
        namespaceSelector: selector,
        workloadSelector: selector,
        spot: optimization,
        arm64: optimization,
        crossZone: optimization,
      }),
    ),
  },
  { namespaced: false },
);

/** One object: mostly the kinds kopek reads, sometimes anything at all. */
const anyObject: Arb<unknown> = fc.oneof(
  ...workloads.map((arbitrary) => ({ weight: 4, arbitrary })),
  { weight: 12, arbitrary: pod },
  { weight: 6, arbitrary: node },
  { weight: 3, arbitrary: service },
  { weight: 3, arbitrary: endpointSlice },
  { weight: 6, arbitrary: serviceWithSlice },
  { weight: 2, arbitrary: pdb },
  { weight: 2, arbitrary: hpa },
  { weight: 1, arbitrary: pvc },
  { weight: 1, arbitrary: pv },
  { weight: 1, arbitrary: namespaceObject },
  { weight: 1, arbitrary: savingsPolicy },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** A dump: a few dozen objects, sometimes wrapped in a List. */
export const dumpArb: Arb<unknown[]> = fc
  .array(anyObject, { maxLength: 40 })
  .chain((objects) =>
    fc.constantFrom<unknown[]>(objects, [{ apiVersion: 'v1', kind: 'List', items: objects }]),
  );

const platforms: Arb<ImagePlatformsFact> = fc.oneof(
  fc.constantFrom<ImagePlatformsFact>(
    { platforms: ['linux/amd64', 'linux/arm64'] },
    { platforms: ['linux/amd64'] },
    { platforms: ['linux/arm64/v8', 'unknown/unknown'] },
    { platforms: [] },
    { error: 'registry unreachable' },
  ),
  fc.record({ platforms: fc.array(UNICODE, { maxLength: 70 }) }),
  fc.record({ error: fc.oneof(UNICODE, HUGE_STRING) }),
);

/** What kopek knows besides the objects: image platforms, the region, the server's version. */
export const optionsArb: Arb<BuildOptions> = fc
  .record({
    imagePlatforms: fc.option(
      fc.dictionary(fc.constantFrom(...IMAGES), platforms, { maxKeys: 6 }),
      {
        nil: undefined,
      },
    ),
    region: fc.option(fc.constantFrom('us-east-1', 'eu-west-1', 'ap-south-1', 'nowhere-1'), {
      nil: undefined,
    }),
    kubernetesMinor: fc.option(fc.oneof(fc.integer({ min: 20, max: 40 }), fc.integer()), {
      nil: undefined,
    }),
  })
  // The options are the operator's own typed values: only the objects are untrusted.
  .map((options) => {
    const clean: BuildOptions = {};
    if (options.imagePlatforms !== undefined) clean.imagePlatforms = options.imagePlatforms;
    if (options.region !== undefined) clean.region = options.region;
    if (options.kubernetesMinor !== undefined) clean.kubernetesMinor = options.kubernetesMinor;
    return clean;
  });
