/**
 * Spot suitability: can this workload's pods take a two-minute interruption notice? Every
 * signal of DESIGN.md ("Decisions", Spot) becomes a finding with a stable code; the verdict and
 * score follow from reasons.ts, the money from savings.ts.
 */
import type { SpotResult } from './api/v1alpha1.ts';
import {
  ANNOTATION_DO_NOT_DISRUPT,
  ANNOTATION_SAFE_TO_EVICT,
  ANNOTATION_SPOT,
  effectiveReplicas,
  type ContainerFacts,
  type WorkloadFacts,
} from './facts.ts';
import {
  FALLBACK_REGION,
  formatUSD,
  isGravitonType,
  spotFigures,
  type PriceBook,
  type SpotFigures,
} from './pricing.ts';
import { ownerFindings } from './owner.ts';
import { finding, listOf, notePatch, plural, result, verdictOf, type Finding } from './reasons.ts';
import { estimateCost, onArm64, pricingFindings, pricingRegion } from './savings.ts';
import {
  CAPACITY_KEYS,
  allows,
  hardConstraint,
  needsNodeSpread,
  normalizeCapacity,
  onlyNode,
  preferredValues,
  spreadKeys,
} from './scheduling.ts';

/** The notice AWS gives before reclaiming a Spot instance. */
export const SPOT_NOTICE_SECONDS = 120;
/** Kubernetes' default terminationGracePeriodSeconds. */
export const DEFAULT_GRACE_SECONDS = 30;
/** A Job run longer than this loses a lot of work to an interruption. */
export const LONG_JOB_SECONDS = 3600;
/** Spot Advisor bands: 0 "<5%", 1 "5-10%" are low; 2 "10-15%" moderate; 3+ high. */
export const LOW_BAND_MAX = 1;
export const HIGH_BAND_MIN = 3;
/** Diversity: how many low-interruption instance types must fit a pod. */
export const MANY_TYPES = 20;
export const FEW_TYPES = 5;

/** Requires that the suggested patch itself fixes (so the change stays actionable). */
export const SPOT_FIXED_BY_PATCH: ReadonlySet<string> = new Set([
  'OnDemandPinned',
  'ReplicasOnOneNode',
]);

/** A Spot evaluation: the API result, and whether the suggested patch should make the move. */
export interface SpotEvaluation {
  result: SpotResult;
  /** Recommended, or Possible only for reasons the suggested patch fixes. */
  actionable: boolean;
  /** It runs on Spot although something blocks Spot: the suggested patch moves it off. */
  atRisk: boolean;
}

const STATELESS_KINDS = new Set(['Deployment', 'ReplicaSet', 'Rollout']);
const BATCH_KINDS = new Set(['Job', 'CronJob']);

function notApplicable(code: string, message: string): SpotEvaluation {
  return {
    result: result('NotApplicable', [finding(code, 'Info', message)], '0.00'),
    actionable: false,
    atRisk: false,
  };
}

