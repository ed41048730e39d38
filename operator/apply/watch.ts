/**
 * The change in flight (InProgress): the first part sent if a restart cut it off, the fields still
 * as kopek set them (else it stops), the rollout judged from the live workload and its pods, then
 * Succeeded — with CrossZone's Services changed once the pod template has rolled out — or the
 * revert (revert.ts).
 */
import type { AppliedChange, Optimization } from '../../recommender/api/v1alpha1.ts';
import { changesAnything, podSpecOperations } from '../../recommender/apply/operations.ts';
import {
  podSpecOf,
  podSpecPointer,
  readPodPlacement,
  type PlacementState,
} from '../../recommender/apply/placement.ts';
import {
  rolloutFacts,
  rolloutVerdict,
  shareOnTarget,
  type RolloutVerdict,
} from '../../recommender/apply/rollout.ts';
import { realizedSavings } from '../../recommender/apply/savings.ts';
import { listOf } from '../../recommender/reasons.ts';
import { RESOURCES } from '../kube/resources.ts';
import { rfc3339 } from '../time.ts';
import { failed } from './revert.ts';
import { changePendingServices, whereServices } from './services.ts';
import {
  finish,
  generationOf,
  heldAt,
  patchWorkload,
  policyOf,
  readLive,
  recordedStates,
  refusal,
  samePod,
  stopChangedByOthers,
  wherePod,
  writeApplied,
  type ApplyContext,
  type Obj,
  type StepResult,
  type Subject,
} from './step.ts';

export async function watch(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
): Promise<StepResult> {
  const { ref, kind } = subject;
  ctx.setActive(ref, true);
  const states = recordedStates(change);
  if (states === undefined) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: 'StateUnreadable',
      message: 'status.applied does not hold states kopek can read; nothing was changed.',
    });
    return {};
  }
  const { previous, applied } = states;
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
    return stopChangedByOthers(
      ctx,
      subject,
      change,
      live,
      `Someone else changed the fields kopek set while the change rolled out${named.length > 0 ? ` (${named.join(', ')})` : ''}; kopek stopped and left the workload as they left it.`,
    );
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
export async function sendFirstPart(
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
