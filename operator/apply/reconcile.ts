/**
 * One step of Apply mode for one workload, driven by its recommendation's status.applied, so a
 * restarted (or newly elected) kopek continues exactly where the last one stopped:
 *
 * - no change in flight → decide (recommender/apply/eligibility.ts); if allowed, GET the live
 *   workload, check it live, record InProgress with the previous and the planned state, THEN
 *   send the guarded JSON patch. A refused patch is Failed with the server's message.
 * - InProgress → the live fields must still be what kopek set (else a person changed them:
 *   Failed, left alone); judge the rollout; Succeeded, or RollingBack then the revert patch.
 * - RollingBack → send the revert if it was not sent, wait until the rollback is rolled out,
 *   then RolledBack.
 *
 * Status is written before every change to the workload, never after only.
 */
import type {
  AppliedChange,
  Optimization,
  WorkloadKind,
  WorkloadRecommendation,
} from '../../recommender/api/v1alpha1.ts';
import {
  concurrencyRefusal,
  decide,
  liveRefusal,
  rolloutInProgress,
  type Refusal,
} from '../../recommender/apply/eligibility.ts';
import { podSpecOperations, type JsonPatchOperation } from '../../recommender/apply/operations.ts';
import {
  parseState,
  podSpecOf,
  podSpecPointer,
  readPodPlacement,
  sameValue,
  serializeState,
  type PlacementState,
} from '../../recommender/apply/placement.ts';
import { plannedState } from '../../recommender/apply/plan.ts';
import {
  rolloutFacts,
  rolloutVerdict,
  shareOnTarget,
  type RolloutVerdict,
} from '../../recommender/apply/rollout.ts';
import {
  type ActionEvaluation,
  evaluateActions,
  expectedSavings,
  realizedSavings,
} from '../../recommender/apply/savings.ts';
import type { ResolvedPolicy, WorkloadFacts } from '../../recommender/facts.ts';
import { listOf } from '../../recommender/reasons.ts';
import { DEFAULT_POLICY } from '../../recommender/policy.ts';
import type { PriceBook } from '../../recommender/pricing.ts';
import { recommendationName } from '../../recommender/recommend.ts';
import type { ClusterCache } from '../cache.ts';
import type { Clock } from '../clock.ts';
import { KubeApiError, type KubeApi, type ResourceType } from '../kube/client.ts';
import { RESOURCES, type ResourceName } from '../kube/resources.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { workloadKey, type WorkloadRef } from '../recommendations/keys.ts';
import { rfc3339 } from '../time.ts';
import type { EventRecorder, InvolvedObject } from './events.ts';

/** kopek's field manager for the workloads it changes and for status.applied. */
export const APPLY_FIELD_MANAGER = 'kopek-apply';

type Obj = Record<string, unknown>;

export interface ApplyContext {
  client: KubeApi;
  cache: ClusterCache;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  events: EventRecorder;
  /** The workload's facts as the recommendation controller built them last. */
  facts: (ref: WorkloadRef) => WorkloadFacts | undefined;
  prices: () => PriceBook;
  applyEnabled: boolean;
  /** Send every change as a server-side dry run and record nothing. */
  dryRun: boolean;
  /** Per workload key, the last change sent as a dry run: each distinct one is sent and logged once. */
  dryRunsSent: Map<string, string>;
  /** How long new pods must stay Ready (and the longest one may stay unschedulable). */
  settleMs: number;
  /** Changes being rolled out now (cluster-wide), this one excluded. */
  inFlight: (ref: WorkloadRef) => number;
  /** Marks a workload as rolling out (true) or done (false), for maxConcurrent. */
  setActive: (ref: WorkloadRef, active: boolean) => void;
}

/** What the step wants next: look again after `afterMs`, or nothing until something changes. */
export interface StepResult {
  afterMs?: number;
  /** A refusal the caller reports once per code (not at every look). */
  refusal?: Refusal;
}

const WORKLOAD_RESOURCES: Partial<Record<WorkloadKind, ResourceName>> = {
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
  CronJob: 'cronjobs',
  Rollout: 'rollouts',
};

function obj(value: unknown): Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : {};
}

function generationOf(o: unknown): number | undefined {
  const g = obj(obj(o).metadata).generation;
  return typeof g === 'number' ? g : undefined;
}

/** Everything one step works on, found once. */
interface Subject {
  ref: WorkloadRef;
  kind: WorkloadKind;
  type: ResourceType;
  wrec: WorkloadRecommendation;
  involved: InvolvedObject[];
}