function controllerFindings(facts: WorkloadFacts): Finding[] {
  const { kind, name, template } = facts;
  const out: Finding[] = [];
  if (STATELESS_KINDS.has(kind) && datastoreFindings(facts).length === 0) {
    out.push(
      finding('StatelessController', 'Raises', `A ${kind}'s pods can be replaced anywhere.`, 10),
    );
  }
  if (kind === 'StatefulSet') {
    out.push(
      finding(
        'StatefulSetIdentity',
        'Lowers',
        `StatefulSet ${name} replaces pods one by one under stable identities, so an interruption takes longer to heal.`,
        10,
      ),
    );
    const claims = [
      ...template.volumeClaimTemplates,
      ...template.volumes
        .filter((v) => v.kind === 'persistentVolumeClaim')
        .map((v) => v.claimName ?? v.name),
    ];
    if (claims.length > 0) {
      out.push(
        finding(
          'StatefulWithVolumeClaims',
          'Blocks',
          `StatefulSet ${name} keeps data on PersistentVolumeClaims (${listOf(claims)}) bound to one zone.`,
        ),
      );
    }
  } else {
    // A claim one node mounts on a volume in one zone pins the pod, whatever its kind: the same
    // block as a StatefulSet's claims.
    const zonal = template.volumes.filter((v) => v.zonalVolume !== undefined);
    if (zonal.length > 0) {
      out.push(
        finding(
          'ZonalVolumeClaim',
          'Blocks',
          `Its pods mount ReadWriteOnce claim ${listOf(zonal.map((v) => `${v.claimName ?? v.name} (${v.zonalVolume ?? ''})`))}: a replacement can only start in that zone, after the volume detaches from the interrupted node.`,
        ),
      );
    }
    const pvcs = template.volumes.filter(
      (v) => v.kind === 'persistentVolumeClaim' && v.zonalVolume === undefined,
    );
    if (pvcs.length > 0) {
      out.push(
        finding(
          'UsesPersistentVolumeClaim',
          'Lowers',
          `Its pods mount PersistentVolumeClaim ${listOf(pvcs.map((v) => v.claimName ?? v.name))}; a replacement waits for the volume to detach and re-attach.`,
          15,
        ),
      );
    }
  }
  return out;
}

/** Datastores by image name (the last path segment, without tag or digest). */
const DATASTORE_IMAGE: readonly [RegExp, string][] = [
  [/^(mysql|mariadb|percona(-server)?)$/, 'MySQL'],
  [/^(postgres(ql)?|postgis)$/, 'PostgreSQL'],
  [/^mongo(db)?(-community-server)?$/, 'MongoDB'],
  [/^(redis(-stack(-server)?)?|valkey|keydb)$/, 'Redis'],
  [/^(cp-)?kafka$/, 'Kafka'],
  [/^(cp-)?zookeeper$/, 'ZooKeeper'],
  [/^(elasticsearch|opensearch)$/, 'Elasticsearch'],
  [/^(cassandra|scylla)$/, 'Cassandra'],
  [/^rabbitmq$/, 'RabbitMQ'],
  [/^etcd$/, 'etcd'],
  [/^clickhouse(-server)?$/, 'ClickHouse'],
];
/** Their well-known ports, for images named otherwise. */
const DATASTORE_PORT: ReadonlyMap<number, string> = new Map([
  [3306, 'MySQL'],
  [5432, 'PostgreSQL'],
  [27017, 'MongoDB'],
  [6379, 'Redis'],
  [9092, 'Kafka'],
  [2181, 'ZooKeeper'],
  [9200, 'Elasticsearch'],
  [9042, 'Cassandra'],
  [5672, 'RabbitMQ'],
  [2379, 'etcd'],
]);
/** Images that speak a datastore's protocol without holding its data (poolers, proxies, exporters). */
const NOT_A_DATASTORE = /proxy|bouncer|pool|exporter|operator|sentinel/;

/** The datastore a container runs, by its image or a well-known port, and what gave it away. */
function datastoreOf(c: ContainerFacts): string | undefined {
  const repo = (c.image.split('@')[0] ?? '').split('/').pop()?.split(':')[0] ?? '';
  if (NOT_A_DATASTORE.test(repo)) return undefined;
  const byImage = DATASTORE_IMAGE.find(([re]) => re.test(repo))?.[1];
  if (byImage !== undefined) return `${byImage} (image ${repo})`;
  const port = (c.ports ?? []).find((p) => DATASTORE_PORT.has(p));
  return port === undefined ? undefined : `${DATASTORE_PORT.get(port) ?? ''} (port ${port})`;
}

/**
 * A datastore run by a Deployment (or any kind but a StatefulSet) is not stateless because of
 * its kind: each interruption drops what it holds and fails its clients over.
 */
function datastoreFindings(facts: WorkloadFacts): Finding[] {
  if (facts.kind === 'StatefulSet' || BATCH_KINDS.has(facts.kind)) return [];
  const found = mainContainers(facts).flatMap((c) => {
    const store = datastoreOf(c);
    return store === undefined ? [] : [`${c.name} runs ${store}`];
  });
  if (found.length === 0) return [];
  return [
    finding(
      'LooksLikeDatastore',
      'Lowers',
      `Container ${listOf(found)}: a datastore loses what it holds in memory or on local disk and fails its clients over at each interruption, whatever its controller's kind.`,
      20,
    ),
  ];
}

