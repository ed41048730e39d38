/**
 * Which approved actions Apply mode may make on a workload now, or the one reason it may not.
 * Each refusal has a stable code (listed in recommender/README.md). Checks are in two steps:
 * `decide` from what the caches know (policy, verdicts, approvals, the last attempt), then
 * `liveRefusal` from the live workload and its PodDisruptionBudgets, read just before patching;
 * the cluster-wide limit is checked last (`concurrencyRefusal`).
 */
import {
  OPTIMIZATIONS,
  type AppliedChange,
  type Optimization,
  type Verdict,
  type WorkloadKind,
} from '../api/v1alpha1.ts';
import type { WorkloadFacts } from '../facts.ts';
import { ownerName } from '../owner.ts';
import { matchesSelector } from '../policy.ts';
import { listOf } from '../reasons.ts';
import { recommendationName } from '../recommend.ts';
import { gitOpsManager } from './gitops.ts';
import { podSpecSegments } from './placement.ts';

export type RefusalCode =
  | 'NotApplyMode'
  | 'NothingToApply'
  | 'KindNotSupported'
  | 'ActionNotAllowed'
  | 'VerdictNotActionable'
  | 'NotApproved'
  | 'ApplyDisabled'
  | 'GitOpsManaged'
  | 'HeldAfterFailure'
  | 'CoolingDown'
  | 'OwnedByController'
  | 'TemplateFromWorkloadRef'
  | 'RolloutPaused'
  | 'RolloutInProgress'
  | 'UpdateStrategyBlocksRollout'
  | 'DisruptionBudgetExhausted'
  | 'MaxConcurrentReached'
  | 'AlreadyApplied';

export interface Refusal {
  code: RefusalCode;
  message: string;
  /** Not worth an Event: the usual state of a workload nobody asked kopek to change. */
  quiet: boolean;
  /** When the refusal may no longer hold (cooldown end), in ms since the epoch. */
  retryAt?: number;
}

export type Decision = { actions: Optimization[] } | { refusal: Refusal };

/** The actions kopek can apply to each kind (DaemonSets run on every node: arm64 only). */
export const SUPPORTED_ACTIONS: Readonly<Record<WorkloadKind, readonly Optimization[]>> = {
  Deployment: ['Spot', 'Arm64', 'CrossZone'],
  StatefulSet: ['Spot', 'Arm64', 'CrossZone'],
  Rollout: ['Spot', 'Arm64', 'CrossZone'],
  CronJob: ['Spot', 'Arm64'],
  DaemonSet: ['Arm64'],
  Job: [],
  ReplicaSet: [],
};

export interface DecideInput {
  facts: WorkloadFacts;
  /** Per action: Recommended, or Possible with only what the patch itself does required. */
  actionable: Readonly<Record<Optimization, boolean>>;
  /** Per action, its verdict now (to say why an approved one is not actionable). */
  verdicts?: Readonly<Partial<Record<Optimization, Verdict>>>;
  /** The recommendation's spec.approve. */
  approved: readonly Optimization[];
  /** kopek runs with --enable-apply. */
  applyEnabled: boolean;
  /** status.applied: the last attempt. */
  last?: AppliedChange | undefined;
  /** The workload's metadata.generation as cached. */
  generation?: number | undefined;
  now: number;
}

function refuse(code: RefusalCode, message: string, quiet = false, retryAt?: number): Decision {
  return { refusal: { code, message, quiet, ...(retryAt !== undefined ? { retryAt } : {}) } };
}

function approveCommand(facts: WorkloadFacts, actions: readonly Optimization[]): string {
  return `kubectl patch wrec ${recommendationName(facts.kind, facts.name)} -n ${facts.namespace} --type=merge -p '{"spec":{"approve":${JSON.stringify(actions)}}}'`;
}

/** When the last change ended (or started, for one still recorded as just applied). */
function lastChangeAt(last: AppliedChange): number {
  const times = [last.appliedAt, last.updatedAt].map((t) => (t ? Date.parse(t) : NaN));
  return Math.max(...times.filter((t) => Number.isFinite(t)), 0);
}

