import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Paths of the Go-built binaries the local control plane runs. */
export interface Binaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
}

const BUILD_SCRIPT = fileURLToPath(new URL('./build/build.sh', import.meta.url));

/**
 * Runs a build script that prints the directory of what it built as its last line on stdout
 * (build.sh here, test/chart/build/build.sh for helm) and resolves with that directory. The
 * script's progress lines go to stderr, so a cold build shows what it is doing.
 */
export async function runBuildScript(script: string, what: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const build = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    build.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    build.on('error', reject);
    // 'close': at 'exit' the directory printed last may still be unread.
    build.on('close', (code) => {
      const lines = stdout.trim().split('\n');
      const last = lines[lines.length - 1];
      if (code === 0 && last) resolve(last);
      else
        reject(new Error(`building ${what} failed (exit ${code}); run bash ${script} to see why`));
    });
  });
}

/**
 * Builds the binaries once (cached outside git, keyed on the pinned versions) and returns their
 * paths.
 */
export async function ensureBinaries(): Promise<Binaries> {
  const dir = await runBuildScript(BUILD_SCRIPT, 'the local control plane');
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    kubectl: join(dir, 'kubectl'),
    kwok: join(dir, 'kwok'),
  };
}
