/**
 * The objects kopek reads, flattened out of their Lists and indexed by kind, key and namespace.
 * An object it cannot use gives a warning naming it; kinds it does not read are counted and
 * reported once per kind.
 */
import { nodeInfo, type NodeInfo } from './nodes.ts';
import { arr, describe, isRecord, metaOf, objectKey, str, type K8s, type Obj } from './read.ts';

/** Namespaces that never get a recommendation. */
export const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set([
  'kube-system',
  'kube-public',
  'kube-node-lease',
]);

/** Kinds that run pods and may get a recommendation. */
export const WORKLOAD_KINDS: ReadonlySet<string> = new Set([
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'Rollout',
]);

/**
 * Kinds the builder reads, with their API group ('' is the core group); every other kind, and a
 * known kind of another group (a foo.example.com Deployment is not apps' Deployment), is
 * reported once and ignored.
 */
export const KNOWN_KINDS: ReadonlyMap<string, string> = new Map([
  ['Node', ''],
  ['Namespace', ''],
  ['Pod', ''],
  ['Deployment', 'apps'],
  ['ReplicaSet', 'apps'],
  ['StatefulSet', 'apps'],
  ['DaemonSet', 'apps'],
  ['Job', 'batch'],
  ['CronJob', 'batch'],
  ['Rollout', 'argoproj.io'],
  ['PodDisruptionBudget', 'policy'],
  ['HorizontalPodAutoscaler', 'autoscaling'],
  ['Service', ''],
  ['EndpointSlice', 'discovery.k8s.io'],
  ['PersistentVolumeClaim', ''],
  ['PersistentVolume', ''],
  ['StorageClass', 'storage.k8s.io'],
  ['SavingsPolicy', 'kopek.dev'],
]);

/** The API group of an apiVersion: "apps/v1" → "apps", "v1" → "". */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.lastIndexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

export interface Index {
  nodes: Map<string, NodeInfo>;
  namespaceLabels: Map<string, Record<string, string>>;
  byKind: Map<string, K8s[]>;
  /** Objects by `objectKey`: what the builder looks up, not necessarily a Map of its own. */
  byKey: Pick<ReadonlyMap<string, K8s>, 'get' | 'has'>;
  warnings: string[];
}

/**
 * The objects of a dump with every List unwrapped, however it is named (`kubectl get -o yaml`
 * prints a v1 List; an API list is a PodList, DeploymentList, …), nested Lists included. A
 * value that is not an object gives a warning naming where it was.
 */
export function flattenLists(objects: readonly unknown[], warnings: string[] = []): Obj[] {
  const out: Obj[] = [];
  const visit = (o: unknown, where: string) => {
    if (!isRecord(o)) {
      if (o !== null && o !== undefined)
        warnings.push(`${where}: not a Kubernetes object; skipped`);
      return;
    }
    const kind = str(o.kind);
    if (kind !== undefined && kind.endsWith('List') && Array.isArray(o.items)) {
      arr(o.items).forEach((item, i) => {
        visit(item, `${where} item ${i}`);
      });
      return;
    }
    out.push(o);
  };
  objects.forEach((o, i) => {
    visit(o, `object ${i}`);
  });
  return out;
}

export function indexObjects(objects: readonly unknown[]): Index {
  const warnings: string[] = [];
  const byKey = new Map<string, K8s>();
  const index: Index = {
    nodes: new Map(),
    namespaceLabels: new Map(),
    byKind: new Map(),
    byKey,
    warnings,
  };
  const ignored = new Map<string, number>();
  /** apiVersion → the known kind names seen with it, one entry per object. */
  const foreign = new Map<string, string[]>();
  // Per kind, key → object. A Map keeps insertion order, and delete + set moves a duplicate to
  // the end: the same order as appending, with the earlier copy gone, in constant time.
  const kinds = new Map<string, Map<string, K8s>>();
  for (const raw of flattenLists(objects, warnings)) {
    const kind = str(raw.kind);
    const apiVersion = str(raw.apiVersion);
    if (kind === undefined || apiVersion === undefined) {
      warnings.push(
        `an object without ${kind === undefined ? 'kind' : 'apiVersion'} is not a Kubernetes object; skipped`,
      );
      continue;
    }
    const group = KNOWN_KINDS.get(kind);
    if (group === undefined) {
      ignored.set(kind, (ignored.get(kind) ?? 0) + 1);
      continue;
    }
    if (groupOf(apiVersion) !== group) {
      foreign.set(apiVersion, [...(foreign.get(apiVersion) ?? []), kind]);
      continue;
    }
    const meta = metaOf(raw);
    if (meta === undefined) {
      warnings.push(`a ${kind} without metadata.name; skipped`);
      continue;
    }
    const o: K8s = { kind, meta, raw };
    const k = objectKey(kind, meta.namespace, meta.name);
    let ofKind = kinds.get(kind);
    if (ofKind === undefined) kinds.set(kind, (ofKind = new Map<string, K8s>()));
    if (ofKind.delete(k)) warnings.push(`${describe(o)} appears twice; the last one is used`);
    ofKind.set(k, o);
    byKey.set(k, o);
    if (kind === 'Node') index.nodes.set(meta.name, nodeInfo(o, warnings));
    if (kind === 'Namespace') index.namespaceLabels.set(meta.name, meta.labels);
  }
  for (const [kind, ofKind] of kinds) index.byKind.set(kind, [...ofKind.values()]);
  for (const [kind, n] of [...ignored].sort(([a], [b]) => a.localeCompare(b))) {
    warnings.push(
      `ignored ${n} ${kind} object${n === 1 ? '' : 's'}: kopek does not read that kind`,
    );
  }
  for (const [apiVersion, kinds] of [...foreign].sort(([a], [b]) => a.localeCompare(b))) {
    const n = kinds.length;
    const names = [...new Set(kinds)].sort().join(', ');
    warnings.push(
      `ignored ${n} ${names} object${n === 1 ? '' : 's'} of ${apiVersion}: kopek reads that kind from another API group only`,
    );
  }
  return index;
}

export function kindList(index: Index, kind: string): K8s[] {
  return index.byKind.get(kind) ?? [];
}
