import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { runBuildScript } from '../cluster/binaries.ts';

/** The chart under test. */
export const CHART_DIR = fileURLToPath(new URL('../../charts/kopek/', import.meta.url));

const BUILD_SCRIPT = fileURLToPath(new URL('./build/build.sh', import.meta.url));

let helmBinary: Promise<string> | undefined;

/**
 * Builds helm from the pinned module in test/chart/build/helm once (cached outside git, like the
 * control plane's binaries) and returns its path.
 */
export function ensureHelm(): Promise<string> {
  helmBinary ??= runBuildScript(BUILD_SCRIPT, 'helm').then((dir) => join(dir, 'helm'));
  return helmBinary;
}

/**
 * Helm's config, cache and data directories live beside the cached binary, not in $HOME. No
 * test adds chart repositories, so runs can share them (and nothing is left behind in /tmp).
 */
function helmEnv(binary: string): NodeJS.ProcessEnv {
  const home = join(dirname(binary), 'home');
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
}

export interface HelmResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface HelmOptions {
  /** Resolve with a non-zero exit code instead of rejecting. */
  allowFailure?: boolean;
}

/** Runs the pinned helm with `args`. */
export async function helm(args: string[], options: HelmOptions = {}): Promise<HelmResult> {
  const binary = await ensureHelm();
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      args,
      { env: helmEnv(binary), maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const exitCode = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        if (exitCode !== 0 && !options.allowFailure) {
          reject(new Error(`helm ${args.join(' ')} failed (exit ${exitCode}): ${stderr.trim()}`));
        } else {
          resolve({ stdout, stderr, exitCode });
        }
      },
    );
  });
}

/** Values as `--set-json` arguments, one per top-level key (no temporary files to clean up). */
export function valuesArgs(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([key, value]) => [
    '--set-json',
    `${key}=${JSON.stringify(value)}`,
  ]);
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Values, passed as a file. */
  values?: Record<string, unknown>;
  /** Extra arguments, e.g. ['--api-versions', 'monitoring.coreos.com/v1']. */
  args?: string[];
}

/** `helm template` of the chart; resolves with the rendered YAML (rejects when helm fails). */
export async function renderChart(options: RenderOptions = {}): Promise<string> {
  const args = [
    'template',
    options.release ?? 'kopek',
    CHART_DIR,
    '--namespace',
    options.namespace ?? 'kopek',
    ...(options.values ? valuesArgs(options.values) : []),
    ...(options.args ?? []),
  ];
  return (await helm(args)).stdout;
}

/** A rendered Kubernetes object, loosely typed: tests read the fields they check. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** The objects of a multi-document YAML stream (empty documents skipped); throws on bad YAML. */
export function parseManifests(text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const document of parseAllDocuments(text)) {
    if (document.errors.length > 0) {
      throw new Error(`rendered YAML does not parse: ${document.errors[0]?.message ?? ''}`);
    }
    const object = document.toJS() as KubeObject | null;
    if (object !== null) objects.push(object);
  }
  return objects;
}

/** The one object of `kind` (and `name`, when given); throws naming what was there instead. */
export function findObject(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const matches = objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  const [match] = matches;
  if (matches.length !== 1 || match === undefined) {
    const present = objects.map((object) => `${object.kind}/${object.metadata.name}`).join(', ');
    throw new Error(
      `expected one ${kind}${name ? `/${name}` : ''} in the rendered chart, found ${matches.length}; objects: ${present}`,
    );
  }
  return match;
}