function storageFindings(facts: WorkloadFacts): Finding[] {
  const out: Finding[] = [];
  const hostPaths = facts.template.volumes.filter((v) => v.kind === 'hostPath').map((v) => v.name);
  if (hostPaths.length > 0) {
    out.push(
      finding(
        'HostPathVolume',
        'Blocks',
        `Volume ${listOf(hostPaths)} is a hostPath: data on the node is lost when a Spot node is reclaimed.`,
      ),
    );
  }
  const locals = facts.template.volumes
    .filter((v) => v.kind === 'local')
    .map((v) => v.claimName ?? v.name);
  if (locals.length > 0) {
    out.push(
      finding(
        'LocalPersistentVolume',
        'Blocks',
        `Claim ${listOf(locals)} is bound to a local PersistentVolume on one node; it goes with the node.`,
      ),
    );
  }
  return out;
}

function replicaFindings(facts: WorkloadFacts): Finding[] {
  if (BATCH_KINDS.has(facts.kind)) return [];
  const replicas = effectiveReplicas(facts);
  const min = facts.policy.spot.minReplicas;
  const via = facts.hpa ? ` (HorizontalPodAutoscaler ${facts.hpa.name} minReplicas)` : '';
  if (replicas === 1 && min <= 1) {
    return [
      finding(
        'SingleReplicaAllowed',
        'Lowers',
        `It runs a single replica${via}, which the policy allows (minReplicas ${min}): an interruption means downtime until a replacement starts.`,
        20,
      ),
    ];
  }
  if (replicas >= min) {
    return [
      finding(
        'EnoughReplicas',
        'Raises',
        `${plural(replicas, 'replica')}${via} (at least ${min} needed) keep serving while one is interrupted.`,
        10,
      ),
    ];
  }
  if (replicas <= 1) {
    return [
      finding(
        'SingleReplica',
        'Blocks',
        `It runs a single replica${via}: an interruption takes it down. Run at least ${min} first.`,
      ),
    ];
  }
  return [
    finding(
      'TooFewReplicas',
      'Requires',
      `${plural(replicas, 'replica')}${via}; the policy wants at least ${min} before moving to Spot.`,
      15,
    ),
  ];
}

function pdbFindings(facts: WorkloadFacts): Finding[] {
  if (BATCH_KINDS.has(facts.kind)) return [];
  const pdb = facts.pdb;
  if (pdb === undefined) {
    return [
      finding(
        'NoPodDisruptionBudget',
        'Lowers',
        'No PodDisruptionBudget covers its pods: a drain may evict several replicas at once.',
        10,
      ),
    ];
  }
  if (pdb.disruptionsAllowed >= 1) {
    return [
      finding(
        'PodDisruptionBudgetAllows',
        'Raises',
        `PodDisruptionBudget ${pdb.name} allows ${plural(pdb.disruptionsAllowed, 'disruption')}.`,
        10,
      ),
    ];
  }
  return [
    finding(
      'PodDisruptionBudgetBlocksEviction',
      'Requires',
      `PodDisruptionBudget ${pdb.name} allows no disruption, so Spot nodes cannot be drained in time; allow at least 1.`,
      15,
    ),
  ];
}

