#!/usr/bin/env node
/**
 * The kopek command line: `kopek analyze` runs the recommender offline over a kubectl dump,
 * `kopek run` is the operator. Each subcommand is an entry of COMMANDS.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import pkg from '../../package.json' with { type: 'json' };
import { LivePrices, nodeLabelsOf } from '../aws/live-prices.ts';
import { IAM_ACTIONS } from '../aws/sdk.ts';
import { imageRequests, RegistryImageSource } from '../images.ts';
import { silentLogger } from '../log.ts';
import { RegistryClient } from '../registry/client.ts';
import { rfc3339 } from '../time.ts';
import { parseTrafficConfig, trafficTelemetry, type TrafficConfig } from '../traffic/config.ts';
import type { TrafficInput } from '../../recommender/traffic.ts';
import type { BuildOptions } from '../../recommender/facts-from-objects.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { fixedPrices, type PriceSource } from '../prices.ts';
import {
  InputError,
  analyzeObjects,
  buildFacts,
  checkDumpSize,
  decodeDump,
  defaultNamespace,
  formatTable,
  parseDump,
  parseImagePlatforms,
  requireKubeObjects,
  withPlacementScore,
} from './analyze.ts';
import {
  indexDump,
  parseActions,
  parseWorkloadName,
  patchDocuments,
  renderKustomize,
  renderYaml,
  selectWorkload,
  workloadKey,
  type PatchDocument,
} from './patch.ts';
import { OPTIMIZATIONS } from '../../recommender/api/v1alpha1.ts';
import { planCommit } from '../../recommender/apply/commit.ts';

/** Exit codes, as documented in the help text. */
export const EXIT_OK = 0;
export const EXIT_USAGE = 1;
export const EXIT_INPUT = 2;
export const EXIT_INTERNAL = 3;
/** kopek patch: no workload had a change to print (each one's reason is on stderr). */
export const EXIT_NOTHING_TO_CHANGE = 4;

/** What a command may touch; tests pass their own. */
export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** A file's bytes (or text); throws InputError when it is too large to analyse. */
  readFile: (path: string) => string | Uint8Array;
  readStdin: () => string | Uint8Array;
  /** RFC 3339 time for the Ready condition. */
  now: () => string;
  env: Readonly<Record<string, string | undefined>>;
}

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
  Namespaces, PersistentVolumeClaims and PersistentVolumes are used when present), and prints one
  WorkloadRecommendation per workload, as the operator would write it. For example:

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

