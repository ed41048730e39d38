import type { KubeObject } from './helm.ts';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath?: string } };
}

/** The parts of the chart's operator container the tests use. */
export interface OperatorContainer {
  name: string;
  image: string;
  args: string[];
  env: EnvVar[];
  ports: { name: string; containerPort: number }[];
}

/** The Deployment's kopek container; throws if the pod template does not have exactly one. */
export function operatorContainer(deployment: KubeObject): OperatorContainer {
  const spec = deployment.spec as
    { template?: { spec?: { containers?: OperatorContainer[] } } } | undefined;
  const containers = spec?.template?.spec?.containers ?? [];
  const [container] = containers;
  if (containers.length !== 1 || container === undefined) {
    throw new Error(
      `expected one container in Deployment ${deployment.metadata.name}, found ${containers.length}`,
    );
  }
  return container;
}

/**
 * The `kopek run` flags and environment the chart gives the operator, as a pod `pod` would get
 * them (downward-API fields filled in), for running the operator as a process outside the
 * cluster: the leading `run` is dropped and `overrides` replace (or add) flags by name, e.g.
 * `{ kubeconfig: path, 'metrics-bind-address': '127.0.0.1:0' }`.
 */
export function operatorCommand(
  deployment: KubeObject,
  pod: { namespace: string; name: string },
  overrides: Record<string, string>,
): { args: string[]; env: Record<string, string> } {
  const container = operatorContainer(deployment);
  const [command, ...flags] = container.args;
  if (command !== 'run') {
    throw new Error(
      `the chart's container should run "kopek run", its args are ${container.args.join(' ')}`,
    );
  }
  const args: string[] = [];
  for (const flag of flags) {
    const name = /^--([a-z-]+)=/.exec(flag)?.[1];
    if (name === undefined) throw new Error(`the chart passes ${flag}; use --name=value`);
    if (!(name in overrides)) args.push(flag);
  }
  for (const [name, value] of Object.entries(overrides)) args.push(`--${name}=${value}`);

  const fields: Record<string, string> = {
    'metadata.namespace': pod.namespace,
    'metadata.name': pod.name,
  };
  const env: Record<string, string> = {};
  for (const variable of container.env) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    const value = fieldPath === undefined ? variable.value : fields[fieldPath];
    if (value === undefined) {
      throw new Error(`cannot resolve env ${variable.name} of the chart's container outside a pod`);
    }
    env[variable.name] = value;
  }
  return { args, env };
}
