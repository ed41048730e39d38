/**
 * What a workload's controller and the objects around it say: replicas, selector, the
 * HorizontalPodAutoscaler that scales it, the PodDisruptionBudget that limits evictions, and
 * for Jobs and CronJobs their retries, deadlines and observed run time.
 */
import type { HpaFacts, JobFacts, PdbFacts } from '../facts.ts';
import { matchesSelector } from '../policy.ts';
import { kindIn, type Index } from './index.ts';
import { int, obj, objs, ownerOf, str, strMap, type K8s, type Obj } from './read.ts';

function percentOrInt(v: unknown, total: number): number | undefined {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(str(v) ?? '');
  return m?.[1] === undefined ? undefined : Math.ceil((total * Number(m[1])) / 100);
}

export function pdbFor(
  w: K8s,
  labels: Record<string, string>,
  replicas: number,
  index: Index,
): PdbFacts | undefined {
  let best: PdbFacts | undefined;
  for (const p of kindIn(index, 'PodDisruptionBudget', w.meta.namespace)) {
    const spec = obj(p.raw.spec);
    const selector = obj(spec.selector);
    if (Object.keys(selector).length === 0) continue;
    if (!matchesSelector(selector, labels)) continue;
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

export function hpaFor(w: K8s, index: Index): HpaFacts | undefined {
  for (const h of kindIn(index, 'HorizontalPodAutoscaler', w.meta.namespace)) {
    const spec = obj(h.raw.spec);
    const target = obj(spec.scaleTargetRef);
    if (target.kind !== w.kind || target.name !== w.meta.name) continue;
    return {
      name: h.meta.name,
      minReplicas: int(spec.minReplicas) ?? 1,
      maxReplicas: int(spec.maxReplicas) ?? 1,
    };
  }
  return undefined;
}

export function jobFacts(w: K8s, jobSpec: Obj, index: Index): JobFacts {
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
  const jobs =
    w.kind === 'Job'
      ? [w]
      : kindIn(index, 'Job', w.meta.namespace).filter((j) => ownerOf(j.meta)?.name === w.meta.name);
  let latest: { start: number; seconds: number } | undefined;
  for (const j of jobs) {
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
