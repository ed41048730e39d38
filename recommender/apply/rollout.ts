/**
 * How a rollout is going, from plain status facts: the workload's status, its pods (of the new
 * revision and of older ones) and, for a CronJob, the first Job created from the new template.
 * `rolloutFacts` reads those facts from live objects; `rolloutVerdict` decides Progressing,
 * Succeeded or Failed with a stable reason code and a message a person understands.
 */
import type { Optimization, WorkloadKind } from '../api/v1alpha1.ts';
import { LABEL_ARCH } from '../facts.ts';
import { listOf, plural } from '../reasons.ts';
import { CAPACITY_KEYS, normalizeCapacity } from '../scheduling.ts';

/** A new pod that restarted this often, more than any older pod, is crash-looping. */
export const CRASH_LOOP_RESTARTS = 3;

export interface PodFact {
  name: string;
  /** Of the revision being rolled out, or of an earlier one. */
  revision: 'new' | 'old';
  phase: string;
  ready: boolean;
  /** When it last became Ready (ms since the epoch), while Ready. */
  readySince?: number;
  /** Since when the scheduler cannot place it (ms since the epoch), while it cannot. */
  unschedulableSince?: number;
  unschedulableMessage?: string;
  /** Container restarts, all containers together. */
  restarts: number;
  /** Where it runs: the node's capacity type and architecture, when known. */
  capacityType?: string;
  arch?: string;
}

export interface RolloutFacts {
  kind: WorkloadKind;
  /** The controller has observed the latest spec (status.observedGeneration ≥ generation). */
  observed: boolean;
  /** Replicas wanted (a DaemonSet: the pods it should schedule). */
  desired: number;
  updated: number;
  available: number;
  /** Pods of every revision that the controller counts (old ones not yet gone included). */
  total: number;
  /** Argo Rollouts' phase (Healthy, Progressing, Paused, Degraded). */
  phase?: string;
  /** Why the controller gave up: ProgressDeadlineExceeded, an aborted or degraded Rollout. */
  stalled?: { reason: 'ProgressDeadlineExceeded' | 'RolloutAborted'; message: string };
  /** CronJob: the first Job created from the new template. */
  job?: { name: string; startedAt: number; succeeded: boolean; failed?: string };
  pods: PodFact[];
}

type Obj = Record<string, unknown>;

function obj(value: unknown): Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : {};
}

function objs(value: unknown): Obj[] {
  return Array.isArray(value) ? value.map(obj) : [];
}

function num(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value !== '' && Number.isFinite(Number(value)))
    return Number(value);
  return undefined;
}

function time(value: unknown): number | undefined {
  const t = typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(t) ? t : undefined;
}

function uidOf(o: Obj): unknown {
  return obj(o.metadata).uid;
}

function ownedBy(o: Obj, uid: unknown): boolean {
  return objs(obj(o.metadata).ownerReferences).some((ref) => ref.uid === uid);
}

function label(o: Obj, key: string): string | undefined {
  const value = obj(obj(o.metadata).labels)[key];
  return typeof value === 'string' ? value : undefined;
}

function condition(o: Obj, type: string): Obj | undefined {
  return objs(obj(o.status).conditions).find((c) => c.type === type);
}

/** A node's labels by name, to say where pods run. */
export type NodeLabels = (name: string) => Readonly<Record<string, string>> | undefined;

function podFact(pod: Obj, revision: 'new' | 'old', nodes: NodeLabels): PodFact {
  const status = obj(pod.status);
  const ready = condition(pod, 'Ready');
  const scheduled = condition(pod, 'PodScheduled');
  const restarts = [
    ...objs(status.containerStatuses),
    ...objs(status.initContainerStatuses),
  ].reduce((sum, c) => sum + (num(c.restartCount) ?? 0), 0);
  const fact: PodFact = {
    name: String(obj(pod.metadata).name),
    revision,
    phase: typeof status.phase === 'string' ? status.phase : 'Pending',
    ready: ready?.status === 'True',
    restarts,
  };
  const readySince = time(ready?.lastTransitionTime);
  if (fact.ready && readySince !== undefined) fact.readySince = readySince;
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    fact.unschedulableSince = time(scheduled.lastTransitionTime) ?? 0;
    if (typeof scheduled.message === 'string') fact.unschedulableMessage = scheduled.message;
  }
  const nodeName = obj(pod.spec).nodeName;
  const labels = typeof nodeName === 'string' ? nodes(nodeName) : undefined;
  if (labels !== undefined) {
    const capacity = CAPACITY_KEYS.map((key) => labels[key]).find((v) => v !== undefined);
    if (capacity !== undefined) fact.capacityType = normalizeCapacity(capacity);
    if (labels[LABEL_ARCH] !== undefined) fact.arch = labels[LABEL_ARCH];
  }
  return fact;
}

