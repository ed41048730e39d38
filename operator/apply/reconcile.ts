/**
 * One step of Apply mode for one workload, driven by its recommendation's status.applied, so a
 * restarted (or newly elected) kopek continues exactly where the last one stopped:
 *
 * - no change in flight → decide (recommender/apply/eligibility.ts); if allowed, GET the live
 *   workload, check it live, check that the approval and status.applied decided on are still the
 *   server's (isApprovalCurrent), record InProgress with the previous and the planned state, THEN
 *   send the guarded JSON patch. A refused patch is Failed with the server's message.
 * - InProgress (watch.ts) → the live fields must still be what kopek set (else a person changed
 *   them: Failed, left alone); judge the rollout; Succeeded, or RollingBack then the revert patch.
 *   CrossZone's Service change (services.ts) follows the pod template once it has rolled out
 *   (sendFirstPart says why); with no pod change it is sent at once and the pods are watched as
 *   for any change.
 * - RollingBack (revert.ts) → send the revert if it was not sent, wait until the rollback is
 *   rolled out, then RolledBack.
 *
 * What the steps share is in step.ts. Status is written before every change to the workload,
 * never after only.
 */
import type { AppliedChange, Optimization, WorkloadKind } from '../../recommender/api/v1alpha1.ts';
import { concurrencyRefusal, decide, liveRefusal } from '../../recommender/apply/eligibility.ts';
import {
  changesAnything,
  podSpecOperations,
  servicesToChange,
} from '../../recommender/apply/operations.ts';
import {
  podSpecOf,
  podSpecPointer,
  readPodPlacement,
  serializeState,
  type PlacementState,
} from '../../recommender/apply/placement.ts';
import { plannedState } from '../../recommender/apply/plan.ts';
import {
  type ActionEvaluation,
  evaluateActions,
  expectedSavings,
} from '../../recommender/apply/savings.ts';
import type { WorkloadFacts } from '../../recommender/facts.ts';
import { listOf } from '../../recommender/reasons.ts';
import { recommendationName } from '../../recommender/recommend.ts';
import type { ClusterCache } from '../cache.ts';
import { RESOURCES, type ResourceName } from '../kube/resources.ts';
import { workloadKey, type WorkloadRef } from '../recommendations/keys.ts';
import { rfc3339 } from '../time.ts';
import type { InvolvedObject } from './events.ts';
import { finishRevert } from './revert.ts';
import { patchServices, readServices } from './services.ts';
import {
  isApprovalCurrent,
  patchWorkload,
  readRecommendation,
  refusal,
  writeApplied,
  type ApplyContext,
  type Obj,
  type StepResult,
  type Subject,
} from './step.ts';
import { sendFirstPart, watch } from './watch.ts';

const WORKLOAD_RESOURCES: Partial<Record<WorkloadKind, ResourceName>> = {
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
  CronJob: 'cronjobs',
  Rollout: 'rollouts',
};

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
  const wrec = await readRecommendation(ctx, ref);
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
  if (!(await isApprovalCurrent(ctx, subject))) return { afterMs: 1000, rollingOut: false };
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
