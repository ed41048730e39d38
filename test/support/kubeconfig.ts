import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** One context of a kubeconfig: its name, and the fields of the cluster and user it uses. */
export interface KubeconfigContext {
  name: string;
  cluster: Record<string, unknown>;
  user: Record<string, unknown>;
}

/**
 * Writes `dir`/config, a kubeconfig holding `contexts`, and returns its path. Each context's
 * cluster and user are named `<context>-cluster` and `<context>-user`, not as the context, so a
 * loader that looked them up by the context's name would fail. `current` is the current context
 * (default: the first), and may name none of them.
 */
export function writeKubeconfig(
  dir: string,
  contexts: readonly KubeconfigContext[],
  current = contexts[0]?.name,
): string {
  const path = join(dir, 'config');
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: contexts.map(({ name, cluster }) => ({ name: `${name}-cluster`, cluster })),
      users: contexts.map(({ name, user }) => ({ name: `${name}-user`, user })),
      contexts: contexts.map(({ name }) => ({
        name,
        context: { cluster: `${name}-cluster`, user: `${name}-user` },
      })),
      'current-context': current,
    }),
  );
  return path;
}