function shutdownFindings(facts: WorkloadFacts): Finding[] {
  const grace = facts.template.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
  const preStop = Math.max(0, ...facts.template.containers.map((c) => c.preStopSleepSeconds ?? 0));
  // A preStop hook runs inside the grace period, so a pod stops within max(grace, preStop).
  const stop = Math.max(grace, preStop);
  const limit = facts.policy.spot.maxTerminationGracePeriodSeconds;
  const detail =
    preStop > 0 ? ` (terminationGracePeriodSeconds ${grace}, preStop sleep ${preStop} s)` : '';
  if (stop <= limit) {
    return [
      finding(
        'FastShutdown',
        'Raises',
        `Pods stop within ${stop} s${detail}, inside the ${limit} s limit and the ${SPOT_NOTICE_SECONDS} s Spot notice.`,
        5,
      ),
    ];
  }
  const beyondNotice =
    stop > SPOT_NOTICE_SECONDS ? `, longer than the ${SPOT_NOTICE_SECONDS} s Spot notice` : '';
  return [
    finding(
      'GracePeriodTooLong',
      'Requires',
      `Pods take up to ${stop} s to stop${detail}${beyondNotice}; the policy allows ${limit} s.`,
      15,
    ),
  ];
}

/**
 * Helpers injected beside the application (service-mesh proxies, log shippers, secret agents,
 * config reloaders), by container name or image: readiness is the application's to tell.
 */
const HELPER_CONTAINER =
  /(^|[-/_])(istio-proxy|linkerd-proxy|envoy|cloud-sql-proxy|vault-agent|fluent-bit|fluentd|config-reloader|oauth2-proxy|datadog-agent|otel-collector|kube-rbac-proxy)([-:_]|$)/;

/**
 * The containers whose readiness says the pod can serve: the regular containers that are not
 * known helpers (all of them when every one is). Native sidecars (restartable init containers)
 * and helpers without a probe count as ready once started.
 */
function mainContainers(facts: WorkloadFacts): ContainerFacts[] {
  const regular = facts.template.containers.filter((c) => c.role === 'main');
  const apps = regular.filter(
    (c) => !HELPER_CONTAINER.test(c.name) && !HELPER_CONTAINER.test(c.image),
  );
  return apps.length > 0 ? apps : regular;
}

function readinessFindings(facts: WorkloadFacts): Finding[] {
  if (BATCH_KINDS.has(facts.kind)) return [];
  const main = mainContainers(facts);
  if (main.length === 0) return [];
  const without = main.filter((c) => !c.readinessProbe).map((c) => c.name);
  const names = listOf(main.map((c) => c.name));
  if (without.length === 0) {
    return [
      finding(
        'ReadinessProbe',
        'Raises',
        `Main container ${names} has a readiness probe, so replacements get traffic only when ready.`,
        5,
      ),
    ];
  }
  return [
    finding(
      'NoReadinessProbe',
      'Lowers',
      `Main container ${listOf(without)} has no readiness probe: a replacement pod gets traffic before it is ready.`,
      10,
    ),
  ];
}

function spreadFindings(facts: WorkloadFacts): Finding[] {
  if (BATCH_KINDS.has(facts.kind) || effectiveReplicas(facts) < 2) return [];
  const out: Finding[] = [];
  const keys = spreadKeys(facts.template);
  if (keys.length > 0) {
    out.push(finding('SpreadConfigured', 'Raises', `Replicas are spread over ${listOf(keys)}.`, 5));
  } else {
    out.push(
      finding(
        'NoSpreadConstraint',
        'Lowers',
        'No topology spread or pod anti-affinity keeps replicas on different nodes.',
        5,
      ),
    );
  }
  const only = onlyNode(facts);
  const zones = new Set(facts.pods.map((p) => p.node?.zone).filter((z) => z !== undefined));
  if (only !== undefined) {
    // Without a spread over nodes, the patch must add one before Spot: one interruption would
    // take every replica. With one, the cluster had no other node: that only lowers the score.
    const onOne = `All ${facts.pods.length} running pods are on node ${only}: one interruption takes them all.`;
    out.push(
      needsNodeSpread(facts)
        ? finding('ReplicasOnOneNode', 'Requires', `${onOne} Spread them over nodes first.`, 10)
        : finding(
            'ReplicasOnOneNode',
            'Lowers',
            `${onOne} Their spread over nodes found no other node.`,
            10,
          ),
    );
  } else if (zones.size >= 2) {
    out.push(
      finding('RunsInSeveralZones', 'Raises', `Pods run in ${plural(zones.size, 'zone')}.`, 5),
    );
  }
  return out;
}