/** The last change failed or was rolled back on this same spec: kopek does not try again yet. */
function heldAfterFailure(
  last: AppliedChange | undefined,
  generation: number | undefined,
): Decision | undefined {
  if (last === undefined || (last.outcome !== 'RolledBack' && last.outcome !== 'Failed'))
    return undefined;
  const held =
    last.workloadGeneration === undefined ||
    generation === undefined ||
    generation <= last.workloadGeneration;
  if (!held) return undefined;
  return refuse(
    'HeldAfterFailure',
    `The last change (${listOf(last.actions)}) ended ${last.outcome}${last.reason ? ` (${last.reason})` : ''}; kopek tries again once the workload's spec changes, or when a person sets status.applied.outcome to Cleared.`,
  );
}

/**
 * Approved actions that are no longer actionable: done, when they are what kopek's last change
 * did (quiet); else, while kopek's last change cools down, CoolingDown — right after a change the
 * verdicts move with the pods (where the scheduler put them, which are still terminating), so the
 * approval is judged once the cooldown is over; else no longer recommended, naming the verdicts.
 */
function staleApproval(
  stale: readonly Optimization[],
  input: Pick<DecideInput, 'last' | 'now' | 'verdicts' | 'facts'>,
): Decision {
  const { last } = input;
  if (last?.outcome === 'Succeeded' && stale.every((a) => last.actions.includes(a)))
    return refuse(
      'AlreadyApplied',
      `${listOf(stale)} ${stale.length === 1 ? 'was' : 'were'} applied at ${last.updatedAt ?? last.appliedAt}.`,
      true,
    );
  const cooling = coolingDown(input);
  if (cooling) return cooling;
  const verdicts = stale.flatMap((a) => {
    const verdict = input.verdicts?.[a];
    return verdict === undefined ? [] : [`${a} ${verdict}`];
  });
  return refuse(
    'VerdictNotActionable',
    `${listOf(stale)} ${stale.length === 1 ? 'is' : 'are'} approved, but no longer recommended${verdicts.length > 0 ? ` (${listOf(verdicts)})` : ''}: kopek applies only Recommended changes, or Possible ones that the patch itself completes.`,
  );
}

/** CoolingDown while the policy's cooldown after kopek's last change runs, else undefined. */
function coolingDown(input: Pick<DecideInput, 'last' | 'now' | 'facts'>): Decision | undefined {
  const { last, now } = input;
  if (last === undefined || last.outcome === 'Cleared') return undefined;
  const until = lastChangeAt(last) + input.facts.policy.apply.cooldownSeconds * 1000;
  if (now >= until) return undefined;
  return refuse(
    'CoolingDown',
    `kopek changed this workload at ${new Date(lastChangeAt(last)).toISOString()}; the policy's cooldown lasts until ${new Date(until).toISOString()}.`,
    false,
    until,
  );
}

/**
 * What the caches allow: the policy is in Apply mode, the action is in spec.apply.actions and
 * actionable, a person approved it (requireApproval), Apply is enabled, Git does not manage the
 * workload, the last attempt did not fail on this same spec, and the cooldown is over.
 */
