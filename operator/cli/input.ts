/**
 * What kopek's commands share: the I/O a command may touch, the exit codes, usage errors, and the
 * input options analyze and patch both take and the reading of those inputs into objects, facts'
 * sources and prices.
 */
import { parseArgs } from 'node:util';
import { LivePrices, nodeLabelsOf } from '../aws/live-prices.ts';
import { IAM_ACTIONS } from '../aws/sdk.ts';
import { imageRequests, RegistryImageSource } from '../images.ts';
import { silentLogger } from '../log.ts';
import { RegistryClient } from '../registry/client.ts';
import { parseTrafficConfig, trafficTelemetry, type TrafficConfig } from '../traffic/config.ts';
import type { TrafficInput } from '../../recommender/traffic.ts';
import type { BuildOptions } from '../../recommender/facts-from-objects.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { fixedPrices, type PriceSource } from '../prices.ts';
import {
  InputError,
  decodeDump,
  defaultNamespace,
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
  /** A file's bytes (or text); throws InputError when it is too large to analyse. */
  readFile: (path: string) => string | Uint8Array;
  readStdin: () => string | Uint8Array;
  /** RFC 3339 time for the Ready condition. */
  now: () => string;
  env: Readonly<Record<string, string | undefined>>;
}

export class UsageError extends Error {
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
export function parseInputArgs(
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
export async function loadInput(args: InputArgs, io: CliIO): Promise<LoadedInput> {
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