function disruptionFindings(facts: WorkloadFacts): Finding[] {
  const out: Finding[] = [];
  const all = { ...facts.annotations, ...facts.template.annotations };
  if (all[ANNOTATION_DO_NOT_DISRUPT] === 'true') {
    out.push(
      finding(
        'DoNotDisrupt',
        'Blocks',
        `${ANNOTATION_DO_NOT_DISRUPT}: "true" asks that its pods never be disrupted.`,
      ),
    );
  }
  if (all[ANNOTATION_SAFE_TO_EVICT] === 'false') {
    out.push(
      finding(
        'NotSafeToEvict',
        'Blocks',
        `${ANNOTATION_SAFE_TO_EVICT}: "false" marks its pods as not evictable.`,
      ),
    );
  }
  const pc = facts.template.priorityClassName;
  if (pc !== undefined && /^system-.*-critical$/.test(pc)) {
    out.push(
      finding(
        'SystemCriticalPriority',
        'Blocks',
        `Priority class ${pc} marks it as critical to the cluster; keep it on on-demand nodes.`,
      ),
    );
  }
  return out;
}

function jobFindings(facts: WorkloadFacts): Finding[] {
  if (!BATCH_KINDS.has(facts.kind)) return [];
  const job = facts.job ?? {};
  const out: Finding[] = [];
  const backoff = job.backoffLimit ?? 6;
  if (backoff > 0) {
    out.push(
      finding(
        'JobRetries',
        'Raises',
        `A failed run is retried (backoffLimit ${backoff}), so an interrupted pod is replaced.`,
        10,
      ),
    );
  } else {
    out.push(
      finding(
        'JobNotRetried',
        'Requires',
        'backoffLimit is 0: an interrupted run fails for good. Allow retries first.',
        15,
      ),
    );
  }
  if (job.ignoresDisruptions === true) {
    out.push(
      finding(
        'RetriesIgnoreDisruptions',
        'Raises',
        'Its podFailurePolicy ignores DisruptionTarget, so interruptions do not use up retries.',
        5,
      ),
    );
  }
  const run = job.observedRunSeconds ?? job.activeDeadlineSeconds;
  const how = job.observedRunSeconds !== undefined ? 'took' : 'may take (activeDeadlineSeconds)';
  if (run === undefined) {
    out.push(
      finding(
        'JobRunTimeUnknown',
        'Info',
        'No finished run and no activeDeadlineSeconds say how long a run takes.',
      ),
    );
  } else if (run <= LONG_JOB_SECONDS) {
    out.push(
      finding(
        'ShortRuns',
        'Raises',
        `A run ${how} ${Math.round(run)} s; an interruption repeats little work.`,
        10,
      ),
    );
  } else {
    out.push(
      finding(
        'LongRunningJob',
        'Lowers',
        `A run ${how} ${Math.round(run / 60)} min; an interruption loses the work done so far.`,
        15,
      ),
    );
  }
  return out;
}

function pinFindings(facts: WorkloadFacts): Finding[] {
  const hard = hardConstraint(facts.template, CAPACITY_KEYS, normalizeCapacity);
  const out: Finding[] = [];
  if (hard !== undefined && !allows(hard, 'spot')) {
    out.push(
      finding(
        'OnDemandPinned',
        'Requires',
        `Its ${hard.source} keeps it off Spot capacity; the pin has to go.`,
        10,
      ),
    );
  }
  if (preferredValues(facts.template, CAPACITY_KEYS, normalizeCapacity).includes('on-demand')) {
    out.push(
      finding(
        'PrefersOnDemand',
        'Lowers',
        'A preferred node affinity favours on-demand capacity.',
        10,
      ),
    );
  }
  return out;
}

interface TypeFit {
  vcpu: number;
  memoryGiB: number;
  graviton: boolean;
}
const fitCache = new WeakMap<PriceBook, Map<string, TypeFit[]>>();

