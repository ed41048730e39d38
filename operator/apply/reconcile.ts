/**
 * One step of Apply mode for one workload, driven by its recommendation's status.applied, so a
 * restarted (or newly elected) kopek continues exactly where the last one stopped:
 *
 * - no change in flight → decide (recommender/apply/eligibility.ts); if allowed, GET the live
 *   workload, check it live, record InProgress with the previous and the planned state, THEN
 *   send the guarded JSON patch. A refused patch is Failed with the server's message.
 * - InProgress → the live fields must still be what kopek set (else a person changed them:
 *   Failed, left alone); judge the rollout; Succeeded, or RollingBack then the revert patch.
 *   CrossZone's Service change follows the pod template once it has rolled out (sendFirstPart
 *   says why); with no pod change it is sent at once and the pods are watched as for any change.
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
import {
  changesAnything,
  podSpecOperations,
  serviceOperations,
  servicesToChange,
  type JsonPatchOperation,
} from '../../recommender/apply/operations.ts';
import {
  parseState,
  podSpecOf,
  podSpecPointer,
  readPodPlacement,
  readServicePlacement,
  sameValue,
  serializeState,
  type PlacementState,
  type PodPlacement,
  type ServicePlacement,
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
  if (wrec === undefined) {
    // Deleted (with its workload, by the garbage collector): a change it had in flight is over.
    ctx.setActive(ref, false);
    return {};
  }
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
    verdicts: evaluation.verdicts,
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
  const crossZone = actions.includes('CrossZone') ? evaluation.crossZone : undefined;
  const services = await readServices(
    ctx,
    ref.namespace,
    (crossZone?.services ?? []).map((s) => s.name),
  );
  const previous: PlacementState = {
    podSpec: readPodPlacement(podSpec),
    services: [...services.values()].map((s) => s.placement),
  };
  const planned = plannedState({
    facts,
    actions,
    ...(crossZone ? { crossZone } : {}),
    live: previous,
  });
  const podOperations = podSpecOperations(podSpecPointer(kind), previous.podSpec, planned.podSpec);
  const serviceChanges = servicesToChange(previous, planned);
  const changesPod = changesAnything(podOperations);
  if (!changesPod && serviceChanges.length === 0)
    return {
      refusal: {
        code: 'AlreadyApplied',
        message: `The pod template${crossZone ? ' and its Services' : ''} already do what ${listOf(actions)} would change.`,
        quiet: true,
      },
      rollingOut: false,
    };

  if (ctx.dryRun) {
    // Sent and logged once per distinct change, not again at every resync.
    const key = workloadKey(ref.namespace, ref.kind, ref.name);
    const change = JSON.stringify([podOperations, serviceChanges]);
    if (ctx.dryRunsSent.get(key) === change) return { rollingOut: false };
    try {
      if (changesPod) await patchWorkload(ctx, subject, podOperations, true);
      await patchServices(ctx, subject, serviceChanges, services, true);
      ctx.log.info('dry run: would apply', {
        ...ref,
        actions,
        operations: podOperations,
        ...(serviceChanges.length > 0 ? { services: serviceChanges } : {}),
      });
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
  // The pod template first, the Services once it has rolled out (see sendFirstPart).
  if (!(await sendFirstPart(ctx, subject, inProgress, previous, planned, live)))
    return { rollingOut: false };
  ctx.log.info('applied', { ...ref, actions });
  await ctx.events.record(
    subject.involved,
    'Normal',
    'Applied',
    changesPod && serviceChanges.length > 0
      ? `kopek applied ${listOf(actions)} to the pod template; watching the rollout, then Service ${listOf(serviceChanges.map((c) => c.name))} follows.`
      : `kopek applied ${listOf(actions)}; watching the rollout.`,
  );
  return { afterMs: Math.min(ctx.settleMs, 5000), rollingOut: true };
}

/** A Service as read live: the fields kopek changes, and its annotations for the guarded patch. */
interface LiveService {
  placement: ServicePlacement;
  annotations: Record<string, unknown> | undefined;
}