export interface RolloutObjects {
  /** The live workload. */
  workload: Obj;
  /** Its pods (any revision; pods of other workloads are ignored by ownership or label). */
  pods: readonly Obj[];
  /** Deployment: its namespace's ReplicaSets. */
  replicaSets?: readonly Obj[];
  /** CronJob: its namespace's Jobs. */
  jobs?: readonly Obj[];
  nodes: NodeLabels;
  /** CronJob: when kopek patched it (ms); Jobs created since run the new template. */
  changedAt?: number;
}

/** Whether a pod is of the new revision, an older one, or not the workload's (undefined). */
type Revision = (pod: Obj) => boolean | undefined;

/** Per kind: the counts its status gives and which of its pods run the new revision. */
type KindReader = (objects: RolloutObjects, facts: RolloutFacts) => Revision;

const READERS: Partial<Record<WorkloadKind, KindReader>> = {
  Deployment: ({ workload, replicaSets }, facts) => {
    const revision = obj(obj(workload.metadata).annotations)['deployment.kubernetes.io/revision'];
    const sets = (replicaSets ?? []).filter((rs) => ownedBy(rs, uidOf(workload)));
    const current = sets.find(
      (rs) => obj(obj(rs.metadata).annotations)['deployment.kubernetes.io/revision'] === revision,
    );
    const progressing = condition(workload, 'Progressing');
    if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded')
      facts.stalled = {
        reason: 'ProgressDeadlineExceeded',
        message:
          typeof progressing.message === 'string'
            ? progressing.message
            : 'progress deadline exceeded',
      };
    const setUids = new Set(sets.map(uidOf));
    return (pod) => {
      const owner = objs(obj(pod.metadata).ownerReferences).find((ref) => setUids.has(ref.uid));
      if (owner === undefined) return undefined;
      return current !== undefined && owner.uid === uidOf(current);
    };
  },
  StatefulSet: ({ workload }) => {
    const updateRevision = obj(workload.status).updateRevision;
    return (pod) =>
      ownedBy(pod, uidOf(workload))
        ? label(pod, 'controller-revision-hash') === updateRevision
        : undefined;
  },
  DaemonSet: ({ workload }, facts) => {
    const status = obj(workload.status);
    facts.desired = num(status.desiredNumberScheduled) ?? 0;
    facts.updated = num(status.updatedNumberScheduled) ?? 0;
    facts.available = num(status.numberAvailable) ?? 0;
    facts.total = num(status.currentNumberScheduled) ?? 0;
    const generation = String(num(obj(workload.metadata).generation) ?? 0);
    return (pod) =>
      ownedBy(pod, uidOf(workload))
        ? label(pod, 'pod-template-generation') === generation
        : undefined;
  },
  Rollout: ({ workload }, facts) => {
    const status = obj(workload.status);
    // Argo Rollouts writes observedGeneration as a string.
    facts.observed =
      String(status.observedGeneration) === String(num(obj(workload.metadata).generation));
    if (typeof status.phase === 'string') facts.phase = status.phase;
    if (status.abort === true || status.phase === 'Degraded')
      facts.stalled = {
        reason: 'RolloutAborted',
        message:
          typeof status.message === 'string' && status.message !== ''
            ? status.message
            : `the Rollout is ${status.abort === true ? 'aborted' : 'degraded'}`,
      };
    return (pod) => {
      const podHash = label(pod, 'rollouts-pod-template-hash');
      return podHash === undefined ? undefined : podHash === status.currentPodHash;
    };
  },
  CronJob: ({ workload, jobs, changedAt }, facts) => {
    const own = (jobs ?? []).filter((job) => ownedBy(job, uidOf(workload)));
    const since = (changedAt ?? 0) - 1000; // creation times have whole seconds
    const first = own
      .map((job) => ({ job, created: time(obj(job.metadata).creationTimestamp) ?? 0 }))
      .filter((j) => j.created >= since)
      .sort((a, b) => a.created - b.created)[0];
    facts.desired = 0;
    if (first !== undefined) {
      const failed = condition(first.job, 'Failed');
      facts.job = {
        name: String(obj(first.job.metadata).name),
        startedAt: first.created,
        succeeded:
          condition(first.job, 'Complete')?.status === 'True' ||
          (num(obj(first.job.status).succeeded) ?? 0) > 0,
        ...(failed?.status === 'True'
          ? { failed: typeof failed.message === 'string' ? failed.message : 'the Job failed' }
          : {}),
      };
    }
    const jobUids = new Set(own.map(uidOf));
    return (pod) => {
      const owner = objs(obj(pod.metadata).ownerReferences).find((ref) => jobUids.has(ref.uid));
      if (owner === undefined) return undefined;
      return first !== undefined && owner.uid === uidOf(first.job);
    };
  },
};