/** Instance types of a region with a low interruption band, cached per price book. */
function lowRiskTypes(book: PriceBook, region: string): TypeFit[] {
  let byRegion = fitCache.get(book);
  if (byRegion === undefined) {
    byRegion = new Map();
    fitCache.set(book, byRegion);
  }
  let list = byRegion.get(region);
  if (list === undefined) {
    list = [];
    const table: ReadonlyMap<string, SpotFigures> = book.spot.get(region) ?? new Map();
    for (const [type, f] of table) {
      const spec = book.specs.get(type);
      if (
        spec !== undefined &&
        f.band !== undefined &&
        f.band <= LOW_BAND_MAX &&
        f.savingsPercent > 0
      ) {
        list.push({ ...spec, graviton: isGravitonType(type) });
      }
    }
    byRegion.set(region, list);
  }
  return list;
}

/**
 * The region whose Spot Advisor data stands for the workload's: its own, else us-east-1 (said in
 * an Info reason), else none; every risk reason names the region its figures come from.
 */
function spotDataRegion(
  book: PriceBook,
  region: string,
): { from: string | undefined; findings: Finding[] } {
  if (book.spot.has(region)) return { from: region, findings: [] };
  if (book.spot.has(FALLBACK_REGION))
    return {
      from: FALLBACK_REGION,
      findings: [
        finding(
          'SpotDataFromFallbackRegion',
          'Info',
          `The Spot Advisor data has nothing for ${region}; the interruption bands and instance-type counts here are ${FALLBACK_REGION}'s, a stand-in.`,
        ),
      ],
    };
  return {
    from: undefined,
    findings: [
      finding(
        'NoSpotData',
        'Info',
        `The Spot Advisor data has nothing for ${region} (nor ${FALLBACK_REGION}): interruption risk and instance-type diversity are not known.`,
      ),
    ],
  };
}

function riskFindings(facts: WorkloadFacts, book: PriceBook): Finding[] {
  const data = spotDataRegion(book, pricingRegion(facts).region);
  if (data.from === undefined) return [...data.findings, ...placementScoreFindings(facts)];
  const region = data.from;
  const out: Finding[] = [...data.findings];
  const bands = new Map<string, number>();
  const unknown: string[] = [];
  for (const pod of facts.pods) {
    const type = pod.node?.instanceType;
    if (type === undefined || bands.has(type) || unknown.includes(type)) continue;
    const band = spotFigures(book, region, type)?.band;
    if (band === undefined) unknown.push(type);
    else bands.set(type, band);
  }
  const label = (b: number) => book.bands[b] ?? `band ${b}`;
  const high = [...bands]
    .filter(([, b]) => b >= HIGH_BAND_MIN)
    .sort(([a], [b]) => a.localeCompare(b));
  const moderate = [...bands]
    .filter(([, b]) => b > LOW_BAND_MAX && b < HIGH_BAND_MIN)
    .sort(([a], [b]) => a.localeCompare(b));
  if (high.length > 0) {
    out.push(
      finding(
        'HighInterruptionRisk',
        'Lowers',
        `Spot Advisor interruption frequency in ${region}: ${high.map(([t, b]) => `${t} ${label(b)}`).join(', ')}; let the node pool use other types.`,
        15,
      ),
    );
  } else if (moderate.length > 0) {
    out.push(
      finding(
        'ModerateInterruptionRisk',
        'Lowers',
        `Spot Advisor interruption frequency in ${region}: ${moderate.map(([t, b]) => `${t} ${label(b)}`).join(', ')}.`,
        5,
      ),
    );
  } else if (bands.size > 0) {
    const types = [...bands.keys()].sort();
    out.push(
      finding(
        'LowInterruptionRisk',
        'Raises',
        `Spot Advisor interruption frequency of ${listOf(types)} in ${region} is 10% or less.`,
        10,
      ),
    );
  }
  if (unknown.length > 0) {
    out.push(
      finding(
        'InterruptionRiskUnknown',
        'Info',
        `The Spot Advisor has no figures for ${listOf(unknown.sort())} in ${region}.`,
      ),
    );
  }
  out.push(...diversityFindings(facts, book, region), ...placementScoreFindings(facts));
  return out;
}

