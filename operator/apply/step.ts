/**
 * What every step of Apply mode shares: the context, the subject of a step, the recommendation
 * read and status.applied's writes and endings, the live workload and the guarded patch of its
 * pod template.
 */
import type {
  AppliedChange,
  WorkloadKind,
  WorkloadRecommendation,
} from '../../recommender/api/v1alpha1.ts';
import type { Refusal } from '../../recommender/apply/eligibility.ts';
import type { JsonPatchOperation } from '../../recommender/apply/operations.ts';
import {
  parseState,
  sameValue,
  type PlacementState,
  type PodPlacement,
} from '../../recommender/apply/placement.ts';
import type { ResolvedPolicy, WorkloadFacts } from '../../recommender/facts.ts';
import { DEFAULT_POLICY } from '../../recommender/policy.ts';
import type { PriceBook } from '../../recommender/pricing.ts';
import { listOf } from '../../recommender/reasons.ts';
import { recommendationName } from '../../recommender/recommend.ts';
import type { ClusterCache } from '../cache.ts';
import { canonicalJson } from '../canonical.ts';
import type { Clock } from '../clock.ts';
import { KubeApiError, type KubeApi, type ResourceType } from '../kube/client.ts';
import { RESOURCES } from '../kube/resources.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { workloadKey, type WorkloadRef } from '../recommendations/keys.ts';
import { rfc3339 } from '../time.ts';
import type { EventRecorder, InvolvedObject } from './events.ts';

/** kopek's field manager for the workloads it changes and for status.applied. */
export const APPLY_FIELD_MANAGER = 'kopek-apply';

export type Obj = Record<string, unknown>;

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
  /**
   * Per workload key, the resourceVersion of its recommendation that the cache must hold before
   * a step trusts it: what kopek's last write of status.applied answered, or what a live read
   * found; UNKNOWN_VERSION while a write's answer is pending, and for a change in flight when
   * this replica took the lease (see readRecommendation).
   */
  expectedVersions: Map<string, string>;
}

/** What the step wants next: look again after `afterMs`, or nothing until something changes. */
export interface StepResult {
  afterMs?: number;
  /** A refusal the caller reports once per code (not at every look). */
  refusal?: Refusal;
}

export function obj(value: unknown): Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : {};
}

export function generationOf(o: unknown): number | undefined {
  const g = obj(obj(o).metadata).generation;
  return typeof g === 'number' ? g : undefined;
}

/** Everything one step works on, found once. */
export interface Subject {
  ref: WorkloadRef;
  kind: WorkloadKind;
  type: ResourceType;
  wrec: WorkloadRecommendation;
  involved: InvolvedObject[];
}

export function policyOf(ctx: ApplyContext, ref: WorkloadRef): ResolvedPolicy {
  return ctx.facts(ref)?.policy ?? DEFAULT_POLICY;
}

/** A version no object has (the API server gives every stored one a version): read it live. */
export const UNKNOWN_VERSION = '';

export async function writeApplied(
  ctx: ApplyContext,
  subject: Subject,
  applied: AppliedChange,
): Promise<void> {
  // Until the answer comes, no cached version will do: a write whose answer is lost may have
  // been made, and the next step reads the recommendation live.
  expectVersion(ctx, subject.ref, UNKNOWN_VERSION);
  const written = await ctx.client.apply<WorkloadRecommendation>(
    RESOURCES.workloadrecommendations,
    {
      apiVersion: subject.wrec.apiVersion,
      kind: 'WorkloadRecommendation',
      metadata: { name: subject.wrec.metadata.name, namespace: subject.ref.namespace },
      status: { applied },
    },
    { fieldManager: APPLY_FIELD_MANAGER, subresource: 'status', force: true },
  );
  expectVersion(ctx, subject.ref, written.metadata.resourceVersion);
}

function expectVersion(ctx: ApplyContext, ref: WorkloadRef, version: string | undefined): void {
  const key = workloadKey(ref.namespace, ref.kind, ref.name);
  if (version === undefined) ctx.expectedVersions.delete(key);
  else ctx.expectedVersions.set(key, version);
}

/**
 * The workload's recommendation, from the cache unless the cache is behind the version expected
 * (ApplyContext.expectedVersions): a write of status.applied whose watch event has not arrived,
 * kopek's own (it can arrive after kopek looks again, and a step taken on the status before it
 * would be taken twice: a refused patch sent again) or another replica's. Then it is read live,
 * and the cache is trusted again once it holds what was read. Undefined when gone.
 */
