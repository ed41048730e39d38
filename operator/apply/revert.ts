/**
 * The revert of a failed change: RollingBack recorded first, then the Services and the pod
 * template restored where they are still as kopek set them, then RolledBack once the rollback has
 * rolled out (or Failed when someone else changed the fields meanwhile).
 */
import type { AppliedChange } from '../../recommender/api/v1alpha1.ts';
import { rolloutInProgress } from '../../recommender/apply/eligibility.ts';
import { podSpecOperations } from '../../recommender/apply/operations.ts';
import {
  podSpecOf,
  podSpecPointer,
  readPodPlacement,
  type PodPlacement,
} from '../../recommender/apply/placement.ts';
import { listOf } from '../../recommender/reasons.ts';
import { rfc3339 } from '../time.ts';
import { liveOf, patchServices, whereServices } from './services.ts';
import {
  finish,
  generationOf,
  patchWorkload,
  policyOf,
  readLive,
  recordedStates,
  refusal,
  stopChangedByOthers,
  wherePod,
  writeApplied,
  type ApplyContext,
  type StepResult,
  type Subject,
} from './step.ts';

/** The change failed: revert it (recording RollingBack first), or stop when the policy says not to. */
export async function failed(
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
  const states = recordedStates(change);
  if (states === undefined) return {};
  const { previous, applied } = states;
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

export async function finishRevert(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
): Promise<StepResult> {
  const { ref, kind } = subject;
  ctx.setActive(ref, true);
  const states = recordedStates(change);
  const live = await readLive(ctx, subject);
  if (states === undefined || live === undefined) {
    await finish(ctx, subject, change, {
      outcome: 'Failed',
      reason: live === undefined ? 'WorkloadGone' : 'StateUnreadable',
      message: 'The revert could not be finished.',
    });
    return {};
  }
  const { previous, applied } = states;
  const current = readPodPlacement(podSpecOf(kind, live) ?? {});
  const pod = wherePod(current, previous, applied);
  const services = await whereServices(ctx, subject, previous, applied);
  // A restart between recording RollingBack and sending the revert: send it now.
  if (pod === 'applied' || services.some((s) => s.where === 'applied'))
    return revert(ctx, subject, change, current);
  // A deleted Service has nothing left to restore.
  if (pod === 'other' || services.some((s) => s.where === 'other')) {
    return stopChangedByOthers(
      ctx,
      subject,
      change,
      live,
      'Someone else changed the fields kopek set during the revert; kopek left them as they are.',
    );
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