/** The named Services of the namespace as they are now; a missing one is left out. */
async function readServices(
  ctx: ApplyContext,
  namespace: string,
  names: readonly string[],
): Promise<Map<string, LiveService>> {
  const out = new Map<string, LiveService>();
  for (const name of names) {
    let service: Obj;
    try {
      service = await ctx.client.get<Obj>(RESOURCES.services, name, namespace);
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) continue;
      throw error;
    }
    const annotations = obj(service.metadata).annotations;
    out.set(name, {
      placement: readServicePlacement(service),
      annotations:
        typeof annotations === 'object' && annotations !== null ? obj(annotations) : undefined,
    });
  }
  return out;
}

interface ServiceChange {
  name: string;
  from: ServicePlacement;
  to: ServicePlacement;
}

/**
 * Moves each Service from `from` to `to` with a guarded JSON patch (its tests fail, and nothing
 * is written, if someone changed the fields since they were read). Services are separate
 * objects, so this is not atomic across them: when one is refused, those already changed by
 * this call are moved back before the refusal is thrown, so none is left half-done.
 */
async function patchServices(
  ctx: ApplyContext,
  subject: Subject,
  changes: readonly ServiceChange[],
  live: ReadonlyMap<string, LiveService>,
  dryRun: boolean,
): Promise<void> {
  const namespace = subject.ref.namespace;
  const sent: ServiceChange[] = [];
  const send = (name: string, operations: JsonPatchOperation[], asDryRun: boolean) =>
    ctx.client.patch<Obj>(RESOURCES.services, name, namespace, operations, {
      fieldManager: APPLY_FIELD_MANAGER,
      dryRun: asDryRun,
    });
  for (const change of changes) {
    const annotations = live.get(change.name)?.annotations;
    try {
      await send(change.name, serviceOperations(annotations, change.from, change.to), dryRun);
    } catch (error) {
      const refused = error instanceof KubeApiError ? error.message : String(error);
      for (const done of sent) {
        const now = await readServices(ctx, namespace, [done.name]);
        await send(
          done.name,
          serviceOperations(now.get(done.name)?.annotations, done.to, done.from),
          false,
        ).catch((undo: unknown) => {
          ctx.log.warn('could not restore a Service after another was refused', {
            ...subject.ref,
            service: done.name,
            refused,
            error: undo instanceof Error ? undo.message : String(undo),
          });
        });
      }
      if (error instanceof KubeApiError)
        throw new KubeApiError(error.status, error.reason, `Service ${change.name}: ${refused}`);
      throw error;
    }
    if (!dryRun) sent.push(change);
  }
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

/** Where one part of a change is now: as before it, as kopek set it, or changed by someone else. */
type Where = 'previous' | 'applied' | 'other';

function wherePod(current: PodPlacement, previous: PlacementState, applied: PlacementState): Where {
  if (samePod(current, previous)) return 'previous';
  return samePod(current, applied) ? 'applied' : 'other';
}

/** A Service the change moves, read live, and where it is; a deleted one is `undefined`. */
interface ServiceState {
  change: ServiceChange;
  where: Where | undefined;
  live?: LiveService;
}

/** Each Service the change moves, read live, and where it is. */
async function whereServices(
  ctx: ApplyContext,
  subject: Subject,
  previous: PlacementState,
  applied: PlacementState,
): Promise<ServiceState[]> {
  const changes = servicesToChange(previous, applied);
  const live = await readServices(
    ctx,
    subject.ref.namespace,
    changes.map((c) => c.name),
  );
  return changes.map((change) => {
    const service = live.get(change.name);
    if (service === undefined) return { change, where: undefined };
    const at = service.placement;
    const where: Where = sameService(at, change.from)
      ? 'previous'
      : sameService(at, change.to)
        ? 'applied'
        : 'other';
    return { change, where, live: service };
  });
}

/** Changes the Services that are still as before the change; their names. */
async function changePendingServices(
  ctx: ApplyContext,
  subject: Subject,
  states: readonly ServiceState[],
): Promise<string[]> {
  const pending = states.filter((s) => s.where === 'previous');
  await patchServices(
    ctx,
    subject,
    pending.map((s) => s.change),
    liveOf(pending),
    false,
  );
  return pending.map((s) => s.change.name);
}

/** The live Services of `states`, by name, for patchServices. */
function liveOf(states: readonly ServiceState[]) {
  return new Map(
    states.flatMap((s): [string, LiveService][] => (s.live ? [[s.change.name, s.live]] : [])),
  );
}

function sameService(a: ServicePlacement, b: ServicePlacement): boolean {
  return (
    sameValue(a.trafficDistribution, b.trafficDistribution) &&
    sameValue(a.topologyMode, b.topologyMode)
  );
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
  const pod = wherePod(current, previous, applied);
  const changesPod = !samePod(previous.podSpec, applied);
  if (change.workloadGeneration === undefined && pod === 'previous') {
    // Stopped after recording the change but before the patch was confirmed: send it now (its
    // tests fail, and nothing is written, if the workload moved on since).
    await sendFirstPart(ctx, subject, change, previous, applied, live);
    return { afterMs: 1000 };
  }
  const services = await whereServices(ctx, subject, previous, applied);
  // The Services are still as before while the pod template rolls out (they follow it); once
  // kopek changed them (no pod part: at once), they must stay as it set them.
  const servicesMoved = services.filter(
    (s) => s.where !== 'applied' && (s.where !== 'previous' || !changesPod),
  );
  if ((changesPod && pod !== 'applied') || servicesMoved.length > 0) {
    const named = servicesMoved.map((s) =>
      s.where === undefined ? `Service ${s.change.name} was deleted` : `Service ${s.change.name}`,
    );
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'ChangedByOthers',
      message: `Someone else changed the fields kopek set while the change rolled out${named.length > 0 ? ` (${named.join(', ')})` : ''}; kopek stopped and left the workload as they left it.`,
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
    let pending: string[] = [];
    if (services.some((s) => s.where === 'previous')) {
      // The pod template has rolled out and settled: now the Services route in-zone.
      try {
        pending = await changePendingServices(ctx, subject, services);
      } catch (error) {
        const refused = refusal(error);
        return failed(ctx, subject, change, current, {
          reason: 'PatchRefused',
          message: `The pod template rolled out, but the Service change was refused: ${refused.message}`,
        });
      }
    }
    const facts = verdict.facts;
    const realized = realizedSavings(
      change.realizedSavings ?? [],
      change.expectedSavings ?? [],
      (a: Optimization) => shareOnTarget(facts, a),
    );
    await finish(ctx, subject, change, {
      outcome: 'Succeeded',
      reason: verdict.reason,
      message:
        pending.length > 0
          ? `${verdict.message} Service ${listOf(pending)} changed after it.`
          : verdict.message,
      realizedSavings: realized,
    });
    return {};
  }
  return failed(ctx, subject, change, current, verdict);
}

/** The change failed: revert it (recording RollingBack first), or stop when the policy says not to. */
async function failed(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  current: PodPlacement,
  why: { reason: string; message: string },
): Promise<StepResult> {
  if (!policyOf(ctx, subject.ref).apply.rollbackOnFailure) {
    await finish(ctx, subject, change, { outcome: 'Failed', ...why });
    return {};
  }
  // RollingBack is recorded before the revert is sent, so a restart finishes it.
  const rollingBack: AppliedChange = {
    ...change,
    outcome: 'RollingBack',
    reason: why.reason,
    message: why.message,
    updatedAt: rfc3339(new Date(ctx.clock.now())),
  };
  await writeApplied(ctx, subject, rollingBack);
  await ctx.events.record(
    subject.involved,
    'Warning',
    'RollingBack',
    `${listOf(change.actions)}: ${why.message} kopek restores the fields it changed.`,
  );
  return revert(ctx, subject, rollingBack, current);
}

/**
 * Sends the first part of a recorded change and records the workload's generation after it, which
 * marks the part as sent: the pod template when the change has a pod part, else the Services.
 *
 * Why the pod template goes first and the Services only once its rollout has succeeded (watch):
 * that is the order the cross-zone recommendation gives ("first spread the pods evenly over
 * zones, then route in-zone"). Routing in-zone before the pods are spread would send all of a
 * zone's traffic to the one or two endpoints that zone has during the rollout; and a pod change
 * that fails is reverted before any traffic was rerouted.
 *
 * A refusal by the server ends the change Failed with its message (held at `live`'s generation,
 * so it is not retried on the same spec). False when refused.
 */
async function sendFirstPart(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  previous: PlacementState,
  applied: PlacementState,
  live: Obj,
): Promise<boolean> {
  const operations = podSpecOperations(
    podSpecPointer(subject.kind),
    previous.podSpec,
    applied.podSpec,
  );
  let generation: number | undefined;
  try {
    if (changesAnything(operations))
      generation = generationOf(await patchWorkload(ctx, subject, operations, false));
    else {
      // After a restart some may be changed already; one changed by someone else is left to
      // the watch, which stops.
      await changePendingServices(
        ctx,
        subject,
        await whereServices(ctx, subject, previous, applied),
      );
      generation = generationOf(live);
    }
  } catch (error) {
    const refused = refusal(error);
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'PatchRefused',
      message: refused.message,
      ...heldAt(live),
    });
    return false;
  }
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

