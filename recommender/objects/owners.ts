/**
 * Owner chains: which workload a pod belongs to. Pod → ReplicaSet → Deployment (or Argo
 * Rollout), Pod → Job → CronJob, Pod → StatefulSet / DaemonSet. When the ReplicaSet or Job is
 * missing from the input, the pod-template-hash label (or a CronJob's `-<n>` job suffix) still
 * ties the pod to its workload.
 */
import type { OwnerFacts } from '../facts.ts';
import type { Index } from './index.ts';
import { objectKey, ownerOf, type K8s, type Meta } from './read.ts';

/** The workload (kind/namespace/name key) a pod belongs to, or undefined for bare pods. */
export function workloadOfPod(pod: K8s, index: Index): string | undefined {
  const meta = pod.meta; // once: a running pod's metadata is read again at each access
  const owner = ownerOf(meta);
  if (owner === undefined) return undefined;
  const ns = meta.namespace;
  if (owner.kind === 'ReplicaSet') {
    const rs = index.byKey.get(objectKey('ReplicaSet', ns, owner.name));
    if (rs !== undefined) {
      const top = ownerOf(rs.meta);
      if (top !== undefined && (top.kind === 'Deployment' || top.kind === 'Rollout'))
        return objectKey(top.kind, ns, top.name);
      return objectKey('ReplicaSet', ns, owner.name);
    }
    // No ReplicaSet in the dump (or an old revision, which the operator's cache leaves out): its
    // name is the Deployment's plus "-<pod-template-hash>", or the Rollout's plus its own hash
    // label's; the label's kind first, for a Rollout that took over a Deployment's name.
    const deploymentHash = meta.labels['pod-template-hash'];
    const hash = deploymentHash ?? meta.labels['rollouts-pod-template-hash'];
    if (hash !== undefined && owner.name.endsWith(`-${hash}`)) {
      const base = owner.name.slice(0, -hash.length - 1);
      for (const kind of deploymentHash !== undefined
        ? ['Deployment', 'Rollout']
        : ['Rollout', 'Deployment'])
        if (index.byKey.has(objectKey(kind, ns, base))) return objectKey(kind, ns, base);
    }
    return objectKey('ReplicaSet', ns, owner.name);
  }
  if (owner.kind === 'Job') {
    const job = index.byKey.get(objectKey('Job', ns, owner.name));
    const top = job === undefined ? undefined : ownerOf(job.meta);
    if (top?.kind === 'CronJob') return objectKey('CronJob', ns, top.name);
    if (job === undefined) {
      // No Job in the dump: a CronJob names its Jobs "<cronjob>-<scheduled time>".
      const m = /^(.*)-\d+$/.exec(owner.name);
      if (m?.[1] !== undefined && index.byKey.has(objectKey('CronJob', ns, m[1])))
        return objectKey('CronJob', ns, m[1]);
    }
    return objectKey('Job', ns, owner.name);
  }
  return objectKey(owner.kind, ns, owner.name);
}

/**
 * The keys of every object `workloadOfPod` may read for this pod (its ReplicaSet or Job, and the
 * Deployment, Rollout or CronJob it would guess from the owner's name): when one of them appears,
 * changes or goes, the pod's workload may change. With an index that holds the owner, only the
 * owner's key: the guesses are read only while the owner is missing.
 */
export function ownerChainKeys(pod: K8s, index?: Index): string[] {
  const meta = pod.meta; // once: a running pod's metadata is read again at each access
  const owner = ownerOf(meta);
  if (owner === undefined) return [];
  const ns = meta.namespace;
  if (owner.kind === 'ReplicaSet') {
    const ownerKey = objectKey('ReplicaSet', ns, owner.name);
    const keys = [ownerKey];
    if (index?.byKey.has(ownerKey) === true) return keys;
    const hash = meta.labels['pod-template-hash'] ?? meta.labels['rollouts-pod-template-hash'];
    if (hash !== undefined && owner.name.endsWith(`-${hash}`)) {
      const base = owner.name.slice(0, -hash.length - 1);
      keys.push(objectKey('Deployment', ns, base), objectKey('Rollout', ns, base));
    }
    return keys;
  }
  if (owner.kind === 'Job') {
    const ownerKey = objectKey('Job', ns, owner.name);
    const keys = [ownerKey];
    if (index?.byKey.has(ownerKey) === true) return keys;
    const m = /^(.*)-\d+$/.exec(owner.name);
    if (m?.[1] !== undefined) keys.push(objectKey('CronJob', ns, m[1]));
    return keys;
  }
  return [];
}

/** True for ReplicaSets and Jobs that a higher workload (Deployment, Rollout, CronJob) owns. */
export function isOwnedIntermediate(o: K8s): boolean {
  const owner = ownerOf(o.meta);
  if (owner === undefined) return false;
  if (o.kind === 'ReplicaSet') return owner.kind === 'Deployment' || owner.kind === 'Rollout';
  if (o.kind === 'Job') return owner.kind === 'CronJob';
  return false;
}

/**
 * The object that controls a workload kopek analyses (its controlling ownerReference, or its
 * only one): a custom resource or another operator's object, which would undo kopek's change.
 * Intermediates kopek follows to their workload (a Deployment's ReplicaSet) never get here.
 */
export function workloadOwner(meta: Meta): OwnerFacts | undefined {
  const owner = ownerOf(meta);
  if (owner === undefined) return undefined;
  const out: OwnerFacts = { kind: owner.kind, name: owner.name };
  if (owner.apiVersion !== undefined) out.apiVersion = owner.apiVersion;
  return out;
}