export const PATCH_HELP = `kopek patch — the changes Apply mode would make, as files to commit to a GitOps repository.

Usage:
  kopek patch -f FILE [-f FILE ...] [--workload NS/KIND/NAME] [--action Spot,Arm64,CrossZone]
              [-o yaml|kustomize] [-n NS] [--image-platforms FILE] [--registry-lookup] [--live-prices]
              [--region REGION] [--prometheus-url URL ...] [-q]

  Reads the same dumps as kopek analyze and, for each workload, takes the actions Apply mode
  would take: those whose verdict is Recommended, or Possible with nothing required but what the
  patch itself does, and that kopek applies to that kind (DaemonSets: Arm64 only; Jobs and
  ReplicaSets: none; workloads another controller owns: none, change their owner). Unlike Apply
  mode it ignores the policy's mode and spec.apply.actions, approvals and GitOps marks: it is
  for the workloads Argo CD or Flux manage, which Apply mode leaves alone. The change is the one
  Apply mode would patch, computed over the fields as the dump holds them.

  For Arm64, kopek must know the images' platforms: pass --image-platforms or --registry-lookup
  (without them arm64 is Unknown and no Arm64 change is printed). CrossZone prints the zone
  spread the pod template needs, if any, and a patch of each Service whose traffic must stay in
  its zone (spec.trafficDistribution, or the topology-mode annotation before Kubernetes 1.31).

Options (and every input option of kopek analyze: -n, --image-platforms, --registry-lookup,
--insecure-registries, --live-prices, --region, --prometheus-url and the traffic flags):
  -f, --filename FILE       a dump to read; repeat for several; "-" reads standard input
      --workload NS/KIND/NAME
                            only this workload (kind as kubectl names it, any case); an error
                            lists close names when the dump has none by that name
      --action LIST         only these actions, comma-separated: Spot, Arm64, CrossZone
                            (default: all three)
  -o, --output FORMAT       yaml (default): per workload a comment line (what changes, the
                            monthly saving) and a strategic-merge patch: apiVersion, kind,
                            metadata.name/namespace and the pod spec's nodeSelector, affinity,
                            tolerations and topologySpreadConstraints that change, as they must be
                            afterwards (lists whole, null for what goes); documents separated by
                            ---. Apply one with kubectl patch --type=strategic --patch-file
                            (--type=merge for an Argo Rollout), or commit it as a kustomize patch.
                            kustomize: a patches: list to put in a kustomization.yaml, each entry
                            with its target (group, version, kind, name, namespace) and the same
                            patch inline. Drop the namespace lines of a target when the
                            kustomization sets the namespace itself.
  -q, --quiet               do not print warnings (what each workload does not change is still
                            said on stderr)
  -h, --help                this help

Exit codes:
  0  at least one patch was printed (workloads with nothing to change are named on stderr)
  1  usage error: unknown option, missing or bad value (--workload, --action, -o)
  2  an input could not be used (as for kopek analyze), or --workload names a workload the dump
     does not hold or kopek does not analyse (the error lists close names)
  3  internal error (a bug in kopek; run with KOPEK_DEBUG=1 for the stack trace and report it)
  4  nothing to change: no workload has a change to print (stderr says why for each)
`;

class UsageError extends Error {
  override name = 'UsageError';
}

/** What analyze and patch read, and how: the inputs and the facts' sources. */
interface InputArgs {
  files: string[];
  /** Where objects without metadata.namespace go (-n), as with kubectl apply. */
  namespace?: string;
  imagePlatforms?: string;
  registryLookup: boolean;
  livePrices: boolean;
  insecureRegistries: string[];
  region?: string;
  quiet: boolean;
  help: boolean;
  traffic?: TrafficConfig;
}

/** The options of analyze and patch; --workload and --action are patch's only. */
const INPUT_OPTIONS = {
  filename: { type: 'string', short: 'f', multiple: true },
  namespace: { type: 'string', short: 'n' },
  'image-platforms': { type: 'string' },
  'registry-lookup': { type: 'boolean' },
  'live-prices': { type: 'boolean' },
  'insecure-registries': { type: 'string' },
  region: { type: 'string' },
  output: { type: 'string', short: 'o' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
  workload: { type: 'string' },
  action: { type: 'string' },
  // kopek run's traffic flags (operator/traffic/flags.ts), but the refresh: analyze reads once.
  'prometheus-url': { type: 'string' },
  'prometheus-bearer-token-file': { type: 'string' },
  'prometheus-ca-file': { type: 'string' },
  'prometheus-timeout': { type: 'string' },
  'traffic-source': { type: 'string' },
  'traffic-window': { type: 'string' },
  'traffic-query-beyla': { type: 'string' },
  'traffic-query-istio': { type: 'string' },
  'traffic-query-kubecost': { type: 'string' },
} as const;

const PATCH_ONLY = ['workload', 'action'] as const;

/** The arguments of `command` (analyze or patch): the inputs, and the command's own values. */
function parseInputArgs(
  command: 'analyze' | 'patch',
  argv: readonly string[],
): { input: InputArgs; output?: string; workload?: string; action?: string } {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: INPUT_OPTIONS, strict: true }));
  } catch (error) {
    throw new UsageError(usageMessage(error));
  }
  if (command !== 'patch')
    for (const flag of PATCH_ONLY)
      if (values[flag] !== undefined) throw new UsageError(`unknown option --${flag}`);
  const input: InputArgs = {
    files: values.filename ?? [],
    quiet: values.quiet ?? false,
    help: values.help ?? false,
    registryLookup: values['registry-lookup'] ?? false,
    livePrices: values['live-prices'] ?? false,
    insecureRegistries: (values['insecure-registries'] ?? '')
      .split(',')
      .map((host) => host.trim())
      .filter(Boolean),
  };
  if (values['image-platforms'] !== undefined) input.imagePlatforms = values['image-platforms'];
  if (values.namespace !== undefined) input.namespace = values.namespace;
  if (values.region !== undefined) {
    if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(values.region))
      throw new UsageError(`--region ${values.region} is not an AWS region name like us-east-1`);
    input.region = values.region;
  }
  if (!input.help && input.files.length === 0) {
    throw new UsageError(`${command} needs at least one -f FILE`);
  }
  const trafficConfig = parseTrafficConfig(
    (flag) => {
      const value = (values as Record<string, unknown>)[flag];
      return typeof value === 'string' ? value : undefined;
    },
    (message) => {
      throw new UsageError(message);
    },
  );
  if (trafficConfig) input.traffic = trafficConfig;
  return {
    input,
    ...(values.output !== undefined ? { output: values.output } : {}),
    ...(values.workload !== undefined ? { workload: values.workload } : {}),
    ...(values.action !== undefined ? { action: values.action } : {}),
  };
}