/** Reads the rollout facts of a workload from live objects. */
export function rolloutFacts(kind: WorkloadKind, objects: RolloutObjects): RolloutFacts {
  const { workload, nodes } = objects;
  const spec = obj(workload.spec);
  const status = obj(workload.status);
  const facts: RolloutFacts = {
    kind,
    observed:
      (num(status.observedGeneration) ?? -1) >= (num(obj(workload.metadata).generation) ?? 0),
    desired: num(spec.replicas) ?? 1,
    updated: num(status.updatedReplicas) ?? 0,
    available: num(status.availableReplicas) ?? 0,
    total: num(status.replicas) ?? 0,
    pods: [],
  };
  const isNew = READERS[kind]?.(objects, facts) ?? (() => undefined);
  for (const pod of objects.pods) {
    if (obj(pod.metadata).deletionTimestamp !== undefined) continue;
    const which = isNew(pod);
    if (which !== undefined) facts.pods.push(podFact(pod, which ? 'new' : 'old', nodes));
  }
  return facts;
}

export type RolloutState = 'Progressing' | 'Succeeded' | 'Failed';

export interface RolloutVerdict {
  state: RolloutState;
  /** Progressing: RollingOut, Settling, WaitingForRun. Succeeded: RolledOut, JobSucceeded.
   * Failed: ProgressDeadlineExceeded, RolloutAborted, JobFailed, PodsUnschedulable,
   * PodsCrashLooping, ProgressTimeout. */
  reason: string;
  message: string;
  /** Progressing: when a deadline falls due (ms since the epoch), to look again by then. */
  recheckAt?: number;
}

export interface VerdictOptions {
  /** When the change was made (ms since the epoch). */
  startedAt: number;
  now: number;
  /** The policy's progressTimeout. */
  progressTimeoutMs: number;
  /** How long new pods must stay Ready, and the longest a new pod may stay unschedulable. */
  settleMs: number;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}