/** The workload and its recommendation, as Events name them (uids when cached). */
export function involvedObjects(cache: ClusterCache, ref: WorkloadRef): InvolvedObject[] {
  const name = recommendationName(ref.kind, ref.name);
  const wrec = cache.get('workloadrecommendations', `${ref.namespace}/${name}`);
  const resource = WORKLOAD_RESOURCES[ref.kind as WorkloadKind];
  const involved: InvolvedObject[] = [];
  if (resource !== undefined) {
    const type = RESOURCES[resource];
    const uid = cache.get(resource, `${ref.namespace}/${ref.name}`)?.metadata.uid;
    involved.push({
      apiVersion: type.group === '' ? type.version : `${type.group}/${type.version}`,
      kind: ref.kind,
      name: ref.name,
      namespace: ref.namespace,
      ...(uid ? { uid } : {}),
    });
  }
  const wrecUid = wrec?.metadata.uid;
  involved.push({
    apiVersion: 'kopek.dev/v1alpha1',
    kind: 'WorkloadRecommendation',
    name,
    namespace: ref.namespace,
    ...(wrecUid ? { uid: wrecUid } : {}),
  });
  return involved;
}

export async function applyStep(ctx: ApplyContext, ref: WorkloadRef): Promise<StepResult> {
  const kind = ref.kind as WorkloadKind;
  const resource = WORKLOAD_RESOURCES[kind];
  if (resource === undefined) return {};
  const wrec = ctx.cache.get(
    'workloadrecommendations',
    `${ref.namespace}/${recommendationName(ref.kind, ref.name)}`,
  ) as WorkloadRecommendation | undefined;
  if (wrec === undefined) return {};
  const subject: Subject = {
    ref,
    kind,
    type: RESOURCES[resource],
    wrec,
    involved: involvedObjects(ctx.cache, ref),
  };
  const last = wrec.status?.applied;
  if (last?.outcome === 'InProgress') return watch(ctx, subject, last);
  if (last?.outcome === 'RollingBack') return finishRevert(ctx, subject, last);
  ctx.setActive(ref, false);
  return start(ctx, subject, last);
}

function policyOf(ctx: ApplyContext, ref: WorkloadRef): ResolvedPolicy {
  return ctx.facts(ref)?.policy ?? DEFAULT_POLICY;
}

async function writeApplied(
  ctx: ApplyContext,
  subject: Subject,
  applied: AppliedChange,
): Promise<void> {
  await ctx.client.apply(
    RESOURCES.workloadrecommendations,
    {
      apiVersion: subject.wrec.apiVersion,
      kind: 'WorkloadRecommendation',
      metadata: { name: subject.wrec.metadata.name, namespace: subject.ref.namespace },
      status: { applied },
    },
    { fieldManager: APPLY_FIELD_MANAGER, subresource: 'status', force: true },
  );
}

async function start(
  ctx: ApplyContext,
  subject: Subject,
  last: AppliedChange | undefined,
): Promise<StepResult> {
  const { ref, kind, wrec } = subject;
  const facts = ctx.facts(ref);
  // Most workloads are under recommend-only policies: skip the evaluations for them.
  if (facts?.policy.mode !== 'Apply') return {};
  const now = ctx.clock.now();
  const prices = ctx.prices();
  const evaluation = evaluateActions(facts, prices);
  const decision = decide({
    facts,
    actionable: evaluation.actionable,
    approved: wrec.spec.approve ?? [],
    applyEnabled: ctx.applyEnabled,
    last,
    generation: ctx.cache.get(
      WORKLOAD_RESOURCES[kind] ?? 'deployments',
      `${ref.namespace}/${ref.name}`,
    )?.metadata.generation,
    now,
  });
  if ('refusal' in decision)
    return {
      refusal: decision.refusal,
      ...(decision.refusal.retryAt !== undefined
        ? { afterMs: decision.refusal.retryAt - now }
        : {}),
    };
  const actions = decision.actions;
  const policy = facts.policy;
  const busy = concurrencyRefusal(ctx.inFlight(ref), policy.apply.maxConcurrent);
  if (busy) return { refusal: busy, afterMs: ctx.settleMs };
  // Counted at once (before any await), so two workers cannot both pass maxConcurrent.
  ctx.setActive(ref, true);
  let rollingOut = false;
  try {
    const result = await startChecked(ctx, subject, { facts, actions, evaluation, last, now });
    rollingOut = result.rollingOut;
    return result;
  } finally {
    if (!rollingOut) ctx.setActive(ref, false);
  }
}

