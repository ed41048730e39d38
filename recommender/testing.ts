/**
 * Test vocabulary: a well-behaved workload's facts to start from, and small builders to bend
 * them. Used by the unit tests, the property tests and the benchmark; not by the recommender.
 */
import type {
  CrossZoneResult,
  OptimizationResult,
  WorkloadRecommendationStatus,
} from './api/v1alpha1.ts';
import type {
  ClusterFacts,
  ContainerFacts,
  NodeFacts,
  PodFacts,
  PodTemplateFacts,
  ServiceFacts,
  WorkloadFacts,
} from './facts.ts';
import { DEFAULT_POLICY } from './policy.ts';

export const GiB = 1024 ** 3;
export const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'] as const;

export function node(
  name: string,
  zone: string,
  instanceType = 'm6i.xlarge',
  extra: Partial<NodeFacts> = {},
): NodeFacts {
  return {
    name,
    zone,
    region: 'us-east-1',
    instanceType,
    arch: 'amd64',
    capacityType: 'on-demand',
    ...extra,
  };
}

/** A running, ready pod requesting `cpu` cores and `memGiB` GiB. */
export function pod(name: string, on: NodeFacts, cpu = 1, memGiB = 4): PodFacts {
  return { name, node: on, ready: true, cpuRequestCores: cpu, memoryRequestBytes: memGiB * GiB };
}

export function container(
  name: string,
  image: string,
  extra: Partial<ContainerFacts> = {},
): ContainerFacts {
  return {
    name,
    image,
    role: 'main',
    cpuRequestCores: 1,
    memoryRequestBytes: 4 * GiB,
    readinessProbe: true,
    ...extra,
  };
}

export const CLUSTER: ClusterFacts = {
  region: 'us-east-1',
  zones: [...ZONES],
  architectures: ['amd64', 'arm64'],
  capacityTypes: ['on-demand', 'spot'],
  capacityLabelSchemes: ['karpenter'],
  spotNodeTaints: [],
  arm64NodeTaints: [],
  kubernetesMinor: 34,
};

export function template(extra: Partial<PodTemplateFacts> = {}): PodTemplateFacts {
  return {
    labels: { app: 'checkout' },
    annotations: {},
    containers: [container('checkout', 'ghcr.io/acme/checkout:1.0')],
    volumes: [],
    volumeClaimTemplates: [],
    nodeSelector: {},
    tolerations: [],
    topologySpread: [
      {
        topologyKey: 'topology.kubernetes.io/zone',
        maxSkew: 1,
        whenUnsatisfiable: 'ScheduleAnyway',
      },
    ],
    ...extra,
  };
}

export function service(name: string, extra: Partial<ServiceFacts> = {}): ServiceFacts {
  return {
    name,
    headless: false,
    readyEndpointsPerZone: { 'us-east-1a': 1, 'us-east-1b': 1, 'us-east-1c': 1 },
    clientWeightsByZone: { 'us-east-1a': 10, 'us-east-1b': 10, 'us-east-1c': 10 },
    ...extra,
  };
}

/**
 * A stateless Deployment that suits everything: 3 replicas on on-demand m6i.xlarge in three
 * zones (1 vCPU, 4 GiB each), a PDB allowing 1, readiness probes, a zone spread, a multi-arch
 * image, and a Service with one ready endpoint per zone.
 */
export function goodFacts(overrides: Partial<WorkloadFacts> = {}): WorkloadFacts {
  const nodes = ZONES.map((z, i) => node(`node-${i}`, z));
  return {
    kind: 'Deployment',
    name: 'checkout',
    namespace: 'shop',
    uid: '11111111-2222-3333-4444-555555555555',
    labels: { app: 'checkout' },
    annotations: {},
    selector: { app: 'checkout' },
    replicas: 3,
    template: template(),
    pods: nodes.map((n, i) => pod(`checkout-${i}`, n)),
    pdb: { name: 'checkout', disruptionsAllowed: 1 },
    imagePlatforms: { 'ghcr.io/acme/checkout:1.0': { platforms: ['linux/amd64', 'linux/arm64'] } },
    services: [service('checkout')],
    cluster: CLUSTER,
    policy: DEFAULT_POLICY,
    ...overrides,
  };
}

/** Codes of a result's reasons. */
export function codes(result: { reasons?: { code: string }[] } | undefined): string[] {
  return (result?.reasons ?? []).map((r) => r.code);
}

const MONEY = /^[0-9]{1,12}(\.[0-9]{1,2})?$/;
const CODE = /^[A-Z][A-Za-z0-9]*$/;
const FRACTION = /^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$/;
const GB3 = /^[0-9]{1,12}(\.[0-9]{1,3})?$/;
const DIGEST = /^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const VERDICTS = [
  'Recommended',
  'Possible',
  'NotRecommended',
  'AlreadyOptimized',
  'NotApplicable',
  'Unknown',
];
const EFFECTS = ['Blocks', 'Requires', 'Lowers', 'Raises', 'Info'];

