/**
 * What a workload's controller and the objects around it say: replicas, selector, the
 * HorizontalPodAutoscaler that scales it, the PodDisruptionBudget that limits evictions, and
 * for Jobs and CronJobs their retries, deadlines and observed run time.
 */
import type { LabelSelector } from '../api/v1alpha1.ts';
import type { HpaFacts, JobFacts, PdbFacts } from '../facts.ts';
import { matchesSelector } from '../policy.ts';
import { kindList, type Index } from './index.ts';
import {
  describe,
  int,
  obj,
  objectKey,
  objs,
  ownerOf,
  shown,
  str,
  strMap,
  type K8s,
  type Obj,
} from './read.ts';
import { labelSelectorOf, SelectorIndex } from './selectors.ts';

function percentOrInt(v: unknown, total: number): number | undefined {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(str(v) ?? '');
  return m?.[1] === undefined ? undefined : Math.ceil((total * Number(m[1])) / 100);
}

/** A PodDisruptionBudget whose selector could be read. */
export interface Budget {
  pdb: K8s;
  selector: LabelSelector;
}

/**
 * The PodDisruptionBudgets with a selector, by the labels they select. One whose selector is
 * malformed gives a warning and is left out (matchesSelector would throw on it).
 */
export function readBudgets(index: Index): SelectorIndex<Budget> {
  const budgets = new SelectorIndex<Budget>();
  for (const pdb of kindList(index, 'PodDisruptionBudget')) {
    const budget = budgetOf(pdb, index.warnings);
    if (budget !== undefined) budgets.add(pdb.meta.namespace, budget.selector.matchLabels, budget);
  }
  return budgets;
}

/** One PodDisruptionBudget's entry (none without a selector; a warning when it is malformed). */
export function budgetOf(pdb: K8s, warnings: string[]): Budget | undefined {
  const raw = obj(pdb.raw.spec).selector;
  if (Object.keys(obj(raw)).length === 0) return undefined;
  const selector = labelSelectorOf(raw);
  if (selector === undefined)
    warnings.push(`${describe(pdb)}: spec.selector ${shown(raw)} is not a label selector; ignored`);
  else return { pdb, selector };
  return undefined;
}

/** The budget selecting `labels` that allows the fewest disruptions (the first on a tie). */
export function pdbFor(
  labels: Record<string, string>,
  replicas: number,
  budgets: readonly Budget[],
): PdbFacts | undefined {
  let best: PdbFacts | undefined;
  for (const { pdb: p, selector } of budgets) {
    if (!matchesSelector(selector, labels)) continue;
    const spec = obj(p.raw.spec);
    let allowed: number;
    const maxUnavailable = percentOrInt(spec.maxUnavailable, replicas);
    const minAvailable = percentOrInt(spec.minAvailable, replicas);
    if (maxUnavailable !== undefined) allowed = Math.min(maxUnavailable, replicas);
    else if (minAvailable !== undefined) allowed = Math.max(0, replicas - minAvailable);
    else allowed = int(obj(p.raw.status).disruptionsAllowed) ?? 0;
    if (best === undefined || allowed < best.disruptionsAllowed)
      best = { name: p.meta.name, disruptionsAllowed: allowed };
  }
  return best;
}

/** HPA facts by the workload they scale (`kind/namespace/name`); the first one wins. */
export function hpasByTarget(index: Index): Map<string, HpaFacts> {
  const out = new Map<string, HpaFacts>();
  for (const h of kindList(index, 'HorizontalPodAutoscaler')) {
    const scales = hpaOf(h);
    if (scales !== undefined && !out.has(scales.target)) out.set(scales.target, scales.facts);
  }
  return out;
}

/** What one HPA scales (`kind/namespace/name`) and its facts; none without a scaleTargetRef. */
export function hpaOf(h: K8s): { target: string; facts: HpaFacts } | undefined {
  const spec = obj(h.raw.spec);
  const target = obj(spec.scaleTargetRef);
  const kind = str(target.kind);
  const name = str(target.name);
  if (kind === undefined || name === undefined) return undefined;
  return {
    target: objectKey(kind, h.meta.namespace, name),
    facts: {
      name: h.meta.name,
      minReplicas: int(spec.minReplicas) ?? 1,
      maxReplicas: int(spec.maxReplicas) ?? 1,
    },
  };
}

/** Jobs by the name of their controlling owner (`namespace/name`): a CronJob's Jobs. */
export function jobsByOwner(index: Index): Map<string, K8s[]> {
  const out = new Map<string, K8s[]>();
  for (const j of kindList(index, 'Job')) {
    const key = jobOwnerKey(j);
    if (key === undefined) continue;
    const list = out.get(key);
    if (list === undefined) out.set(key, [j]);
    else list.push(j);
  }
  return out;
}

/** What jobsByOwner files a Job under: its controlling owner's `namespace/name`. */
export function jobOwnerKey(job: K8s): string | undefined {
  const owner = ownerOf(job.meta);
  return owner === undefined ? undefined : `${job.meta.namespace}/${owner.name}`;
}

/** A Job's or CronJob's facts; `jobs` are the Jobs a CronJob owns (see jobsByOwner). */
export function jobFacts(w: K8s, jobSpec: Obj, jobs: ReadonlyMap<string, K8s[]>): JobFacts {
  const out: JobFacts = {};
  const backoff = int(jobSpec.backoffLimit);
  const deadline = int(jobSpec.activeDeadlineSeconds);
  if (backoff !== undefined) out.backoffLimit = backoff;
  if (deadline !== undefined) out.activeDeadlineSeconds = deadline;
  const ignores = objs(obj(jobSpec.podFailurePolicy).rules).some(
    (r) =>
      r.action === 'Ignore' && objs(r.onPodConditions).some((c) => c.type === 'DisruptionTarget'),
  );
  if (ignores) out.ignoresDisruptions = true;
  // The run time of the Job itself, or of the CronJob's latest finished Job.
  const runs = w.kind === 'Job' ? [w] : (jobs.get(`${w.meta.namespace}/${w.meta.name}`) ?? []);
  let latest: { start: number; seconds: number } | undefined;
  for (const j of runs) {
    const status = obj(j.raw.status);
    const start = Date.parse(str(status.startTime) ?? '');
    const end = Date.parse(str(status.completionTime) ?? '');
    if (Number.isNaN(start) || Number.isNaN(end) || end < start) continue;
    if (latest === undefined || start > latest.start)
      latest = { start, seconds: (end - start) / 1000 };
  }
  if (latest !== undefined) out.observedRunSeconds = latest.seconds;
  return out;
}

export function replicasOf(w: K8s, jobSpec: Obj | undefined, pods: number): number {
  const spec = obj(w.raw.spec);
  if (w.kind === 'DaemonSet') return int(obj(w.raw.status).desiredNumberScheduled) ?? pods;
  if (jobSpec !== undefined) return int(jobSpec.parallelism) ?? 1;
  return int(spec.replicas) ?? 1;
}

export function selectorOf(w: K8s, templateLabels: Record<string, string>): Record<string, string> {
  if (w.kind === 'Job' || w.kind === 'CronJob') {
    // Jobs select on generated labels; the template's own labels are what a person recognises.
    return Object.fromEntries(
      Object.entries(templateLabels).filter(
        ([k]) =>
          !k.startsWith('batch.kubernetes.io/') && k !== 'controller-uid' && k !== 'job-name',
      ),
    );
  }
  const matchLabels = strMap(obj(obj(w.raw.spec).selector).matchLabels);
  return Object.keys(matchLabels).length > 0 ? matchLabels : templateLabels;
}
