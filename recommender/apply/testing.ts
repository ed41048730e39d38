/**
 * Test vocabulary for Apply: a JSON-patch applier with the API server's semantics, so unit
 * tests (and the in-memory API in operator/testing) see what kube-apiserver would store. Used
 * by tests only.
 */
import { sameValue } from './placement.ts';
import type { JsonPatchOperation } from './operations.ts';

/** Why a JSON patch was refused: a failed test, or a path that does not exist. */
export class JsonPatchError extends Error {}

function segments(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new JsonPatchError(`invalid JSON pointer ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

type Container = Record<string, unknown> | unknown[];

function parentOf(doc: unknown, path: string): { parent: Container; key: string } {
  const parts = segments(path);
  const key = parts.pop();
  if (key === undefined) throw new JsonPatchError('cannot patch the whole document');
  let at: unknown = doc;
  for (const part of parts) {
    if (Array.isArray(at)) at = at[Number(part)];
    else if (typeof at === 'object' && at !== null) at = (at as Record<string, unknown>)[part];
    else at = undefined;
  }
  if (typeof at !== 'object' || at === null)
    throw new JsonPatchError(`doc is missing path: ${path}`);
  return { parent: at as Container, key };
}

function get(parent: Container, key: string): unknown {
  return Array.isArray(parent) ? parent[Number(key)] : parent[key];
}

/**
 * Applies `operations` to a copy of `doc`, all or nothing, as kube-apiserver does: a `test` of
 * null passes when the member is absent; `add` on an existing member replaces it; `replace`
 * and `remove` need the member to exist.
 */
export function applyJsonPatch<T>(doc: T, operations: readonly JsonPatchOperation[]): T {
  const out = structuredClone(doc);
  for (const operation of operations) {
    const { parent, key } = parentOf(out, operation.path);
    const current = get(parent, key);
    switch (operation.op) {
      case 'test':
        if (current === undefined ? operation.value !== null : !sameValue(current, operation.value))
          throw new JsonPatchError(`testing value ${operation.path} failed`);
        break;
      case 'add':
        if (Array.isArray(parent)) {
          if (key === '-') parent.push(operation.value);
          else parent.splice(Number(key), 0, structuredClone(operation.value));
        } else parent[key] = structuredClone(operation.value);
        break;
      case 'replace':
        if (current === undefined)
          throw new JsonPatchError(
            `replace operation does not apply: doc is missing key: ${operation.path}`,
          );
        if (Array.isArray(parent)) parent[Number(key)] = structuredClone(operation.value);
        else parent[key] = structuredClone(operation.value);
        break;
      case 'remove':
        if (current === undefined)
          throw new JsonPatchError(
            `remove operation does not apply: doc is missing path: ${operation.path}`,
          );
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else Reflect.deleteProperty(parent, key);
        break;
    }
  }
  return out;
}