/**
 * What crds/kopek.dev_workloadrecommendations.yaml would reject in a status, as a list of
 * problems (empty when it is valid): patterns, lengths, item counts, the CEL rule that Unknown,
 * NotRecommended and Possible carry a reason.
 */
export function schemaProblems(status: WorkloadRecommendationStatus): string[] {
  const out: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) out.push(what);
  };
  for (const k of ['monthlyCostUSD', 'potentialMonthlySavingsUSD'] as const) {
    const v = status[k];
    if (v !== undefined) check(MONEY.test(v) && v.length <= 16, `${k} ${v}`);
  }
  const p = status.placement;
  check((p?.zones ?? []).length <= 16, 'placement.zones');
  check((p?.instanceTypes ?? []).length <= 64, 'placement.instanceTypes');
  check((p?.capacityTypes ?? []).length <= 4, 'placement.capacityTypes');
  check((p?.architectures ?? []).length <= 4, 'placement.architectures');
  for (const k of ['spot', 'arm64', 'crossZone'] as const) checkResult(k, status[k], check);
  for (const img of status.arm64?.images ?? []) {
    check(img.container.length <= 253 && img.image.length <= 1024, 'arm64.images lengths');
    if (img.digest !== undefined) check(DIGEST.test(img.digest), `digest ${img.digest}`);
    check((img.platforms ?? []).length <= 64, 'platforms count');
  }
  check((status.arm64?.images ?? []).length <= 64, 'arm64.images count');
  checkCrossZone(status.crossZone, check);
  check((status.suggestedPatch?.services ?? []).length <= 32, 'suggestedPatch.services');
  return out;
}

type Check = (ok: boolean, what: string) => void;

function checkResult(k: string, r: OptimizationResult | undefined, check: Check): void {
  if (r === undefined) return;
  check(VERDICTS.includes(r.verdict), `${k}.verdict`);
  check(Number.isInteger(r.score) && r.score >= 0 && r.score <= 100, `${k}.score ${r.score}`);
  check(MONEY.test(r.monthlySavingsUSD), `${k}.monthlySavingsUSD ${r.monthlySavingsUSD}`);
  const reasons = r.reasons ?? [];
  check(reasons.length <= 32, `${k}.reasons count`);
  check(
    !['Unknown', 'NotRecommended', 'Possible'].includes(r.verdict) || reasons.length > 0,
    `${k}: ${r.verdict} without a reason`,
  );
  for (const reason of reasons) {
    check(CODE.test(reason.code) && reason.code.length <= 64, `${k} code ${reason.code}`);
    check(reason.message.length <= 1024, `${k} message length`);
    check(EFFECTS.includes(reason.effect), `${k} effect ${reason.effect}`);
  }
}

function checkCrossZone(cz: CrossZoneResult | undefined, check: Check): void {
  if (cz?.monthlyCrossZoneGB !== undefined)
    check(GB3.test(cz.monthlyCrossZoneGB), `GB ${cz.monthlyCrossZoneGB}`);
  if (cz?.monthlyCostUSD !== undefined)
    check(MONEY.test(cz.monthlyCostUSD), `crossZone cost ${cz.monthlyCostUSD}`);
  check((cz?.services ?? []).length <= 32, 'crossZone.services count');
  for (const s of cz?.services ?? []) {
    check(s.name.length <= 63, 'service name');
    if (s.crossZoneFraction !== undefined)
      check(FRACTION.test(s.crossZoneFraction), `fraction ${s.crossZoneFraction}`);
    check(Object.keys(s.readyEndpointsPerZone ?? {}).length <= 16, 'readyEndpointsPerZone');
    if (s.fix !== undefined) check(s.fix.length <= 1024, 'fix length');
  }
  check((cz?.edges ?? []).length <= 10, 'crossZone.edges count');
  for (const e of cz?.edges ?? []) {
    check(e.peer.name.length >= 1 && e.peer.name.length <= 253, 'edge peer name');
    check((e.peer.namespace ?? '').length <= 63 && (e.peer.kind ?? '').length <= 63, 'edge peer');
    check(GB3.test(e.monthlyCrossZoneGB), `edge GB ${e.monthlyCrossZoneGB}`);
    check(MONEY.test(e.monthlyCostUSD), `edge cost ${e.monthlyCostUSD}`);
  }
}

/** A copy of `o` without `key` (for optional fields under exactOptionalPropertyTypes). */
export function omit<T extends object, K extends keyof T>(o: T, key: K): Omit<T, K> {
  const copy = { ...o };
  Reflect.deleteProperty(copy, key);
  return copy;
}