function placementScoreFindings(facts: WorkloadFacts): Finding[] {
  const out: Finding[] = [];
  if (facts.spotPlacementScore !== undefined) {
    if (facts.spotPlacementScore >= 7) {
      out.push(
        finding(
          'HighPlacementScore',
          'Raises',
          `Spot placement score ${facts.spotPlacementScore}/10.`,
          5,
        ),
      );
    } else if (facts.spotPlacementScore <= 3) {
      out.push(
        finding(
          'LowPlacementScore',
          'Lowers',
          `Spot placement score ${facts.spotPlacementScore}/10.`,
          10,
        ),
      );
    }
  }
  return out;
}

function diversityFindings(facts: WorkloadFacts, book: PriceBook, region: string): Finding[] {
  if (facts.pods.length === 0) return [];
  const cpu = Math.max(...facts.pods.map((p) => p.cpuRequestCores));
  const memGiB = Math.max(...facts.pods.map((p) => p.memoryRequestBytes)) / 1024 ** 3;
  const graviton = facts.pods.every((p) => onArm64(p.node));
  const fits = lowRiskTypes(book, region).filter(
    (t) => t.graviton === graviton && t.vcpu >= cpu && t.memoryGiB >= memGiB,
  ).length;
  const arch = graviton ? 'arm64' : 'x86';
  if (fits >= MANY_TYPES) {
    return [
      finding(
        'ManyInstanceTypesFit',
        'Raises',
        `${fits} low-interruption ${arch} instance types in ${region} can hold one of its pods; a diverse node pool rides out interruptions.`,
        5,
      ),
    ];
  }
  if (fits < FEW_TYPES) {
    return [
      finding(
        'FewInstanceTypesFit',
        'Lowers',
        `Only ${fits} low-interruption ${arch} instance types in ${region} can hold one of its pods; Spot capacity for it is scarce.`,
        10,
      ),
    ];
  }
  return [];
}

function alreadyOnSpot(facts: WorkloadFacts): { all: boolean; some: number; required: boolean } {
  const some = facts.pods.filter((p) => p.node?.capacityType === 'spot').length;
  const hard = hardConstraint(facts.template, CAPACITY_KEYS, normalizeCapacity);
  const required =
    hard?.allowed !== undefined &&
    hard.allowed.length > 0 &&
    hard.allowed.every((v) => v === 'spot');
  return { all: facts.pods.length > 0 && some === facts.pods.length, some, required };
}

