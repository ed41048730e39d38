/**
 * `npm run demo`: starts the local control plane with the sample EKS-like fleet, deploys a slice
 * of a commerce platform, and shows where the real scheduler placed it. Runs until Ctrl-C
 * (or exits at once with --exit), then stops everything it started.
 */
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';

const SHOP = fileURLToPath(new URL('./shop.yaml', import.meta.url));
const exitAtOnce = process.argv.includes('--exit');

console.log(
  'kopek demo: starting a local Kubernetes control plane (the first run builds it from source: minutes)',
);
const cluster = await LocalCluster.start({
  log: (line) => {
    console.log(`  ${line}`);
  },
});
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  console.log('\nStopping the local cluster...');
  await cluster.stop();
  console.log('Stopped; nothing left running.');
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

try {
  await cluster.addFleet(DEFAULT_FLEET);
  await cluster.kubectl(['apply', '-f', SHOP]);
  await cluster.kubectl(['rollout', 'status', '-n', 'shop', '--timeout=120s', 'deployment']);

  const show = async (title: string, args: string[]): Promise<void> => {
    console.log(`\n$ kubectl ${args.join(' ')}    # ${title}`);
    console.log((await cluster.kubectl(args)).stdout.trimEnd());
  };
  await show('the EKS-like fleet', [
    'get',
    'nodes',
    '-L',
    'topology.kubernetes.io/zone,node.kubernetes.io/instance-type,kubernetes.io/arch,karpenter.sh/capacity-type,eks.amazonaws.com/capacityType',
  ]);
  await show('where the shop runs', [
    'get',
    'pods',
    '-n',
    'shop',
    '-o',
    'custom-columns=POD:.metadata.name,STATUS:.status.phase,NODE:.spec.nodeName',
  ]);
} catch (error) {
  console.error(`Demo failed: ${error instanceof Error ? error.message : String(error)}`);
  await cluster.stop({ keepDir: true });
  console.error(`Logs kept in ${cluster.dir}/logs`);
  process.exit(1);
}

if (exitAtOnce) {
  await stop();
} else {
  console.log(
    `\nThe cluster keeps running: KUBECONFIG=${cluster.kubeconfigPath} ${cluster.binaries.kubectl} get pods -A`,
  );
  console.log('Press Ctrl-C to stop it and clean up.');
  setInterval(() => undefined, 1 << 30);
}
