#!/usr/bin/env node
/**
 * The kopek command line. `kopek analyze` runs the recommender offline over a kubectl dump;
 * more subcommands (e.g. `run`, the operator) plug into COMMANDS.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import pkg from '../../package.json' with { type: 'json' };
import { imageRequests, RegistryImageSource } from '../images.ts';
import { silentLogger } from '../log.ts';
import { RegistryClient } from '../registry/client.ts';
import { runCommand } from '../run.ts';
import { rfc3339 } from '../time.ts';
import type { BuildOptions } from '../../recommender/facts-from-objects.ts';
import {
  InputError,
  analyzeObjects,
  formatTable,
  parseDump,
  parseImagePlatforms,
  requireKubeObjects,
} from './analyze.ts';

/** Exit codes, as documented in the help text. */
export const EXIT_OK = 0;
export const EXIT_USAGE = 1;
export const EXIT_INPUT = 2;
export const EXIT_INTERNAL = 3;

/** What a command may touch; tests pass their own. */
export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readFile: (path: string) => string;
  readStdin: () => string;
  /** RFC 3339 time for the Ready condition. */
  now: () => string;
  env: Readonly<Record<string, string | undefined>>;
}

export const HELP = `kopek — cost recommendations for workloads on Amazon EKS: Spot, Graviton (arm64), cross-AZ traffic.

Usage:
  kopek analyze -f FILE [-f FILE ...] [--image-platforms FILE] [--registry-lookup] [--region REGION] [-o table|json|yaml]
  kopek run [flags]         the operator (see kopek run --help)
  kopek help
  kopek --version

kopek analyze
  Reads a dump made with kubectl (a List, or multi-document YAML, or JSON) holding nodes, pods,
  workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Argo Rollouts),
  PodDisruptionBudgets, HorizontalPodAutoscalers, Services and EndpointSlices (SavingsPolicies,
  Namespaces, PersistentVolumeClaims and PersistentVolumes are used when present), and prints one
  WorkloadRecommendation per workload, as the operator would write it. For example:

    kubectl get nodes,pods,deploy,sts,ds,rs,jobs,cronjobs,pdb,hpa,svc,endpointslices -A -o yaml > dump.yaml
    kopek analyze -f dump.yaml --image-platforms platforms.json

  System namespaces (kube-system, kube-public, kube-node-lease) and workloads annotated
  kopek.dev/ignore: "true" get no recommendation. Prices come from the embedded snapshot.

Options:
  -f, --filename FILE       a dump to read; repeat for several; "-" reads standard input
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
      --region REGION       region for prices (default: the nodes' topology.kubernetes.io/region;
                            us-east-1 when they have none)
  -o, --output FORMAT       table (default), json or yaml (a v1 List of WorkloadRecommendations)
  -q, --quiet               do not print warnings
  -h, --help                this help

Exit codes:
  0  the recommendations were printed (problems with single objects are warnings on stderr)
  1  usage error: unknown command or option, missing or bad value
  2  an input could not be used: file missing or unreadable, not YAML/JSON, no Kubernetes
     objects in it, or an image-platforms file that is not a JSON object
  3  internal error (a bug in kopek; run with KOPEK_DEBUG=1 for the stack trace and report it)
`;

class UsageError extends Error {
  override name = 'UsageError';
}

interface AnalyzeArgs {
  files: string[];
  imagePlatforms?: string;
  registryLookup: boolean;
  insecureRegistries: string[];
  region?: string;
  output: 'table' | 'json' | 'yaml';
  quiet: boolean;
  help: boolean;
}

function parseAnalyzeArgs(argv: readonly string[]): AnalyzeArgs {
  const args: AnalyzeArgs = {
    files: [],
    output: 'table',
    quiet: false,
    help: false,
    registryLookup: false,
    insecureRegistries: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] ?? '';
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const value = (): string => {
      if (eq > 0) return raw.slice(eq + 1);
      const v = argv[i + 1];
      if (v === undefined || (v.startsWith('-') && v !== '-')) {
        throw new UsageError(`${flag} needs a value`);
      }
      i++;
      return v;
    };
    switch (flag) {
      case '-f':
      case '--filename':
        args.files.push(value());
        break;
      case '--image-platforms':
        args.imagePlatforms = value();
        break;
      case '--registry-lookup':
        args.registryLookup = true;
        break;
      case '--insecure-registries':
        args.insecureRegistries = value()
          .split(',')
          .map((host) => host.trim())
          .filter(Boolean);
        break;
      case '--region': {
        const region = value();
        if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
          throw new UsageError(`--region ${region} is not an AWS region name like us-east-1`);
        }
        args.region = region;
        break;
      }
      case '-o':
      case '--output': {
        const o = value();
        if (o !== 'table' && o !== 'json' && o !== 'yaml') {
          throw new UsageError(`-o ${o}: the output format must be table, json or yaml`);
        }
        args.output = o;
        break;
      }
      case '-q':
      case '--quiet':
        args.quiet = true;
        break;
      case '-h':
      case '--help':
        args.help = true;
        break;
      default:
        throw new UsageError(
          raw.startsWith('-') ? `unknown option ${raw}` : `unexpected argument ${raw}`,
        );
    }
  }
  if (!args.help && args.files.length === 0) {
    throw new UsageError('analyze needs at least one -f FILE');
  }
  return args;
}

function readInput(io: CliIO, path: string): string {
  try {
    return path === '-' ? io.readStdin() : io.readFile(path);
  } catch (e) {
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

async function analyze(argv: readonly string[], io: CliIO): Promise<number> {
  const args = parseAnalyzeArgs(argv);
  if (args.help) {
    io.stdout(HELP);
    return EXIT_OK;
  }
  const warnings: string[] = [];
  const objects: unknown[] = [];
  for (const file of args.files) {
    const source = file === '-' ? 'standard input' : file;
    const docs = parseDump(readInput(io, file), source);
    requireKubeObjects(docs, source);
    objects.push(...docs);
  }
  const options: BuildOptions = {};
  if (args.region !== undefined) options.region = args.region;
  if (args.imagePlatforms !== undefined) {
    options.imagePlatforms = parseImagePlatforms(
      readInput(io, args.imagePlatforms),
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
  const result = analyzeObjects(objects, options, io.now());
  warnings.push(...result.warnings);
  if (!args.quiet) for (const w of warnings) io.stderr(`warning: ${w}\n`);
  if (args.output === 'json') io.stdout(`${JSON.stringify(result.list, null, 2)}\n`);
  else if (args.output === 'yaml')
    io.stdout(
      stringify(result.list, { lineWidth: 0, version: '1.1', aliasDuplicateObjects: false }),
    );
  else io.stdout(formatTable(result.list.items));
  return EXIT_OK;
}

const COMMANDS: Record<string, (argv: readonly string[], io: CliIO) => Promise<number>> = {
  analyze,
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
    readFile: (p) => readFileSync(p, 'utf8'),
    readStdin: () => readFileSync(0, 'utf8'),
    now: () => rfc3339(new Date()),
    env: process.env,
  };
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'run') {
    // The operator runs until a signal; its own exit codes are listed in kopek run --help.
    void runCommand(rest).then((code) => process.exit(code));
  } else {
    void main(process.argv.slice(2), io).then((code) => {
      process.exitCode = code;
    });
  }
}
