/**
 * The suggested patch applied to live values, with the semantics kubectl's strategic merge
 * gives it for the fields kopek patches (see recommender/patch.ts): nodeSelector merges key by
 * key (null deletes), affinity merges map by map (null deletes), nodeSelectorTerms, preferred
 * terms and tolerations are replaced whole, topologySpreadConstraints merge by topologyKey.
 * A null field is deleted. Containers left empty are dropped, as the API server drops them when
 * it stores the object.
 */
import { ANNOTATION_TOPOLOGY_MODE } from '../facts.ts';
import { POD_FIELDS, type PodPlacement, type ServicePlacement } from './placement.ts';

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Merges maps recursively: null deletes a key, lists and scalars replace; empty maps go. */
function mergeMaps(live: unknown, patch: Obj): Obj | undefined {
  const out: Obj = isObj(live) ? structuredClone(live) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) Reflect.deleteProperty(out, key);
    else if (isObj(value)) {
      const merged = mergeMaps(out[key], value);
      if (merged === undefined) Reflect.deleteProperty(out, key);
      else out[key] = merged;
    } else out[key] = structuredClone(value);
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Lists merged by a key field: entries with the patch's key are merged, others appended. */
function mergeByKey(live: unknown, patch: unknown[], key: string): unknown[] | undefined {
  const out = Array.isArray(live) ? structuredClone(live as unknown[]) : [];
  for (const entry of patch) {
    if (!isObj(entry)) continue;
    const at = out.findIndex((existing) => isObj(existing) && existing[key] === entry[key]);
    if (at < 0) out.push(structuredClone(entry));
    else out[at] = mergeMaps(out[at], entry);
  }
  return out.length > 0 ? out : undefined;
}

function set(target: PodPlacement, field: keyof PodPlacement, value: unknown): void {
  if (value === undefined || (Array.isArray(value) && value.length === 0))
    Reflect.deleteProperty(target, field);
  else target[field] = value;
}

/** The pod placement after the suggested patch's pod spec part (`podTemplate.spec`). */
export function mergePodSpec(live: PodPlacement, patchSpec: Obj): PodPlacement {
  const out: PodPlacement = structuredClone(live);
  // null deletes a field, as in any merge patch (kopek patch writes it for a field that goes).
  for (const field of POD_FIELDS) if (patchSpec[field] === null) set(out, field, undefined);
  if (isObj(patchSpec.nodeSelector))
    set(out, 'nodeSelector', mergeMaps(live.nodeSelector, patchSpec.nodeSelector));
  if (isObj(patchSpec.affinity)) set(out, 'affinity', mergeMaps(live.affinity, patchSpec.affinity));
  if (Array.isArray(patchSpec.tolerations))
    set(out, 'tolerations', structuredClone(patchSpec.tolerations));
  if (Array.isArray(patchSpec.topologySpreadConstraints))
    set(
      out,
      'topologySpreadConstraints',
      mergeByKey(
        live.topologySpreadConstraints,
        patchSpec.topologySpreadConstraints,
        'topologyKey',
      ),
    );
  return out;
}

/** A Service's traffic settings after a suggested merge patch over the Service. */
export function mergeService(live: ServicePlacement, patch: Obj): ServicePlacement {
  const out: ServicePlacement = structuredClone(live);
  const spec = isObj(patch.spec) ? patch.spec : {};
  const metadata = isObj(patch.metadata) ? patch.metadata : {};
  const annotations = isObj(metadata.annotations) ? metadata.annotations : {};
  if ('trafficDistribution' in spec) {
    if (spec.trafficDistribution === null) delete out.trafficDistribution;
    else out.trafficDistribution = spec.trafficDistribution;
  }
  if (ANNOTATION_TOPOLOGY_MODE in annotations) {
    const mode = annotations[ANNOTATION_TOPOLOGY_MODE];
    if (mode === null) delete out.topologyMode;
    else out.topologyMode = mode;
  }
  return out;
}
