/**
 * The workload's own shape, read for Spot: its controller and volumes, replicas, disruption
 * budget, shutdown time, readiness, spread, Job retries and run time, and capacity pins.
 */
import {
  ANNOTATION_DO_NOT_DISRUPT,
  ANNOTATION_SAFE_TO_EVICT,
  effectiveReplicas,
  type WorkloadFacts,
} from './facts.ts';
import { datastoreOf, mainContainers } from './containers.ts';
import { finding, listOf, plural, type Finding } from './reasons.ts';
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
const SPOT_NOTICE_SECONDS = 120;
/** Kubernetes' default terminationGracePeriodSeconds. */
const DEFAULT_GRACE_SECONDS = 30;
/** A Job run longer than this loses a lot of work to an interruption. */
const LONG_JOB_SECONDS = 3600;

const STATELESS_KINDS = new Set(['Deployment', 'ReplicaSet', 'Rollout']);
export const BATCH_KINDS = new Set(['Job', 'CronJob']);

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

/** Every finding about the workload's own shape, in the order its reasons are listed. */
export function workloadFindings(facts: WorkloadFacts): Finding[] {
  return [
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
  ];
}
