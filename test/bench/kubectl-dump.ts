#!/usr/bin/env node
/**
 * A big cluster as `kubectl get nodes,ns,pods,deploy,rs,svc,endpointslices,pdb,hpa -A -o yaml`
 * (or `-o json`) prints it: Nodes with their image lists, Deployments with their ReplicaSets,
 * pods with env, probes and statuses (no managed fields: kubectl hides them by default), Services and EndpointSlices. For
 * measuring `kopek analyze` on real-sized input; 2,000 nodes, 5,000 workloads and 50,000 pods
 * give about 200 MB of YAML. Deterministic: the same sizes give the same bytes, written as a
 * stream so that the generator itself never holds the dump.
 *
 *   npm run bench:dump -- DIR [--workloads N]   writes DIR/dump.yaml and DIR/dump.json
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HELP_OPTION, scriptArgs, usageError } from '../support/script-args.ts';

type Obj = Record<string, unknown>;

export interface DumpSize {
  nodes: number;
  workloads: number;
  podsPerWorkload: number;
  namespaces: number;
}

export const BIG_DUMP: DumpSize = {
  nodes: 2000,
  workloads: 5000,
  podsPerWorkload: 10,
  namespaces: 100,
};

const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
const TYPES = ['m6i.2xlarge', 'm6i.4xlarge', 'c6i.4xlarge', 'r6i.2xlarge', 'm7g.2xlarge'];
const CREATED = '2026-11-01T10:00:00Z';

function uid(kind: string, i: number): string {
  const h = (Math.imul(i + 1, 2654435761) >>> 0).toString(16).padStart(8, '0');
  return `${h}-${kind.length.toString(16).padStart(4, '0')}-4${h.slice(0, 3)}-8${h.slice(3, 6)}-${i.toString(16).padStart(12, '0')}`;
}

function nodeName(n: number): string {
  return `ip-10-${n % 200}-${Math.floor(n / 200)}-${(n * 7) % 250}.ec2.internal`;
}

function node(n: number): Obj {
  const type = TYPES[n % TYPES.length] ?? 'm6i.2xlarge';
  const arm = type.includes('g.');
  const zone = ZONES[n % 3] ?? 'us-east-1a';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      annotations: {
        'alpha.kubernetes.io/provided-node-ip': `10.${n % 200}.${Math.floor(n / 200)}.${(n * 7) % 250}`,
        'karpenter.k8s.aws/ec2nodeclass-hash': '15949964056116015617',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
      creationTimestamp: CREATED,
      labels: {
        'beta.kubernetes.io/arch': arm ? 'arm64' : 'amd64',
        'beta.kubernetes.io/instance-type': type,
        'beta.kubernetes.io/os': 'linux',
        'karpenter.sh/capacity-type': n % 4 === 0 ? 'spot' : 'on-demand',
        'karpenter.sh/nodepool': 'general',
        'kubernetes.io/arch': arm ? 'arm64' : 'amd64',
        'kubernetes.io/hostname': nodeName(n),
        'kubernetes.io/os': 'linux',
        'node.kubernetes.io/instance-type': type,
        'topology.kubernetes.io/region': 'us-east-1',
        'topology.kubernetes.io/zone': zone,
      },
      name: nodeName(n),
      resourceVersion: String(5_000_000 + n),
      uid: uid('Node', n),
    },
    spec: { providerID: `aws:///${zone}/i-0${(n * 2654435761).toString(16).slice(-16)}` },
    status: {
      addresses: [
        { address: `10.${n % 200}.${Math.floor(n / 200)}.${(n * 7) % 250}`, type: 'InternalIP' },
        { address: nodeName(n), type: 'Hostname' },
      ],
      allocatable: {
        cpu: '7910m',
        'ephemeral-storage': '95551679124',
        memory: '31482392Ki',
        pods: '58',
      },
      capacity: { cpu: '8', 'ephemeral-storage': '104845292Ki', memory: '32408600Ki', pods: '58' },
      conditions: ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((type) => ({
        lastHeartbeatTime: '2026-11-20T09:58:00Z',
        lastTransitionTime: CREATED,
        message: type === 'Ready' ? 'kubelet is posting ready status' : `kubelet has no ${type}`,
        reason: type === 'Ready' ? 'KubeletReady' : `KubeletHasNo${type}`,
        status: type === 'Ready' ? 'True' : 'False',
        type,
      })),
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      images: Array.from({ length: 12 }, (_, k) => ({
        names: [
          `123456789012.dkr.ecr.us-east-1.amazonaws.com/team-${(n + k) % 100}/app@sha256:${((n + k) * 2654435761).toString(16).padStart(8, '0').repeat(8)}`,
          `123456789012.dkr.ecr.us-east-1.amazonaws.com/team-${(n + k) % 100}/app:1.${k}.0`,
        ],
        sizeBytes: 50_000_000 + k * 1_000_000,
      })),
      nodeInfo: {
        architecture: arm ? 'arm64' : 'amd64',
        bootID: uid('boot', n),
        containerRuntimeVersion: 'containerd://1.7.27',
        kernelVersion: '6.1.141',
        kubeProxyVersion: 'v1.34.2-eks-0e6a7b1',
        kubeletVersion: 'v1.34.2-eks-0e6a7b1',
        machineID: uid('machine', n).replaceAll('-', ''),
        operatingSystem: 'linux',
        osImage: 'Bottlerocket OS 1.44.0 (aws-k8s-1.34)',
        systemUUID: uid('system', n),
      },
    },
  };
}

function container(name: string, ns: string, w: number, port: number): Obj {
  return {
    env: Array.from({ length: 3 }, (_, k) => ({
      name: `SETTING_${k}`,
      value: `value-${k}-${w % 7}`,
    })),
    image: `123456789012.dkr.ecr.us-east-1.amazonaws.com/${ns}/${name}:1.${w % 13}.0`,
    imagePullPolicy: 'IfNotPresent',
    name,
    ports: [{ containerPort: port, name: 'http', protocol: 'TCP' }],
    readinessProbe: {
      failureThreshold: 3,
      httpGet: { path: '/ready', port, scheme: 'HTTP' },
      periodSeconds: 10,
      successThreshold: 1,
      timeoutSeconds: 1,
    },
    resources: { limits: { memory: '1Gi' }, requests: { cpu: '250m', memory: '512Mi' } },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  };
}

function podTemplate(app: string, ns: string, w: number): Obj {
  return {
    metadata: { labels: { 'app.kubernetes.io/name': app, team: ns } },
    spec: {
      containers: [container(app, ns, w, 8080)],
      dnsPolicy: 'ClusterFirst',
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      securityContext: {},
      serviceAccountName: app,
      terminationGracePeriodSeconds: 30,
      topologySpreadConstraints: [
        {
          labelSelector: { matchLabels: { 'app.kubernetes.io/name': app } },
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'ScheduleAnyway',
        },
      ],
    },
  };
}

/** The names of one workload's objects. */
interface WorkloadNames {
  app: string;
  ns: string;
  w: number;
  rs: string;
  hash: string;
}