async function startChecked(
  ctx: ApplyContext,
  subject: Subject,
  input: {
    facts: WorkloadFacts;
    actions: Optimization[];
    evaluation: ActionEvaluation;
    last: AppliedChange | undefined;
    now: number;
  },
): Promise<StepResult & { rollingOut: boolean }> {
  const { ref, kind, type } = subject;
  const { facts, actions, evaluation, last, now } = input;
  const prices = ctx.prices();
  const live = await ctx.client.get<Obj>(type, ref.name, ref.namespace);
  const pdbs = await ctx.client.listPage<Obj>(RESOURCES.poddisruptionbudgets, {
    namespace: ref.namespace,
  });
  const unsafe = liveRefusal({ kind, workload: live, pdbs: pdbs.items });
  if (unsafe) return { refusal: unsafe, afterMs: ctx.settleMs, rollingOut: false };
  const podSpec = podSpecOf(kind, live);
  if (podSpec === undefined) return { rollingOut: false };
  // Pod fields only: the Service part of CrossZone is not applied yet (see the README).
  const previous: PlacementState = { podSpec: readPodPlacement(podSpec), services: [] };
  const planned = plannedState({
    facts,
    actions,
    crossZone: evaluation.crossZone,
    live: previous,
  });
  const operations = podSpecOperations(podSpecPointer(kind), previous.podSpec, planned.podSpec);
  if (!operations.some((o) => o.op !== 'test'))
    return {
      refusal: {
        code: 'AlreadyApplied',
        message: `The pod template already does what ${listOf(actions)} would change.`,
        quiet: true,
      },
      rollingOut: false,
    };

  if (ctx.dryRun) {
    // Sent and logged once per distinct change, not again at every resync.
    const key = workloadKey(ref.namespace, ref.kind, ref.name);
    const change = JSON.stringify(operations);
    if (ctx.dryRunsSent.get(key) === change) return { rollingOut: false };
    try {
      await patchWorkload(ctx, subject, operations, true);
      ctx.log.info('dry run: would apply', { ...ref, actions, operations });
    } catch (error) {
      ctx.log.warn('dry run: the server would refuse the change', {
        ...ref,
        actions,
        error: refusal(error).message,
      });
    }
    ctx.dryRunsSent.set(key, change);
    return { rollingOut: false };
  }

  const at = rfc3339(new Date(now));
  const expected = expectedSavings(facts, prices, actions, evaluation);
  const inProgress: AppliedChange = {
    actions: [...actions],
    appliedAt: at,
    updatedAt: at,
    previousState: serializeState(previous),
    appliedState: serializeState(planned),
    outcome: 'InProgress',
    reason: 'RollingOut',
    message: `Applying ${listOf(actions)}.`,
    expectedSavings: expected,
    ...(last?.realizedSavings && last.outcome === 'Succeeded'
      ? { realizedSavings: last.realizedSavings }
      : {}),
  };
  // The previous state is stored before the workload changes: a crash after this line finds it.
  await writeApplied(ctx, subject, inProgress);
  if (!(await sendChange(ctx, subject, inProgress, operations, generationOf(live))))
    return { rollingOut: false };
  ctx.log.info('applied', { ...ref, actions });
  await ctx.events.record(
    subject.involved,
    'Normal',
    'Applied',
    `kopek applied ${listOf(actions)}; watching the rollout.`,
  );
  return { afterMs: Math.min(ctx.settleMs, 5000), rollingOut: true };
}

async function patchWorkload(
  ctx: ApplyContext,
  subject: Subject,
  operations: readonly JsonPatchOperation[],
  dryRun: boolean,
): Promise<Obj> {
  return ctx.client.patch<Obj>(subject.type, subject.ref.name, subject.ref.namespace, operations, {
    fieldManager: APPLY_FIELD_MANAGER,
    dryRun,
  });
}

/** How a change ends, and whatever else status.applied records with it. */
interface Ending extends Partial<AppliedChange> {
  outcome: 'Succeeded' | 'RolledBack' | 'Failed';
  reason: string;
  message: string;
}

/** Ends a change: writes the outcome, counts it, tells people. */
async function finish(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  ending: Ending,
): Promise<void> {
  const { outcome, reason, message } = ending;
  await writeApplied(ctx, subject, {
    ...change,
    ...ending,
    updatedAt: rfc3339(new Date(ctx.clock.now())),
  });
  ctx.setActive(subject.ref, false);
  ctx.metrics.applies.inc({ outcome });
  if (change.outcome === 'RollingBack')
    ctx.metrics.rollbacks.inc({ outcome: outcome === 'RolledBack' ? 'RolledBack' : 'Failed' });
  ctx.log.info(`apply ${outcome}`, { ...subject.ref, reason, message });
  await ctx.events.record(
    subject.involved,
    outcome === 'Succeeded' ? 'Normal' : 'Warning',
    outcome === 'Succeeded' ? 'ApplySucceeded' : outcome,
    `${listOf(change.actions)}: ${message}`,
  );
}

