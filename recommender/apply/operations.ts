/**
 * JSON patches (RFC 6902) that move fields from one state to another, guarded by `test`
 * operations on the values they expect to find. The API server applies a JSON patch
 * atomically: if a person or another controller changed one of those fields since kopek read
 * it, a test fails and nothing is written, so kopek never overwrites someone else's change.
 * A test of `null` passes only when the field is absent (the API server's JSON-patch library
 * treats a missing member as null), which is how absence is checked.
 */
import { ANNOTATION_TOPOLOGY_MODE } from '../facts.ts';
import {
  POD_FIELDS,
  sameValue,
  type PlacementState,
  type PodPlacement,
  type ServicePlacement,
} from './placement.ts';

export type JsonPatchOperation =
  | { op: 'test'; path: string; value: unknown }
  | { op: 'add' | 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** A JSON-pointer segment: `~` and `/` escaped. */
export function pointerSegment(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Operations that move one field from `from` to `to`, after a test that it is still `from`. */
function fieldChange(path: string, from: unknown, to: unknown): JsonPatchOperation[] {
  const test: JsonPatchOperation = { op: 'test', path, value: from ?? null };
  if (sameValue(from, to)) return [test];
  if (to === undefined) return [test, { op: 'remove', path }];
  return [test, { op: from === undefined ? 'add' : 'replace', path, value: to }];
}

/** True when the operations change something (more than tests). */
export function changesAnything(operations: readonly JsonPatchOperation[]): boolean {
  return operations.some((operation) => operation.op !== 'test');
}

/**
 * The pod-spec part: every placement field is tested (so a change to any of them by someone
 * else fails the patch), and the ones that differ are moved to `to`.
 */
export function podSpecOperations(
  pointer: string,
  from: PodPlacement,
  to: PodPlacement,
): JsonPatchOperation[] {
  return POD_FIELDS.flatMap((field) => fieldChange(`${pointer}/${field}`, from[field], to[field]));
}

/**
 * One annotation set to `value` (or removed when undefined), keeping the others; `annotations`
 * are the object's annotations as read. When it has none, the map is created after testing it
 * is still absent, so no one else's annotation is replaced.
 */
export function annotationOperations(
  annotations: Readonly<Record<string, unknown>> | undefined,
  key: string,
  from: unknown,
  to: unknown,
): JsonPatchOperation[] {
  const path = `/metadata/annotations/${pointerSegment(key)}`;
  if (annotations === undefined) {
    if (to === undefined) return [{ op: 'test', path: '/metadata/annotations', value: null }];
    return [
      { op: 'test', path: '/metadata/annotations', value: null },
      { op: 'add', path: '/metadata/annotations', value: { [key]: to } },
    ];
  }
  return fieldChange(path, from, to);
}

/** The operations on one Service; `annotations` are its annotations as read. */
export function serviceOperations(
  annotations: Readonly<Record<string, unknown>> | undefined,
  from: ServicePlacement,
  to: ServicePlacement,
): JsonPatchOperation[] {
  const operations = [
    ...fieldChange('/spec/trafficDistribution', from.trafficDistribution, to.trafficDistribution),
  ];
  if (!sameValue(from.topologyMode, to.topologyMode) || annotations !== undefined)
    operations.push(
      ...annotationOperations(
        annotations,
        ANNOTATION_TOPOLOGY_MODE,
        from.topologyMode,
        to.topologyMode,
      ),
    );
  return operations;
}

/** Per Service named in `to`, the operations from `from` (only Services that change). */
export function servicesToChange(
  from: PlacementState,
  to: PlacementState,
): { name: string; from: ServicePlacement; to: ServicePlacement }[] {
  return to.services
    .map((target) => ({
      name: target.name,
      from: from.services.find((s) => s.name === target.name) ?? { name: target.name },
      to: target,
    }))
    .filter(
      (change) =>
        !sameValue(change.from.trafficDistribution, change.to.trafficDistribution) ||
        !sameValue(change.from.topologyMode, change.to.topologyMode),
    );
}
