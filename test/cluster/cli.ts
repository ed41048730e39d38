/**
 * `npm run cluster -- up|down|kubeconfig|kubectl ...`: the local control plane for people.
 * `up` starts a supervisor process that owns the cluster and keeps it running until `down`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { LocalCluster } from './cluster.ts';
import { DEFAULT_FLEET } from './fleet.ts';
import { logTail } from './process.ts';

const STATE_DIR = fileURLToPath(new URL('../../.kopek/cluster/', import.meta.url));
const STATE_FILE = join(STATE_DIR, 'state.json');
const SUPERVISOR_LOG = join(STATE_DIR, 'supervisor.log');

interface State {
  pid: number;
  kubeconfig: string;
  server: string;
  kubectl: string;
}

const USAGE = `Usage: npm run cluster -- <command>

Commands:
  up           start the local control plane with the sample EKS-like fleet (24 KWOK nodes)
  down         stop it and remove its data
  kubeconfig   print the path of its admin kubeconfig
  kubectl ...  run the built kubectl against it, e.g. npm run cluster -- kubectl get nodes

Exit codes: 0 done, 1 failed, 2 usage error.`;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The running cluster's state, or undefined (a stale state file from a dead supervisor counts as none). */
function runningState(): State | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  const state = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State;
  return isAlive(state.pid) ? state : undefined;
}

function printHowToUse(state: State): void {
  console.log(`Local cluster running at ${state.server}`);
  console.log(`  kubeconfig: ${state.kubeconfig}`);
  console.log(
    `  try:        npm run cluster -- kubectl get nodes -L topology.kubernetes.io/zone,kubernetes.io/arch,karpenter.sh/capacity-type`,
  );
  console.log(`  or:         export KUBECONFIG=${state.kubeconfig}`);
}

async function up(): Promise<number> {
  const existing = runningState();
  if (existing) {
    printHowToUse(existing);
    return 0;
  }
  await mkdir(STATE_DIR, { recursive: true });
  await rm(STATE_FILE, { force: true });
  const log = openSync(SUPERVISOR_LOG, 'w');
  const supervisor = spawn(process.execPath, [fileURLToPath(import.meta.url), 'supervise'], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  supervisor.unref();
  console.log(
    'Starting the local control plane (the first run builds Kubernetes from source: minutes)...',
  );
  let shown = 0;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lines = logTail(SUPERVISOR_LOG, 1000).split('\n').filter(Boolean);
    for (const line of lines.slice(shown)) console.log(`  ${line}`);
    shown = lines.length;
    const state = runningState();
    if (state) {
      printHowToUse(state);
      return 0;
    }
    if (supervisor.pid === undefined || !isAlive(supervisor.pid)) {
      console.error(`The local control plane failed to start; see ${SUPERVISOR_LOG}`);
      return 1;
    }
  }
}

/** Runs in the background: owns the cluster until SIGTERM/SIGINT. */
async function supervise(): Promise<void> {
  const dir = join(STATE_DIR, 'run');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const cluster = await LocalCluster.start({
    dir,
    log: (line) => {
      console.log(line);
    },
  });
  const stop = async (): Promise<void> => {
    await rm(STATE_FILE, { force: true });
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  await cluster.addFleet(DEFAULT_FLEET);
  const state: State = {
    pid: process.pid,
    kubeconfig: cluster.kubeconfigPath,
    server: cluster.server,
    kubectl: cluster.binaries.kubectl,
  };
  await writeFile(STATE_FILE, JSON.stringify(state, null, 2));
  // Keep the event loop alive until a signal arrives.
  setInterval(() => undefined, 1 << 30);
}

async function down(): Promise<number> {
  const state = runningState();
  if (!state) {
    console.log('No local cluster is running.');
    await rm(STATE_FILE, { force: true });
    return 0;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (isAlive(state.pid)) {
    if (Date.now() > deadline) {
      process.kill(-state.pid, 'SIGKILL');
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  console.log('Local cluster stopped.');
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case 'up':
      return up();
    case 'down':
      return down();
    case 'supervise':
      await supervise();
      return 0;
    case 'kubeconfig': {
      const state = runningState();
      if (!state) {
        console.error('No local cluster is running: start one with npm run cluster -- up');
        return 1;
      }
      console.log(state.kubeconfig);
      return 0;
    }
    case 'kubectl': {
      const state = runningState();
      if (!state) {
        console.error('No local cluster is running: start one with npm run cluster -- up');
        return 1;
      }
      return (
        spawnSync(state.kubectl, [`--kubeconfig=${state.kubeconfig}`, ...rest], {
          stdio: 'inherit',
        }).status ?? 1
      );
    }
    case undefined:
    case '-h':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`Unknown command "${command}".\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (process.argv[2] !== 'supervise') process.exit(code);
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  },
);