/** The live workload, or undefined when it is gone (the change then ends Failed). */
async function readLive(ctx: ApplyContext, subject: Subject): Promise<Obj | undefined> {
  try {
    return await ctx.client.get<Obj>(subject.type, subject.ref.name, subject.ref.namespace);
  } catch (error) {
    if (error instanceof KubeApiError && error.status === 404) return undefined;
    throw error;
  }
}

async function watch(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
): Promise<StepResult> {
  const { ref, kind } = subject;
  ctx.setActive(ref, true);
  const previous = parseState(change.previousState);
  const applied = parseState(change.appliedState);
  if (previous === undefined || applied === undefined) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'StateUnreadable',
      message: 'status.applied does not hold states kopek can read; nothing was changed.',
    });
    return {};
  }
  const live = await readLive(ctx, subject);
  if (live === undefined) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'WorkloadGone',
      message: 'The workload was deleted during the rollout.',
    });
    return {};
  }
  const current = readPodPlacement(podSpecOf(kind, live) ?? {});
  if (change.workloadGeneration === undefined && samePod(current, previous)) {
    // Stopped after recording the change but before the patch was confirmed: send it now (its
    // tests fail, and nothing is written, if the workload moved on since).
    return resend(ctx, subject, change, previous, applied);
  }
  if (!samePod(current, applied)) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'ChangedByOthers',
      message:
        'Someone else changed the fields kopek set while the change rolled out; kopek stopped and left the workload as they left it.',
      ...heldAt(live),
    });
    return {};
  }
  const verdict = await judge(ctx, subject, live, change);
  const now = ctx.clock.now();
  if (verdict.state === 'Progressing') {
    if (change.reason !== verdict.reason)
      await writeApplied(ctx, subject, {
        ...change,
        reason: verdict.reason,
        message: verdict.message,
        updatedAt: rfc3339(new Date(now)),
      });
    return { afterMs: Math.max(100, Math.min((verdict.recheckAt ?? now + 5000) - now, 5000)) };
  }
  if (verdict.state === 'Succeeded') {
    const facts = verdict.facts;
    const realized = realizedSavings(
      change.realizedSavings ?? [],
      change.expectedSavings ?? [],
      (a: Optimization) => shareOnTarget(facts, a),
    );
    await finish(ctx, subject, change, {
      outcome: 'Succeeded',
      reason: verdict.reason,
      message: verdict.message,
      realizedSavings: realized,
    });
    return {};
  }
  if (!policyOf(ctx, ref).apply.rollbackOnFailure) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: verdict.reason,
      message: verdict.message,
    });
    return {};
  }
  // RollingBack is recorded before the revert is sent, so a restart finishes it.
  const rollingBack: AppliedChange = {
    ...change,
    outcome: 'RollingBack',
    reason: verdict.reason,
    message: verdict.message,
    updatedAt: rfc3339(new Date(now)),
  };
  await writeApplied(ctx, subject, rollingBack);
  await ctx.events.record(
    subject.involved,
    'Warning',
    'RollingBack',
    `${listOf(change.actions)}: ${verdict.message} kopek restores the previous pod template.`,
  );
  return revert(ctx, subject, rollingBack, previous, applied);
}

async function resend(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  previous: PlacementState,
  applied: PlacementState,
): Promise<StepResult> {
  const operations = podSpecOperations(
    podSpecPointer(subject.kind),
    previous.podSpec,
    applied.podSpec,
  );
  await sendChange(ctx, subject, change, operations, undefined);
  return { afterMs: 1000 };
}

/**
 * Sends the change and records the workload's generation after it; a refusal by the server ends
 * the change Failed with its message (held at `heldGeneration`, so it is not retried on the same
 * spec). False when refused.
 */
async function sendChange(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  operations: readonly JsonPatchOperation[],
  heldGeneration: number | undefined,
): Promise<boolean> {
  let patched: Obj;
  try {
    patched = await patchWorkload(ctx, subject, operations, false);
  } catch (error) {
    const refused = refusal(error);
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'PatchRefused',
      message: refused.message,
      ...(heldGeneration !== undefined ? { workloadGeneration: heldGeneration } : {}),
    });
    return false;
  }
  const generation = generationOf(patched);
  await writeApplied(ctx, subject, {
    ...change,
    ...(generation !== undefined ? { workloadGeneration: generation } : {}),
  });
  return true;
}