function pod({ app, ns, w, rs, hash }: WorkloadNames, p: number, nodeIndex: number): Obj {
  const template = podTemplate(app, ns, w);
  const name = `${rs}-${(w * 31 + p).toString(36).padStart(5, 'x')}`;
  const ip = `10.${nodeIndex % 200}.${(p * 17 + w) % 250}.${(w + p) % 250}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      creationTimestamp: CREATED,
      generateName: `${rs}-`,
      labels: { 'app.kubernetes.io/name': app, 'pod-template-hash': hash, team: ns },
      name,
      namespace: ns,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          blockOwnerDeletion: true,
          controller: true,
          kind: 'ReplicaSet',
          name: rs,
          uid: uid('ReplicaSet', w),
        },
      ],
      resourceVersion: String(9_000_000 + w * 10 + p),
      uid: uid('Pod', w * 100 + p),
    },
    spec: {
      ...(template.spec as Obj),
      enableServiceLinks: true,
      nodeName: nodeName(nodeIndex),
      preemptionPolicy: 'PreemptLowerPriority',
      priority: 0,
      tolerations: [
        {
          effect: 'NoExecute',
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          tolerationSeconds: 300,
        },
        {
          effect: 'NoExecute',
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          tolerationSeconds: 300,
        },
      ],
    },
    status: {
      conditions: [
        'PodReadyToStartContainers',
        'Initialized',
        'Ready',
        'ContainersReady',
        'PodScheduled',
      ].map((type) => ({
        lastProbeTime: null,
        lastTransitionTime: '2026-11-01T10:00:05Z',
        status: 'True',
        type,
      })),
      containerStatuses: [
        {
          containerID: `containerd://${(w * 2654435761 + p).toString(16).padStart(16, '0').repeat(4)}`,
          image: (template.spec as { containers: Obj[] }).containers[0]?.image,
          imageID: `123456789012.dkr.ecr.us-east-1.amazonaws.com/${ns}/${app}@sha256:${(w * 40503).toString(16).padStart(8, '0').repeat(8)}`,
          lastState: {},
          name: app,
          ready: true,
          restartCount: 0,
          started: true,
          state: { running: { startedAt: '2026-11-01T10:00:04Z' } },
        },
      ],
      hostIP: ip.replace(/\.\d+$/, '.1'),
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      qosClass: 'Burstable',
      startTime: '2026-11-01T10:00:01Z',
    },
  };
}

