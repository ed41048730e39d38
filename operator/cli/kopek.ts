#!/usr/bin/env node
/**
 * The kopek command line: `kopek analyze` runs the recommender offline over a kubectl dump,
 * `kopek patch` (patch.ts) prints the changes Apply mode would make, `kopek run` is the operator.
 * Each subcommand is an entry of COMMANDS; input.ts holds what they share.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import pkg from '../../package.json' with { type: 'json' };
import { rfc3339 } from '../time.ts';
import { InputError, analyzeObjects, checkDumpSize, formatTable } from './analyze.ts';
import {
  EXIT_INPUT,
  EXIT_INTERNAL,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  loadInput,
  parseInputArgs,
  type CliIO,
} from './input.ts';
import { patchCommand } from './patch.ts';

export const HELP = `kopek — cost recommendations for workloads on Amazon EKS: Spot, Graviton (arm64), cross-AZ traffic.

Usage:
  kopek analyze -f FILE [-f FILE ...] [-n NS] [--image-platforms FILE] [--registry-lookup] [--live-prices] [--region REGION]
                [--prometheus-url URL [--traffic-source SOURCE] [--traffic-window DURATION]] [-o table|wide|json|yaml]
  kopek patch -f FILE [-f FILE ...] [--workload NS/KIND/NAME] [--action LIST] [-o yaml|kustomize] [analyze's input options]
                            the changes Apply mode would make, as patches to commit to Git (see kopek patch --help)
  kopek run [flags]         the operator (see kopek run --help)
  kopek help
  kopek --version

kopek analyze
  Reads a dump made with kubectl (a List, or multi-document YAML, or JSON; UTF-8, or UTF-16 with
  a byte-order mark as PowerShell writes it) holding nodes, pods,
  workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Argo Rollouts),
  PodDisruptionBudgets, HorizontalPodAutoscalers, Services and EndpointSlices (SavingsPolicies,
  Namespaces, PersistentVolumeClaims, PersistentVolumes and StorageClasses are used when present),
  and prints one WorkloadRecommendation per workload, as the operator would write it. For example:

    kubectl get nodes,pods,deploy,sts,ds,rs,jobs,cronjobs,pdb,hpa,svc,endpointslices -A -o yaml > dump.yaml
    kopek analyze -f dump.yaml --image-platforms platforms.json

  System namespaces (kube-system, kube-public, kube-node-lease) and workloads annotated
  kopek.dev/ignore: "true" get no recommendation. Prices come from the embedded snapshot, or
  with --live-prices from the AWS APIs as kopek run reads them.

Options:
  -f, --filename FILE       a dump to read; repeat for several; "-" reads standard input
  -n, --namespace NS        namespace of the objects that name none, as with kubectl apply
                            (default: default); a warning says how many were placed
      --image-platforms FILE
                            JSON object mapping image reference to its platforms, e.g.
                            {"nginx:1.27": ["linux/amd64", "linux/arm64"]}; a value may also be
                            {"error": "..."}. Images not in it (or no file) give arm64 Unknown,
                            unless --registry-lookup finds them.
      --registry-lookup     read each image's platforms from its registry (anonymous access, or
                            Amazon ECR through the default AWS credential chain); an image the
                            registry cannot answer for gives arm64 Unknown with the reason.
                            Entries of --image-platforms take precedence
      --insecure-registries LIST
                            comma-separated host:port registries served over plain HTTP
      --live-prices         read the region's prices from the AWS Pricing API and EC2 (Spot
                            prices, instance types, placement scores) with the default AWS
                            credential chain; a call that fails is a warning and its figures
                            come from the embedded snapshot
      --region REGION       region for prices (default: the nodes' topology.kubernetes.io/region;
                            us-east-1 when they have none)
      --prometheus-url URL  read measured cross-zone traffic from a Prometheus-compatible API
                            (Grafana Beyla, Istio or Kubecost series; see kopek run --help for
                            --prometheus-bearer-token-file, --prometheus-ca-file,
                            --prometheus-timeout, --traffic-source, --traffic-window and
                            --traffic-query-*). Unreachable or failing: a warning, and the
                            cross-zone share is estimated, as without it
  -o, --output FORMAT       table (default: fits 120 columns), wide (adds NAME and COST/MO, cuts
                            nothing), json or yaml (a v1 List of WorkloadRecommendations)
  -q, --quiet               do not print warnings
  -h, --help                this help

Exit codes:
  0  the recommendations were printed (problems with single objects are warnings on stderr)
  1  usage error: unknown command or option, missing or bad value
  2  an input could not be used: file missing or unreadable, too large for this process's
     memory (it says how much it needs), not YAML/JSON, a YAML alias bomb, no Kubernetes
     objects in it, or an image-platforms file that is not a JSON object
  3  internal error (a bug in kopek; run with KOPEK_DEBUG=1 for the stack trace and report it)
`;

const ANALYZE_OUTPUTS = ['table', 'wide', 'json', 'yaml'] as const;

async function analyze(argv: readonly string[], io: CliIO): Promise<number> {
  const { input: args, output = 'table' } = parseInputArgs('analyze', argv);
  if (!(ANALYZE_OUTPUTS as readonly string[]).includes(output))
    throw new UsageError(`-o ${output}: the output format must be table, wide, json or yaml`);
  if (args.help) {
    io.stdout(HELP);
    return EXIT_OK;
  }
  const { objects, options, prices, traffic, warnings } = await loadInput(args, io);
  const result = analyzeObjects(objects, options, io.now(), prices, traffic);
  warnings.push(...result.warnings);
  if (!args.quiet) for (const w of warnings) io.stderr(`warning: ${w}\n`);
  if (output === 'json') io.stdout(`${JSON.stringify(result.list, null, 2)}\n`);
  else if (output === 'yaml')
    io.stdout(
      stringify(result.list, { lineWidth: 0, version: '1.1', aliasDuplicateObjects: false }),
    );
  else io.stdout(formatTable(result.list.items, output === 'wide'));
  return EXIT_OK;
}

const COMMANDS: Record<string, (argv: readonly string[], io: CliIO) => Promise<number>> = {
  analyze,
  patch: patchCommand,
  // The operator runs until a signal; its own exit codes are listed in kopek run --help. Loaded
  // only for `kopek run`: the operator's modules (HTTP client, metrics, controllers) cost memory
  // that `kopek analyze` does not need.
  run: async (argv, io) => (await import('../run.ts')).runCommand(argv, io),
};

/** Runs the CLI; returns the exit code. Never throws. */
export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '-h' || command === '--help') {
      io.stdout(HELP);
      return command === undefined ? EXIT_USAGE : EXIT_OK;
    }
    if (command === '--version' || command === 'version') {
      io.stdout(`kopek ${pkg.version}\n`);
      return EXIT_OK;
    }
    const run = COMMANDS[command];
    if (run === undefined) throw new UsageError(`unknown command ${command}`);
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`kopek: ${e.message}\nRun kopek help for the usage.\n`);
      return EXIT_USAGE;
    }
    if (e instanceof InputError) {
      io.stderr(`kopek: ${e.message}\n`);
      return EXIT_INPUT;
    }
    const detail = io.env.KOPEK_DEBUG === '1' && e instanceof Error ? `\n${e.stack ?? ''}` : '';
    io.stderr(
      `kopek: internal error: ${e instanceof Error ? e.message : String(e)}${detail}\n` +
        'This is a bug in kopek; run with KOPEK_DEBUG=1 for the stack trace and report it.\n',
    );
    return EXIT_INTERNAL;
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    // npm's bin shims call us through a symlink: compare real paths.
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    // `kopek analyze ... | head` closes the pipe early; that is not an error.
    if (e.code === 'EPIPE') process.exit(EXIT_OK);
    throw e;
  });
  const io: CliIO = {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    readFile: (p) => {
      checkDumpSize(statSync(p).size, getHeapStatistics().heap_size_limit, p);
      return readFileSync(p);
    },
    readStdin: () => {
      const bytes = readFileSync(0);
      checkDumpSize(bytes.length, getHeapStatistics().heap_size_limit, 'standard input');
      return bytes;
    },
    now: () => rfc3339(new Date()),
    env: process.env,
  };
  void main(process.argv.slice(2), io).then((code) => {
    // The operator's timers and sockets are closed, but do not wait on anything it left behind.
    if (process.argv[2] === 'run') process.exit(code);
    process.exitCode = code;
  });
}