/** util.parseArgs' errors, in the words of kopek's usage messages. */
function usageMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const option = /'(-[^' ,]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option ?? message}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${option ?? message} needs a value`;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const argument = /'([^']+)'/.exec(message)?.[1];
    return `unexpected argument ${argument ?? ''}`.trim();
  }
  return message;
}

function readInput(io: CliIO, path: string): string | Uint8Array {
  try {
    return path === '-' ? io.readStdin() : io.readFile(path);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : (e as Error).message;
    throw new InputError(`${path === '-' ? 'standard input' : path}: cannot read: ${why}`);
  }
}

/** What the inputs hold: the objects, the facts' sources and prices, and warnings so far. */
interface LoadedInput {
  objects: unknown[];
  options: BuildOptions;
  prices: PriceSource;
  traffic?: TrafficInput;
  warnings: string[];
}

/** Reads the dumps and everything else the facts need, as analyze and patch both do. */
async function loadInput(args: InputArgs, io: CliIO): Promise<LoadedInput> {
  const warnings: string[] = [];
  const objects: unknown[] = [];
  for (const file of args.files) {
    const source = file === '-' ? 'standard input' : file;
    const docs = parseDump(readInput(io, file), source);
    requireKubeObjects(docs, source);
    objects.push(...docs);
  }
  const namespace = args.namespace ?? 'default';
  const placed = defaultNamespace(objects, namespace);
  if (placed > 0)
    warnings.push(
      `${placed} object${placed === 1 ? ' has' : 's have'} no metadata.namespace: read as in namespace ${namespace}, as kubectl apply would place ${placed === 1 ? 'it' : 'them'}${args.namespace === undefined ? ' (-n NS for another)' : ''}`,
    );
  const options: BuildOptions = {};
  if (args.region !== undefined) options.region = args.region;
  if (args.imagePlatforms !== undefined) {
    options.imagePlatforms = parseImagePlatforms(
      decodeDump(readInput(io, args.imagePlatforms)).text,
      args.imagePlatforms,
      warnings,
    );
  }
  if (args.registryLookup) {
    // Ask the registries for every image; the platforms file, when given, wins over them.
    const source = new RegistryImageSource({
      registry: new RegistryClient({ insecureRegistries: args.insecureRegistries }),
      log: silentLogger,
      readPullSecrets: false,
    });
    options.imagePlatforms = {
      ...(await source.resolve(imageRequests(objects))),
      ...options.imagePlatforms,
    };
  }
  let traffic: TrafficInput | undefined;
  if (args.traffic) {
    const telemetry = trafficTelemetry(args.traffic);
    const report = await telemetry.refresh();
    traffic = telemetry.current();
    if (report.error !== undefined)
      warnings.push(`traffic: ${report.error}; cross-zone shares are estimated`);
  }
  const prices = args.livePrices
    ? await livePrices(objects, args.region, warnings)
    : fixedPrices(SNAPSHOT_PRICES);
  return { objects, options, prices, ...(traffic ? { traffic } : {}), warnings };
}

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

/**
 * Live prices for the dump's region, fetched once through the operator's own price source (the
 * AWS SDK loads only now); failed calls become warnings.
 */
async function livePrices(
  objects: readonly unknown[],
  region: string | undefined,
  warnings: string[],
): Promise<PriceSource> {
  const prices = new LivePrices({
    base: SNAPSHOT_PRICES,
    ...(region !== undefined ? { region } : {}),
    nodeLabels: () => nodeLabelsOf(objects),
    refreshIntervalMs: 3_600_000,
    log: silentLogger,
  });
  try {
    for (const outcome of await prices.refresh()) {
      if (outcome.ok === false)
        warnings.push(`live prices: ${IAM_ACTIONS[outcome.call]}: ${outcome.message}`);
    }
  } finally {
    await prices.stop();
  }
  return prices;
}

const PATCH_OUTPUTS = ['yaml', 'kustomize'] as const;

/** `kopek patch`: what Apply mode would change, as the files a person commits to Git. */
async function patch(argv: readonly string[], io: CliIO): Promise<number> {
  const { input: args, output = 'yaml', workload, action } = parseInputArgs('patch', argv);
  if (!(PATCH_OUTPUTS as readonly string[]).includes(output))
    throw new UsageError(`-o ${output}: the output format must be yaml or kustomize`);
  const wanted = workload === undefined ? undefined : parseWorkloadName(workload);
  if (workload !== undefined && wanted === undefined)
    throw new UsageError(
      `--workload ${workload}: expected namespace/kind/name, e.g. shop/Deployment/web`,
    );
  const parsedActions = action === undefined ? undefined : parseActions(action);
  if (parsedActions !== undefined && 'unknown' in parsedActions)
    throw new UsageError(
      `--action ${action ?? ''}: expected a comma-separated list of ${OPTIMIZATIONS.join(', ')}`,
    );
  if (args.help) {
    io.stdout(PATCH_HELP);
    return EXIT_OK;
  }
  const { objects, options, prices, traffic, warnings } = await loadInput(args, io);
  const built = buildFacts(objects, options, traffic);
  warnings.push(...built.warnings);
  const workloads = wanted === undefined ? built.facts : selectWorkload(built, wanted);
  const { dumped, services } = indexDump(objects);
  const documents: PatchDocument[] = [];
  const notes: string[] = [];
  for (const facts of workloads) {
    const key = workloadKey(facts);
    const object = dumped.get(key) ?? {};
    const plan = planCommit({
      facts: withPlacementScore(facts, prices),
      prices: prices.book(),
      workload: object,
      services: services.get(facts.namespace) ?? new Map(),
      ...(parsedActions !== undefined ? { actions: parsedActions.actions } : {}),
    });
    if ('nothing' in plan) {
      notes.push(`${key}: ${plan.nothing}`);
      continue;
    }
    documents.push(
      ...patchDocuments({
        apiVersion: typeof object.apiVersion === 'string' ? object.apiVersion : 'apps/v1',
        kind: facts.kind,
        name: facts.name,
        namespace: facts.namespace,
        ...plan,
      }),
    );
  }
  if (!args.quiet) for (const w of warnings) io.stderr(`warning: ${w}\n`);
  for (const note of notes) io.stderr(`${note}\n`);
  if (documents.length === 0) {
    io.stderr('kopek: nothing to change\n');
    return EXIT_NOTHING_TO_CHANGE;
  }
  io.stdout(output === 'kustomize' ? renderKustomize(documents) : renderYaml(documents));
  return EXIT_OK;
}

const COMMANDS: Record<string, (argv: readonly string[], io: CliIO) => Promise<number>> = {
  analyze,
  patch,
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