/** The objects of one workload: Deployment, ReplicaSet, pods, Service, EndpointSlice, and a PDB or HPA on some. */
function* workloadObjects(w: number, size: DumpSize, nextNode: () => number): Generator<Obj> {
  const app = `app-${w}`;
  const ns = `team-${w % size.namespaces}`;
  const hash = (Math.imul(w + 7, 2654435761) >>> 0).toString(36).slice(0, 9).padEnd(9, 'b');
  const rs = `${app}-${hash}`;
  const template = podTemplate(app, ns, w);
  const selector = { matchLabels: { 'app.kubernetes.io/name': app } };
  yield {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      annotations: { 'deployment.kubernetes.io/revision': '3' },
      creationTimestamp: CREATED,
      generation: 3,
      labels: { 'app.kubernetes.io/name': app, team: ns },
      name: app,
      namespace: ns,
      resourceVersion: String(8_000_000 + w),
      uid: uid('Deployment', w),
    },
    spec: {
      progressDeadlineSeconds: 600,
      replicas: size.podsPerWorkload,
      revisionHistoryLimit: 10,
      selector,
      strategy: {
        rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
        type: 'RollingUpdate',
      },
      template,
    },
    status: {
      availableReplicas: size.podsPerWorkload,
      observedGeneration: 3,
      readyReplicas: size.podsPerWorkload,
      replicas: size.podsPerWorkload,
      updatedReplicas: size.podsPerWorkload,
    },
  };
  yield {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      annotations: {
        'deployment.kubernetes.io/desired-replicas': String(size.podsPerWorkload),
        'deployment.kubernetes.io/revision': '3',
      },
      creationTimestamp: CREATED,
      generation: 1,
      labels: { 'app.kubernetes.io/name': app, 'pod-template-hash': hash, team: ns },
      name: rs,
      namespace: ns,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          blockOwnerDeletion: true,
          controller: true,
          kind: 'Deployment',
          name: app,
          uid: uid('Deployment', w),
        },
      ],
      uid: uid('ReplicaSet', w),
    },
    spec: { replicas: size.podsPerWorkload, selector, template },
    status: {
      availableReplicas: size.podsPerWorkload,
      readyReplicas: size.podsPerWorkload,
      replicas: size.podsPerWorkload,
    },
  };
  const endpoints: Obj[] = [];
  for (let p = 0; p < size.podsPerWorkload; p++) {
    const n = nextNode();
    const o = pod({ app, ns, w, rs, hash }, p, n);
    endpoints.push({
      addresses: [(o.status as Obj).podIP],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: nodeName(n),
      targetRef: {
        kind: 'Pod',
        name: (o.metadata as Obj).name,
        namespace: ns,
        uid: (o.metadata as Obj).uid,
      },
      zone: ZONES[n % 3],
    });
    yield o;
  }
  yield {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      creationTimestamp: CREATED,
      labels: { 'app.kubernetes.io/name': app },
      name: app,
      namespace: ns,
      uid: uid('Service', w),
    },
    spec: {
      clusterIP: `172.20.${w % 250}.${Math.floor(w / 250) % 250}`,
      clusterIPs: [`172.20.${w % 250}.${Math.floor(w / 250) % 250}`],
      internalTrafficPolicy: 'Cluster',
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
      selector: { 'app.kubernetes.io/name': app },
      sessionAffinity: 'None',
      type: 'ClusterIP',
    },
    status: { loadBalancer: {} },
  };
  yield {
    addressType: 'IPv4',
    apiVersion: 'discovery.k8s.io/v1',
    endpoints,
    kind: 'EndpointSlice',
    metadata: {
      creationTimestamp: CREATED,
      generateName: `${app}-`,
      labels: {
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        'kubernetes.io/service-name': app,
      },
      name: `${app}-${hash.slice(0, 5)}`,
      namespace: ns,
      ownerReferences: [
        {
          apiVersion: 'v1',
          blockOwnerDeletion: true,
          controller: true,
          kind: 'Service',
          name: app,
          uid: uid('Service', w),
        },
      ],
      uid: uid('EndpointSlice', w),
    },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
  if (w % 2 === 0)
    yield {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: app, namespace: ns, uid: uid('PodDisruptionBudget', w) },
      spec: { maxUnavailable: 1, selector },
      status: {
        currentHealthy: size.podsPerWorkload,
        desiredHealthy: size.podsPerWorkload - 1,
        disruptionsAllowed: 1,
        expectedPods: size.podsPerWorkload,
      },
    };
  if (w % 3 === 0)
    yield {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: app, namespace: ns, uid: uid('HorizontalPodAutoscaler', w) },
      spec: {
        maxReplicas: 30,
        metrics: [
          {
            resource: { name: 'cpu', target: { averageUtilization: 70, type: 'Utilization' } },
            type: 'Resource',
          },
        ],
        minReplicas: 3,
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: app },
      },
    };
}