export function decide(input: DecideInput): Decision {
  const { facts, last } = input;
  const { policy } = facts;
  if (policy.mode !== 'Apply')
    return refuse(
      'NotApplyMode',
      `SavingsPolicy ${policy.name ?? '(default)'} only recommends.`,
      true,
    );
  const supported = SUPPORTED_ACTIONS[facts.kind];
  const allowed = policy.apply.actions.filter((a) => supported.includes(a));
  const approved = input.approved.filter((a) => supported.includes(a));
  const wanted = policy.apply.requireApproval ? approved : allowed;
  const actionable = allowed.filter((a) => input.actionable[a]);
  if (supported.length === 0) {
    return refuse(
      'KindNotSupported',
      `kopek does not change a ${facts.kind}'s pods in place; change what creates it.`,
      input.approved.length === 0,
    );
  }
  const owner = ownerName(facts);
  if (owner !== undefined) {
    // Its owner writes its spec: a patch would be undone, so Apply never starts one.
    return refuse(
      'OwnedByController',
      `${owner} controls it and would undo a direct change; change it through its owner.`,
      input.approved.length === 0,
    );
  }
  const notAllowed = approved.filter((a) => !policy.apply.actions.includes(a));
  const approvedActionable = OPTIMIZATIONS.filter(
    (a) => wanted.includes(a) && allowed.includes(a) && input.actionable[a],
  );
  if (approvedActionable.length === 0) {
    if (notAllowed.length > 0)
      return refuse(
        'ActionNotAllowed',
        `${listOf(notAllowed)} ${notAllowed.length === 1 ? 'is' : 'are'} approved, but SavingsPolicy ${policy.name ?? '(default)'} does not list ${notAllowed.length === 1 ? 'it' : 'them'} in spec.apply.actions.`,
      );
    // Only a person's approval of something no longer recommended is worth saying.
    const stale = policy.apply.requireApproval ? wanted.filter((a) => allowed.includes(a)) : [];
    // While held after a failure, that is what to say, however the verdict moves meanwhile.
    if (stale.length > 0)
      return heldAfterFailure(last, input.generation) ?? staleApproval(stale, input);
    if (policy.apply.requireApproval && actionable.length > 0)
      return refuse(
        'NotApproved',
        `${listOf(actionable)} can be applied once a person approves: ${approveCommand(facts, actionable)}`,
      );
    return refuse(
      'NothingToApply',
      'Nothing that the policy lets kopek apply is recommended.',
      true,
    );
  }
  if (!input.applyEnabled)
    return refuse(
      'ApplyDisabled',
      `${listOf(approvedActionable)} would be applied, but this kopek runs without --enable-apply (the chart's apply.enabled).`,
    );
  const manager = gitOpsManager(facts.labels, facts.annotations);
  if (manager !== undefined && !policy.apply.allowGitOpsManaged)
    return refuse(
      'GitOpsManaged',
      `Managed by ${manager}: kopek does not patch it unless the policy sets allowGitOpsManaged; commit the suggested patch (status.suggestedPatch) to Git.`,
    );
  const held = heldAfterFailure(last, input.generation);
  if (held) return held;
  const cooling = coolingDown(input);
  if (cooling) return cooling;
  return { actions: approvedActionable };
}

type Obj = Record<string, unknown>;

function obj(value: unknown): Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : {};
}

function num(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value !== '' && Number.isFinite(Number(value)))
    return Number(value);
  return undefined;
}

/** Why the workload's own rollout is not finished, or undefined when it is. */
export function rolloutInProgress(kind: WorkloadKind, workload: Obj): string | undefined {
  const meta = obj(workload.metadata);
  const spec = obj(workload.spec);
  const status = obj(workload.status);
  const generation = num(meta.generation) ?? 0;
  const observed = num(status.observedGeneration);
  const wanted = num(spec.replicas) ?? 1;
  if (kind !== 'CronJob' && (observed === undefined || observed < generation))
    return 'its controller has not yet observed its latest spec';
  switch (kind) {
    case 'Deployment':
    case 'StatefulSet': {
      const updated = num(status.updatedReplicas) ?? 0;
      const available = num(status.availableReplicas) ?? 0;
      const total = num(status.replicas) ?? 0;
      if (kind === 'StatefulSet' && status.currentRevision !== status.updateRevision)
        return 'it is rolling out a new revision';
      if (updated < wanted || total > wanted) return `${updated} of ${wanted} replicas are updated`;
      if (available < wanted) return `${available} of ${wanted} replicas are available`;
      return undefined;
    }
    case 'DaemonSet': {
      const desired = num(status.desiredNumberScheduled) ?? 0;
      const updated = num(status.updatedNumberScheduled) ?? 0;
      const available = num(status.numberAvailable) ?? 0;
      if (updated < desired) return `${updated} of ${desired} pods are updated`;
      if (available < desired) return `${available} of ${desired} pods are available`;
      return undefined;
    }
    case 'Rollout':
      return status.phase === 'Healthy'
        ? undefined
        : `its phase is ${typeof status.phase === 'string' ? status.phase : 'unknown'}`;
    default:
      return undefined;
  }
}

