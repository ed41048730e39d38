import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BUILD = fileURLToPath(new URL('../cluster/build/build.sh', import.meta.url));

describe('the control plane binaries', () => {
  // npm test builds them first (npm run cluster:build); here a second build must find them cached.
  it('are built once and then taken from the cache, keyed on the pinned versions', async () => {
    const { stdout, stderr } = await run('bash', [BUILD]);
    expect(stderr).not.toContain('building');
    const dir = stdout.trim();
    expect(dir).toMatch(/\/bin\/control-plane-[0-9a-f]{16}$/);
    for (const binary of [
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kube-scheduler',
      'kubectl',
      'kwok',
    ]) {
      await expect(access(join(dir, binary))).resolves.toBeUndefined();
    }
  });
});