/** Every object of the dump, in the order kubectl prints the kinds asked for. */
export function* dumpObjects(size: DumpSize): Generator<Obj> {
  for (let n = 0; n < size.nodes; n++) yield node(n);
  for (let i = 0; i < size.namespaces; i++)
    yield {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        labels: { 'kubernetes.io/metadata.name': `team-${i}` },
        name: `team-${i}`,
        uid: uid('Namespace', i),
      },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    };
  let next = 0;
  const nextNode = () => next++ % size.nodes;
  for (let w = 0; w < size.workloads; w++) yield* workloadObjects(w, size, nextNode);
}

// ---- kubectl's output formats ----------------------------------------------------------------

/** Strings a YAML 1.1 or 1.2 reader would take for something else, as go-yaml quotes them. */
const NEEDS_QUOTES =
  /^$|^[-?:,[\]{}#&*!|>'"%@`~]|^\s|\s$|: |\s#|^(true|false|yes|no|on|off|null|y|n|~)$|^[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^0[xo]|^\d+(:\d+)+$|^\d{4}-\d\d-\d\d|^[-+]?\.(inf|nan)$/i;

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return NEEDS_QUOTES.test(s) || s.includes('\n') ? JSON.stringify(s) : s;
}

/** One object as `kubectl -o yaml` lays it out: sorted keys, sequences not indented under their key. */
function yamlLines(v: unknown, indent: string, out: string[]): void {
  if (Array.isArray(v)) {
    for (const item of v) {
      if (item !== null && typeof item === 'object' && Object.keys(item as object).length > 0) {
        const inner: string[] = [];
        yamlLines(item, `${indent}  `, inner);
        out.push(`${indent}- ${(inner[0] ?? '').trimStart()}`, ...inner.slice(1));
      } else {
        out.push(`${indent}- ${inline(item)}`);
      }
    }
    return;
  }
  for (const key of Object.keys(v as Obj).sort()) {
    const value = (v as Obj)[key];
    const k = scalar(key);
    if (value !== null && typeof value === 'object' && Object.keys(value).length > 0) {
      out.push(`${indent}${k}:`);
      yamlLines(value, Array.isArray(value) ? indent : `${indent}  `, out);
    } else {
      out.push(`${indent}${k}: ${inline(value)}`);
    }
  }
}