/** Decides how the rollout of the latest spec is going. */
export function rolloutVerdict(facts: RolloutFacts, options: VerdictOptions): RolloutVerdict {
  const { now, settleMs } = options;
  const fresh = facts.pods.filter((p) => p.revision === 'new');
  const old = facts.pods.filter((p) => p.revision === 'old');
  if (facts.stalled) return { state: 'Failed', ...facts.stalled };
  if (facts.job?.failed !== undefined)
    return {
      state: 'Failed',
      reason: 'JobFailed',
      message: `Job ${facts.job.name}: ${facts.job.failed}`,
    };
  const stuck = fresh.filter(
    (p) => p.unschedulableSince !== undefined && now - p.unschedulableSince >= settleMs,
  );
  if (stuck.length > 0)
    return {
      state: 'Failed',
      reason: 'PodsUnschedulable',
      message: `${plural(stuck.length, 'new pod')} could not be scheduled for ${seconds(settleMs)}: ${stuck[0]?.unschedulableMessage ?? 'no node fits'}`,
    };
  const oldMax = Math.max(0, ...old.map((p) => p.restarts));
  const looping = fresh.filter((p) => p.restarts >= CRASH_LOOP_RESTARTS && p.restarts > oldMax);
  if (looping.length > 0)
    return {
      state: 'Failed',
      reason: 'PodsCrashLooping',
      message: `${plural(looping.length, 'new pod')} crash-looping (${listOf(looping.slice(0, 3).map((p) => `${p.name}: ${p.restarts} restarts`))}) while ${old.length > 0 ? `the older pods restarted at most ${oldMax} times` : 'no older pod is left'}.`,
    };

  if (facts.kind === 'CronJob') {
    if (facts.job === undefined)
      return {
        state: 'Progressing',
        reason: 'WaitingForRun',
        message: 'Waiting for the next scheduled run.',
      };
    if (facts.job.succeeded)
      return {
        state: 'Succeeded',
        reason: 'JobSucceeded',
        message: `Job ${facts.job.name} succeeded.`,
      };
    return settleOrWait(fresh, fresh.length > 0 && fresh.every((p) => p.ready), {
      ...options,
      startedAt: facts.job.startedAt,
    });
  }
  const rolledOut =
    facts.observed &&
    facts.updated >= facts.desired &&
    facts.available >= facts.desired &&
    facts.total <= facts.desired &&
    (facts.kind !== 'Rollout' || facts.phase === 'Healthy') &&
    fresh.filter((p) => p.ready).length >= facts.desired;
  return settleOrWait(fresh, rolledOut, options);
}

function settleOrWait(
  fresh: readonly PodFact[],
  rolledOut: boolean,
  options: VerdictOptions,
): RolloutVerdict {
  const { now, settleMs, startedAt, progressTimeoutMs } = options;
  if (rolledOut) {
    // Ready since the change at least: a change that moves no pod (CrossZone's Service part
    // alone) is watched for a whole settle period too.
    const readySince = Math.max(startedAt, ...fresh.map((p) => p.readySince ?? now));
    if (now - readySince >= settleMs)
      return {
        state: 'Succeeded',
        reason: 'RolledOut',
        message: `${plural(fresh.length, 'new pod')} Ready for ${seconds(settleMs)} or more.`,
      };
    return {
      state: 'Progressing',
      reason: 'Settling',
      message: `Rolled out; waiting until the new pods have been Ready for ${seconds(settleMs)}.`,
      recheckAt: readySince + settleMs,
    };
  }
  const deadline = startedAt + progressTimeoutMs;
  if (now >= deadline)
    return {
      state: 'Failed',
      reason: 'ProgressTimeout',
      message: `Not rolled out after the policy's progressTimeout of ${seconds(progressTimeoutMs)}: ${fresh.filter((p) => p.ready).length} new pods Ready.`,
    };
  const unschedulable = fresh
    .map((p) => p.unschedulableSince)
    .filter((t): t is number => t !== undefined)
    .map((t) => t + settleMs);
  return {
    state: 'Progressing',
    reason: 'RollingOut',
    message: `Rolling out: ${fresh.filter((p) => p.ready).length} new pods Ready.`,
    recheckAt: Math.min(deadline, ...unschedulable),
  };
}

/**
 * The share of the new pods that run where an action puts them (Spot capacity, arm64 nodes):
 * the part of its expected savings that is realized. 1 when no new pod has a node (a Job that
 * finished) and for CrossZone, which moves no pod.
 */
export function shareOnTarget(facts: RolloutFacts, action: Optimization): number {
  const placed = facts.pods.filter(
    (p) => p.revision === 'new' && (p.phase === 'Running' || p.phase === 'Succeeded'),
  );
  if (placed.length === 0 || action === 'CrossZone') return 1;
  const onTarget = placed.filter((p) =>
    action === 'Spot' ? p.capacityType === 'spot' : p.arch === 'arm64',
  );
  return onTarget.length / placed.length;
}