export interface LiveInput {
  kind: WorkloadKind;
  /** The live workload. */
  workload: Obj;
  /** The live PodDisruptionBudgets of its namespace. */
  pdbs: readonly Obj[];
}

/** What only the live objects tell: ownership, a rollout under way or paused, a spent PDB. */
export function liveRefusal(input: LiveInput): Refusal | undefined {
  const { kind, workload } = input;
  const spec = obj(workload.spec);
  const status = obj(workload.status);
  const owner = (obj(workload.metadata).ownerReferences as Obj[] | undefined)?.find(
    (ref) => obj(ref).controller === true,
  );
  const refusal = (code: RefusalCode, message: string): Refusal => ({
    code,
    message,
    quiet: false,
  });
  if (owner !== undefined)
    return refusal(
      'OwnedByController',
      `${String(owner.kind)} ${String(owner.name)} controls it and would undo a direct change; change it through its owner.`,
    );
  if (kind === 'Rollout' && spec.workloadRef !== undefined)
    return refusal(
      'TemplateFromWorkloadRef',
      "Its pod template comes from spec.workloadRef; kopek changes the referenced workload's template, not the Rollout.",
    );
  const strategy = obj(spec.updateStrategy);
  if (
    (kind === 'StatefulSet' || kind === 'DaemonSet') &&
    (strategy.type === 'OnDelete' || (num(obj(strategy.rollingUpdate).partition) ?? 0) > 0)
  )
    return refusal(
      'UpdateStrategyBlocksRollout',
      'Its update strategy (OnDelete or a partition) would not roll the change out to every pod.',
    );
  const paused =
    spec.paused === true ||
    (kind === 'CronJob' && spec.suspend === true) ||
    (kind === 'Rollout' &&
      (status.phase === 'Paused' ||
        (Array.isArray(status.pauseConditions) && status.pauseConditions.length > 0)));
  if (paused)
    return refusal(
      'RolloutPaused',
      'It is paused (or suspended); kopek waits until it is resumed.',
    );
  const progress = rolloutInProgress(kind, workload);
  if (progress !== undefined)
    return refusal('RolloutInProgress', `Its own rollout is not finished: ${progress}.`);
  const template = obj(podTemplateOf(kind, workload));
  const labels = obj(obj(template.metadata).labels) as Record<string, string>;
  for (const pdb of input.pdbs) {
    const selector = obj(obj(pdb).spec).selector;
    if (selector === undefined) continue;
    if (!matchesSelector(selector as Parameters<typeof matchesSelector>[0], labels)) continue;
    const allowed = num(obj(obj(pdb).status).disruptionsAllowed);
    if (allowed === 0)
      return refusal(
        'DisruptionBudgetExhausted',
        `PodDisruptionBudget ${String(obj(obj(pdb).metadata).name)} allows no disruption right now.`,
      );
  }
  return undefined;
}

function podTemplateOf(kind: WorkloadKind, workload: Obj): unknown {
  let at: unknown = workload;
  for (const segment of podSpecSegments(kind).slice(0, -1)) at = obj(at)[segment];
  return at;
}

/** The cluster-wide limit: `inFlight` rollouts kopek watches now against the policy's limit. */
export function concurrencyRefusal(inFlight: number, maxConcurrent: number): Refusal | undefined {
  if (inFlight < maxConcurrent) return undefined;
  return {
    code: 'MaxConcurrentReached',
    message: `kopek is already rolling out ${inFlight} change${inFlight === 1 ? '' : 's'}; the policy allows ${maxConcurrent} at once.`,
    quiet: false,
  };
}