function inline(v: unknown): string {
  if (Array.isArray(v)) return '[]';
  if (v !== null && typeof v === 'object') return '{}';
  return scalar(v);
}

/** JSON with sorted keys and 4-space indentation, as kubectl prints it. */
function sortedJson(v: unknown, indent: string): string {
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    const inner = `${indent}    `;
    return `[\n${v.map((x) => inner + sortedJson(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    if (keys.length === 0) return '{}';
    const inner = `${indent}    `;
    return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${sortedJson((v as Obj)[k], inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(v);
}

/** Writes the dump as a v1 List, in kubectl's YAML or JSON layout; returns the bytes written. */
export function writeDump(path: string, size: DumpSize, format: 'yaml' | 'json'): number {
  const fd = openSync(path, 'w');
  let bytes = 0;
  let pending: string[] = [];
  let pendingLength = 0;
  const write = (text: string) => {
    pending.push(text);
    pendingLength += text.length;
    if (pendingLength > 1 << 22) flush();
  };
  const flush = () => {
    bytes += writeSync(fd, pending.join(''));
    pending = [];
    pendingLength = 0;
  };
  try {
    if (format === 'yaml') {
      write('apiVersion: v1\nitems:\n');
      for (const o of dumpObjects(size)) {
        const lines: string[] = [];
        yamlLines([o], '', lines);
        write(`${lines.join('\n')}\n`);
      }
      write('kind: List\nmetadata:\n  resourceVersion: ""\n');
    } else {
      write('{\n    "apiVersion": "v1",\n    "items": [\n');
      let first = true;
      for (const o of dumpObjects(size)) {
        write(`${first ? '' : ',\n'}        ${sortedJson(o, '        ')}`);
        first = false;
      }
      write(
        '\n    ],\n    "kind": "List",\n    "metadata": {\n        "resourceVersion": ""\n    }\n}\n',
      );
    }
    flush();
  } finally {
    closeSync(fd);
  }
  return bytes;
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const usage = 'usage: npm run bench:dump -- DIR [--workloads N]\n';
  const parsed = scriptArgs(usage, () =>
    parseArgs({
      allowPositionals: true,
      options: { workloads: { type: 'string' }, help: HELP_OPTION },
    }),
  );
  const [dir] = parsed.positionals;
  const workloads =
    parsed.values.workloads === undefined ? BIG_DUMP.workloads : Number(parsed.values.workloads);
  if (
    dir === undefined ||
    parsed.positionals.length > 1 ||
    !(Number.isInteger(workloads) && workloads > 0)
  ) {
    usageError('give one output folder, and --workloads as a positive integer', usage);
  }
  // Nodes scale with the workloads: 10 pods per workload, 25 pods per node.
  const size: DumpSize = {
    ...BIG_DUMP,
    workloads,
    nodes: Math.max(3, Math.round((workloads * 2) / 5)),
  };
  mkdirSync(dir, { recursive: true });
  for (const format of ['yaml', 'json'] as const) {
    const path = join(dir, `dump.${format}`);
    const bytes = writeDump(path, size, format);
    process.stdout.write(
      `${path}: ${(bytes / 1e6).toFixed(1)} MB, ${size.nodes} nodes, ${workloads} workloads, ${workloads * size.podsPerWorkload} pods\n`,
    );
  }
}