export async function readRecommendation(
  ctx: ApplyContext,
  ref: WorkloadRef,
): Promise<WorkloadRecommendation | undefined> {
  const name = recommendationName(ref.kind, ref.name);
  const cached = ctx.cache.get('workloadrecommendations', `${ref.namespace}/${name}`) as
    WorkloadRecommendation | undefined;
  const key = workloadKey(ref.namespace, ref.kind, ref.name);
  const expected = ctx.expectedVersions.get(key);
  if (expected === undefined) return cached;
  if (cached?.metadata.resourceVersion === expected) {
    ctx.expectedVersions.delete(key);
    return cached;
  }
  const live = await getIfExists<WorkloadRecommendation>(
    ctx,
    RESOURCES.workloadrecommendations,
    name,
    ref.namespace,
  );
  expectVersion(ctx, ref, live?.metadata.resourceVersion);
  return live;
}

/**
 * Whether the approvals and status.applied a step read are still the API server's. A change
 * starts only from those: the cache can be behind a write of status.applied that was not this
 * process's (the leader's before it took the lease), and a change started on an older one would
 * be made over one in flight, or over a refusal held. When they are not, the next step reads the
 * recommendation as the server had it (live, unless the cache has caught up).
 */
export async function isApprovalCurrent(ctx: ApplyContext, subject: Subject): Promise<boolean> {
  const { ref, wrec } = subject;
  const live = await getIfExists<WorkloadRecommendation>(
    ctx,
    RESOURCES.workloadrecommendations,
    wrec.metadata.name,
    ref.namespace,
  );
  if (
    live !== undefined &&
    canonicalJson(approvalAndApplied(live)) === canonicalJson(approvalAndApplied(wrec))
  )
    return true;
  expectVersion(ctx, ref, live?.metadata.resourceVersion ?? UNKNOWN_VERSION);
  return false;
}

/** What a person approved, and what Apply mode recorded of its last change. */
function approvalAndApplied(wrec: WorkloadRecommendation): unknown {
  return [wrec.spec.approve ?? [], wrec.status?.applied ?? null];
}

export async function patchWorkload(
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

/**
 * The API server's definite refusal (a 4xx other than 429: a failed test, an admission webhook,
 * a quota); anything else is thrown again, for the worker to retry with backoff (status.applied
 * already says where to resume).
 */
export function refusal(error: unknown): KubeApiError {
  if (error instanceof KubeApiError && error.status < 500 && error.status !== 429) return error;
  throw error;
}

/** How a change ends, and whatever else status.applied records with it. */
export interface Ending extends Partial<AppliedChange> {
  outcome: 'Succeeded' | 'RolledBack' | 'Failed';
  reason: string;
  message: string;
}

/** Ends a change: writes the outcome, counts it, tells people. */
export async function finish(
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

/**
 * Someone else changed the fields kopek set (during the rollout or the revert): kopek stops,
 * Failed, writes nothing to the workload, and holds it at the spec they left.
 */
export async function stopChangedByOthers(
  ctx: ApplyContext,
  subject: Subject,
  change: AppliedChange,
  live: Obj,
  message: string,
): Promise<StepResult> {
  await finish(ctx, subject, change, {
    outcome: 'Failed',
    reason: 'ChangedByOthers',
    message,
    ...heldAt(live),
  });
  return {};
}

/** Holds a failed workload at its current spec: kopek tries again once the spec moves on. */
export function heldAt(live: Obj): Pick<AppliedChange, 'workloadGeneration'> {
  const generation = generationOf(live);
  return generation !== undefined ? { workloadGeneration: generation } : {};
}

/** The live workload, or undefined when it is gone (the change then ends Failed). */
export function readLive(ctx: ApplyContext, subject: Subject): Promise<Obj | undefined> {
  return getIfExists<Obj>(ctx, subject.type, subject.ref.name, subject.ref.namespace);
}

/** The object as the API server has it now, or undefined when it is not there (404). */
export async function getIfExists<T>(
  ctx: ApplyContext,
  type: ResourceType,
  name: string,
  namespace: string,
): Promise<T | undefined> {
  try {
    return await ctx.client.get<T>(type, name, namespace);
  } catch (error) {
    if (error instanceof KubeApiError && error.status === 404) return undefined;
    throw error;
  }
}

/** Where one part of a change is now: as before it, as kopek set it, or changed by someone else. */
export type Where = 'previous' | 'applied' | 'other';

export function wherePod(
  current: PodPlacement,
  previous: PlacementState,
  applied: PlacementState,
): Where {
  if (samePod(current, previous)) return 'previous';
  return samePod(current, applied) ? 'applied' : 'other';
}

export function samePod(current: PodPlacement, state: PlacementState): boolean {
  return sameValue(current, state.podSpec);
}

/** The states before and after the change that status.applied recorded, or undefined when unreadable. */
export function recordedStates(
  change: AppliedChange,
): { previous: PlacementState; applied: PlacementState } | undefined {
  const previous = parseState(change.previousState);
  const applied = parseState(change.appliedState);
  return previous === undefined || applied === undefined ? undefined : { previous, applied };
}