/**
 * Restores what kopek changed and is still as kopek set it: the Services first, so traffic is
 * spread over every endpoint again before the pods move back, then the pod template. Each patch
 * tests kopek's values, so a field someone else changed meanwhile is not overwritten.
 */
async function revert(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  current: PodPlacement,
): Promise<StepResult> {
  const previous = parseState(change.previousState);
  const applied = parseState(change.appliedState);
  if (previous === undefined || applied === undefined) return {};
  try {
    const services = (await whereServices(ctx, subject, previous, applied)).filter(
      (s) => s.where !== 'previous' && s.live !== undefined,
    );
    await patchServices(
      ctx,
      subject,
      services.map((s) => ({ name: s.change.name, from: s.change.to, to: s.change.from })),
      liveOf(services),
      false,
    );
    if (wherePod(current, previous, applied) !== 'previous')
      await patchWorkload(
        ctx,
        subject,
        podSpecOperations(podSpecPointer(subject.kind), applied.podSpec, previous.podSpec),
        false,
      );
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
  const pod = wherePod(current, previous, applied);
  const services = await whereServices(ctx, subject, previous, applied);
  // A restart between recording RollingBack and sending the revert: send it now.
  if (pod === 'applied' || services.some((s) => s.where === 'applied'))
    return revert(ctx, subject, change, current);
  // A deleted Service has nothing left to restore.
  if (pod === 'other' || services.some((s) => s.where === 'other')) {
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
  const restored = services.length > 0 ? 'pod template and Service fields are' : 'pod template is';
  await finish(ctx, subject, change, {
    outcome: 'RolledBack',
    reason: change.reason ?? 'RolloutFailed',
    message:
      pending === undefined
        ? `${change.message ?? 'The rollout failed.'} The previous ${restored} restored and rolled out.`
        : `${change.message ?? 'The rollout failed.'} The previous ${restored} restored; its rollout is still not finished: ${pending}.`,
    ...(generation !== undefined ? { workloadGeneration: generation } : {}),
  });
  return {};
}

/** Holds a failed workload at its current spec: kopek tries again once the spec moves on. */
function heldAt(live: Obj): Pick<AppliedChange, 'workloadGeneration'> {
  const generation = generationOf(live);
  return generation !== undefined ? { workloadGeneration: generation } : {};
}

function samePod(current: PodPlacement, state: PlacementState): boolean {
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
