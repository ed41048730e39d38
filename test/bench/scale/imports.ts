/**
 * What importing kopek costs before it does anything: `node -e "await import(…)"` of the CLI's
 * entry point through the project's Node, its wall time and peak RSS (median of a few runs), beside
 * bare Node and each heavy dependency alone, so the difference says where it comes from.
 */
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { timed } from './timed.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ImportCost {
  what: string;
  seconds: number;
  maxRssBytes: number;
}

export interface ImportTarget {
  what: string;
  /** A package, or a file (absolute, or relative to the repository); none: bare Node. */
  specifier?: string;
}

export const IMPORT_TARGETS: readonly ImportTarget[] = [
  { what: 'bare node (no import)' },
  { what: 'operator/cli/kopek.ts (the entry point)', specifier: 'operator/cli/kopek.ts' },
  { what: '@kubernetes/client-node', specifier: '@kubernetes/client-node' },
  { what: '@aws-sdk/client-ecr', specifier: '@aws-sdk/client-ecr' },
  { what: 'prom-client', specifier: 'prom-client' },
  { what: 'undici', specifier: 'undici' },
  { what: 'yaml', specifier: 'yaml' },
  { what: 'recommender/recommend.ts (+ price snapshot)', specifier: 'recommender/recommend.ts' },
];

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function importCosts(
  runs = 5,
  targets: readonly ImportTarget[] = IMPORT_TARGETS,
): Promise<ImportCost[]> {
  const out: ImportCost[] = [];
  for (const target of targets) {
    let code = '0';
    if (target.specifier !== undefined) {
      const resolved = /\.[jt]s$/.test(target.specifier)
        ? pathToFileURL(resolve(ROOT, target.specifier)).href
        : target.specifier;
      code = `await import(${JSON.stringify(resolved)})`;
    }
    const seconds: number[] = [];
    const rss: number[] = [];
    for (let run = 0; run < runs; run++) {
      const result = await timed(process.execPath, ['-e', code], { cwd: ROOT });
      if (result.exitCode !== 0)
        throw new Error(`importing ${target.what} failed: ${result.stderr.slice(0, 500)}`);
      seconds.push(result.seconds);
      rss.push(result.maxRssBytes);
    }
    out.push({ what: target.what, seconds: median(seconds), maxRssBytes: median(rss) });
  }
  return out;
}
