/**
 * CrossZone's Services: read live, moved with guarded JSON patches (all or none of one change),
 * and located — as before the change, as kopek set them, or changed by someone else.
 */
import {
  serviceOperations,
  servicesToChange,
  type JsonPatchOperation,
} from '../../recommender/apply/operations.ts';
import {
  readServicePlacement,
  sameValue,
  type PlacementState,
  type ServicePlacement,
} from '../../recommender/apply/placement.ts';
import { KubeApiError } from '../kube/client.ts';
import { RESOURCES } from '../kube/resources.ts';
import {
  APPLY_FIELD_MANAGER,
  getIfExists,
  obj,
  type ApplyContext,
  type Obj,
  type Subject,
  type Where,
} from './step.ts';

/** A Service as read live: the fields kopek changes, and its annotations for the guarded patch. */
export interface LiveService {
  placement: ServicePlacement;
  annotations: Record<string, unknown> | undefined;
}

/** The named Services of the namespace as they are now; a missing one is left out. */
export async function readServices(
  ctx: ApplyContext,
  namespace: string,
  names: readonly string[],
): Promise<Map<string, LiveService>> {
  const out = new Map<string, LiveService>();
  for (const name of names) {
    const service = await getIfExists<Obj>(ctx, RESOURCES.services, name, namespace);
    if (service === undefined) continue;
    const annotations = obj(service.metadata).annotations;
    out.set(name, {
      placement: readServicePlacement(service),
      annotations:
        typeof annotations === 'object' && annotations !== null ? obj(annotations) : undefined,
    });
  }
  return out;
}

export interface ServiceChange {
  name: string;
  from: ServicePlacement;
  to: ServicePlacement;
}

/**
 * Moves each Service from `from` to `to` with a guarded JSON patch (its tests fail, and nothing
 * is written, if someone changed the fields since they were read). Services are separate
 * objects, so this is not atomic across them: when one is refused, those already changed by
 * this call are moved back before the refusal is thrown, so none is left half-done.
 */
export async function patchServices(
  ctx: ApplyContext,
  subject: Subject,
  changes: readonly ServiceChange[],
  live: ReadonlyMap<string, LiveService>,
  dryRun: boolean,
): Promise<void> {
  const namespace = subject.ref.namespace;
  const sent: ServiceChange[] = [];
  const send = (name: string, operations: JsonPatchOperation[], asDryRun: boolean) =>
    ctx.client.patch<Obj>(RESOURCES.services, name, namespace, operations, {
      fieldManager: APPLY_FIELD_MANAGER,
      dryRun: asDryRun,
    });
  for (const change of changes) {
    const annotations = live.get(change.name)?.annotations;
    try {
      await send(change.name, serviceOperations(annotations, change.from, change.to), dryRun);
    } catch (error) {
      const refused = error instanceof KubeApiError ? error.message : String(error);
      for (const done of sent) {
        const now = await readServices(ctx, namespace, [done.name]);
        await send(
          done.name,
          serviceOperations(now.get(done.name)?.annotations, done.to, done.from),
          false,
        ).catch((undo: unknown) => {
          ctx.log.warn('could not restore a Service after another was refused', {
            ...subject.ref,
            service: done.name,
            refused,
            error: undo instanceof Error ? undo.message : String(undo),
          });
        });
      }
      if (error instanceof KubeApiError)
        throw new KubeApiError(error.status, error.reason, `Service ${change.name}: ${refused}`);
      throw error;
    }
    if (!dryRun) sent.push(change);
  }
}

/** A Service the change moves, read live, and where it is; a deleted one is `undefined`. */
export interface ServiceState {
  change: ServiceChange;
  where: Where | undefined;
  live?: LiveService;
}

/** Each Service the change moves, read live, and where it is. */
export async function whereServices(
  ctx: ApplyContext,
  subject: Subject,
  previous: PlacementState,
  applied: PlacementState,
): Promise<ServiceState[]> {
  const changes = servicesToChange(previous, applied);
  const live = await readServices(
    ctx,
    subject.ref.namespace,
    changes.map((c) => c.name),
  );
  return changes.map((change) => {
    const service = live.get(change.name);
    if (service === undefined) return { change, where: undefined };
    const at = service.placement;
    const where: Where = sameService(at, change.from)
      ? 'previous'
      : sameService(at, change.to)
        ? 'applied'
        : 'other';
    return { change, where, live: service };
  });
}

/** Changes the Services that are still as before the change; their names. */
export async function changePendingServices(
  ctx: ApplyContext,
  subject: Subject,
  states: readonly ServiceState[],
): Promise<string[]> {
  const pending = states.filter((s) => s.where === 'previous');
  await patchServices(
    ctx,
    subject,
    pending.map((s) => s.change),
    liveOf(pending),
    false,
  );
  return pending.map((s) => s.change.name);
}

/** The live Services of `states`, by name, for patchServices. */
export function liveOf(states: readonly ServiceState[]) {
  return new Map(
    states.flatMap((s): [string, LiveService][] => (s.live ? [[s.change.name, s.live]] : [])),
  );
}

function sameService(a: ServicePlacement, b: ServicePlacement): boolean {
  return (
    sameValue(a.trafficDistribution, b.trafficDistribution) &&
    sameValue(a.topologyMode, b.topologyMode)
  );
}