/** Decides whether the workload should move to Spot capacity. */
export function evaluateSpot(facts: WorkloadFacts, book: PriceBook): SpotEvaluation {
  if (!facts.policy.spot.enabled) {
    return notApplicable(
      'DisabledByPolicy',
      `SavingsPolicy ${facts.policy.name ?? '(default)'} turns Spot off for this workload.`,
    );
  }
  if (facts.annotations[ANNOTATION_SPOT] === 'never') {
    return notApplicable('OptedOut', `The workload is annotated ${ANNOTATION_SPOT}: "never".`);
  }
  if (facts.kind === 'DaemonSet') {
    return notApplicable('DaemonSetRunsEverywhere', 'A DaemonSet runs on every node, Spot or not.');
  }
  if (!BATCH_KINDS.has(facts.kind) && effectiveReplicas(facts) === 0 && facts.pods.length === 0) {
    return notApplicable(
      'ScaledToZero',
      'It is scaled to zero replicas; there is nothing to place.',
    );
  }

  const findings: Finding[] = [
    ...ownerFindings(facts),
    ...controllerFindings(facts),
    ...storageFindings(facts),
    ...datastoreFindings(facts),
    ...disruptionFindings(facts),
    ...replicaFindings(facts),
    ...pdbFindings(facts),
    ...shutdownFindings(facts),
    ...readinessFindings(facts),
    ...spreadFindings(facts),
    ...jobFindings(facts),
    ...pinFindings(facts),
    ...riskFindings(facts, book),
  ];
  const spotCapacity = facts.cluster.capacityTypes.includes('spot');
  const on = alreadyOnSpot(facts);
  if (on.some > 0 && !on.all) {
    findings.push(
      finding(
        'PartlyOnSpot',
        'Info',
        `${on.some} of ${facts.pods.length} running pods are already on Spot nodes.`,
      ),
    );
  }
  if (!spotCapacity && !on.required && facts.cluster.capacityTypes.length > 0) {
    findings.push(
      finding(
        'NoSpotNodesYet',
        'Info',
        'No node in the cluster is Spot yet: the node pool (Karpenter NodePool or node group) must allow Spot capacity.',
      ),
    );
  }

  const estimate = estimateCost(facts, book, { spot: true, arm64: false });
  findings.push(...pricingFindings(facts, book, estimate));
  const missingPrice = estimate.unpriced.length > 0;
  if (missingPrice) {
    findings.push(
      finding(
        'NoPrice',
        'Info',
        estimate.unpricedTypes.length > 0
          ? `No price for ${listOf(estimate.unpricedTypes)} in the ${book.source.toLowerCase()} prices.`
          : `${plural(estimate.unpriced.length, 'pod')} run on nodes without an instance-type label, so they cannot be priced.`,
      ),
    );
  }

  const blocked = findings.some((f) => f.effect === 'Blocks');
  if ((on.all || on.required) && !blocked) {
    const message = on.all
      ? `All ${plural(facts.pods.length, 'running pod')} are on Spot nodes.`
      : 'Its node affinity already requires Spot capacity.';
    return {
      result: result(
        'AlreadyOptimized',
        [finding('AlreadyOnSpot', 'Info', message), ...findings],
        '0.00',
      ),
      actionable: false,
      atRisk: false,
    };
  }
  if (blocked && (on.all || on.required || on.some > 0))
    return atRiskOnSpot(facts, book, on, findings);
  const noPriceAtAll = missingPrice && estimate.unpriced.length === facts.pods.length;
  const verdict = verdictOf(findings, noPriceAtAll);
  const savings =
    verdict === 'Recommended' || verdict === 'Possible'
      ? formatUSD(estimate.savingsMonthly)
      : '0.00';
  // Possible only because of a pin the suggested patch removes: the patch makes the move.
  const afterPatch = findings.filter(
    (f) => !(f.effect === 'Requires' && SPOT_FIXED_BY_PATCH.has(f.code)),
  );
  const actionable =
    verdict === 'Recommended' ||
    (verdict === 'Possible' && verdictOf(afterPatch, noPriceAtAll) === 'Recommended');
  const explained = actionable ? notePatch(findings, SPOT_FIXED_BY_PATCH) : findings;
  return { result: result(verdict, explained, savings), actionable, atRisk: false };
}

/**
 * A workload kopek would not put on Spot that runs there already: NotRecommended, and the risk
 * said in a reason, in the Ready condition (recommend.ts) and with what moving it to on-demand
 * costs; the suggested patch makes that move (patch.ts). Apply never makes it on its own.
 */
function atRiskOnSpot(
  facts: WorkloadFacts,
  book: PriceBook,
  on: ReturnType<typeof alreadyOnSpot>,
  findings: readonly Finding[],
): SpotEvaluation {
  const move = estimateCost(facts, book, { spot: false, arm64: false, onDemand: true });
  const cost = formatUSD(Math.max(0, move.targetMonthly - move.currentMonthly));
  const where = on.all
    ? `All ${plural(facts.pods.length, 'running pod')} run`
    : on.some > 0
      ? `${on.some} of ${plural(facts.pods.length, 'running pod')} run`
      : 'Its node affinity requires it to run';
  const atRisk = finding(
    'AtRiskOnSpot',
    'Info',
    `${where} on Spot, which the reasons above rule out: the suggested patch moves it to on-demand capacity, for ${cost} USD more a month.`,
  );
  return {
    result: {
      ...result('NotRecommended', [...findings, atRisk], '0.00'),
      moveToOnDemandMonthlyCostUSD: cost,
    },
    actionable: false,
    atRisk: true,
  };
}
