/** The chart's default values that scripts run kopek with, so they run it as the chart does. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export interface ChartDefaults {
  /** NODE_OPTIONS of the kopek container, split into flags. */
  nodeFlags: string[];
  /** mallocEnv: glibc malloc's environment variables for the kopek container. */
  mallocEnv: Record<string, string>;
  /** resources.limits.memory of the kopek container (a Kubernetes quantity), if set. */
  memoryLimit: string | undefined;
}

export function chartDefaults(
  valuesYaml = readFileSync(new URL('../../charts/kopek/values.yaml', import.meta.url), 'utf8'),
): ChartDefaults {
  const values = parse(valuesYaml) as {
    nodeOptions?: unknown;
    mallocEnv?: Record<string, unknown>;
    resources?: { limits?: { memory?: unknown } };
  };
  const nodeOptions = typeof values.nodeOptions === 'string' ? values.nodeOptions : '';
  const memory = values.resources?.limits?.memory;
  return {
    nodeFlags: nodeOptions.split(/\s+/).filter((flag) => flag !== ''),
    // A variable set to null is left out, as the chart's template does.
    mallocEnv: Object.fromEntries(
      Object.entries(values.mallocEnv ?? {}).flatMap(([name, value]) =>
        typeof value === 'string' || typeof value === 'number' ? [[name, String(value)]] : [],
      ),
    ),
    memoryLimit: typeof memory === 'string' ? memory : undefined,
  };
}