/**
 * The API server's definite refusal (a 4xx other than 429: a failed test, an admission webhook,
 * a quota); anything else is thrown again, for the worker to retry with backoff (status.applied
 * already says where to resume).
 */
function refusal(error: unknown): KubeApiError {
  if (error instanceof KubeApiError && error.status < 500 && error.status !== 429) return error;
  throw error;
}

async function revert(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  previous: PlacementState,
  applied: PlacementState,
): Promise<StepResult> {
  const operations = podSpecOperations(
    podSpecPointer(subject.kind),
    applied.podSpec,
    previous.podSpec,
  );
  try {
    await patchWorkload(ctx, subject, operations, false);
  } catch (error) {
    const refused = refusal(error);
    // A failed test: someone changed the fields since; theirs stay.
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'RevertRefused',
      message: `The revert was refused and nothing was overwritten: ${refused.message}`,
    });
    return {};
  }
  ctx.log.info('reverted', { ...subject.ref });
  return { afterMs: 1000 };
}

async function finishRevert(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
): Promise<StepResult> {
  const { ref, kind } = subject;
  ctx.setActive(ref, true);
  const previous = parseState(change.previousState);
  const applied = parseState(change.appliedState);
  const live = await readLive(ctx, subject);
  if (previous === undefined || applied === undefined || live === undefined) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: live === undefined ? 'WorkloadGone' : 'StateUnreadable',
      message: 'The revert could not be finished.',
    });
    return {};
  }
  const current = readPodPlacement(podSpecOf(kind, live) ?? {});
  // A restart between recording RollingBack and sending the revert: send it now.
  if (samePod(current, applied)) return revert(ctx, subject, change, previous, applied);
  if (!samePod(current, previous)) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'ChangedByOthers',
      message:
        'Someone else changed the fields kopek set during the revert; kopek left them as they are.',
      ...heldAt(live),
    });
    return {};
  }
  const pending = rolloutInProgress(kind, live);
  const now = ctx.clock.now();
  const since = Date.parse(change.updatedAt ?? change.appliedAt);
  const timeoutMs = policyOf(ctx, ref).apply.progressTimeoutSeconds * 1000;
  if (pending !== undefined && now - since < timeoutMs) return { afterMs: 1000 };
  const generation = generationOf(live);
  await finish(ctx, subject, change, {
    outcome: 'RolledBack',
    reason: change.reason ?? 'RolloutFailed',
    message:
      pending === undefined
        ? `${change.message ?? 'The rollout failed.'} The previous pod template is restored and rolled out.`
        : `${change.message ?? 'The rollout failed.'} The previous pod template is restored; its rollout is still not finished: ${pending}.`,
    ...(generation !== undefined ? { workloadGeneration: generation } : {}),
  });
  return {};
}

/** Holds a failed workload at its current spec: kopek tries again once the spec moves on. */
function heldAt(live: Obj): Pick<AppliedChange, 'workloadGeneration'> {
  const generation = generationOf(live);
  return generation !== undefined ? { workloadGeneration: generation } : {};
}

function samePod(current: PlacementState['podSpec'], state: PlacementState): boolean {
  return sameValue(current, state.podSpec);
}

/** The rollout verdict from the live workload and its pods (read live: the cache keeps no restarts). */
async function judge(
  ctx: ApplyContext,
  subject: Subject,
  live: Obj,
  change: AppliedChange,
): Promise<RolloutVerdict & { facts: ReturnType<typeof rolloutFacts> }> {
  const { ref, kind } = subject;
  const namespace = ref.namespace;
  const pods = await ctx.client.listPage<Obj>(RESOURCES.pods, { namespace });
  const replicaSets =
    kind === 'Deployment'
      ? (await ctx.client.listPage<Obj>(RESOURCES.replicasets, { namespace })).items
      : undefined;
  const jobs =
    kind === 'CronJob'
      ? (await ctx.client.listPage<Obj>(RESOURCES.jobs, { namespace })).items
      : undefined;
  const startedAt = Date.parse(change.appliedAt);
  const facts = rolloutFacts(kind, {
    workload: live,
    pods: pods.items,
    ...(replicaSets ? { replicaSets } : {}),
    ...(jobs ? { jobs } : {}),
    nodes: (name) => ctx.cache.get('nodes', name)?.metadata.labels,
    changedAt: startedAt,
  });
  const verdict = rolloutVerdict(facts, {
    startedAt,
    now: ctx.clock.now(),
    progressTimeoutMs: policyOf(ctx, ref).apply.progressTimeoutSeconds * 1000,
    settleMs: ctx.settleMs,
  });
  return { ...verdict, facts };
}
