import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { loadKubeConfig, type KubeConnection } from '../../operator/kube/kubeconfig.ts';
import { ensureBinaries, type Binaries } from './binaries.ts';
import { fleetNodes, KWOK_NODE_ANNOTATION, type Fleet } from './fleet.ts';
import { createPki, type ClientIdentity, type Pki } from './pki.ts';
import { Component, waitUntil } from './process.ts';
import { freePort } from '../support/ports.ts';

export type ComponentName =
  'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';
const START_ORDER: ComponentName[] = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
];

export interface StartOptions {
  /** Working directory for certificates, data and logs; a fresh temporary one when absent. */
  dir?: string;
  /** Components stop when this process goes away (default: the current process). */
  ownerPid?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /**
   * Extra flags per component, after the defaults (a repeated flag takes the later value), e.g.
   * higher client QPS for a benchmark's setup. Default: none.
   */
  componentArgs?: Partial<Record<ComponentName, readonly string[]>>;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface KubectlOptions {
  input?: string;
  /** Act as this user through impersonation, e.g. "system:serviceaccount:kopek:kopek". */
  as?: string;
  /** Resolve with a non-zero exit code instead of rejecting. */
  allowFailure?: boolean;
}

/** GET a URL on loopback; resolves with the status code and body. */
function get(
  url: string,
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const callback = (response: import('node:http').IncomingMessage): void => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, body });
      });
    };
    const req = url.startsWith('https:')
      ? request(
          url,
          {
            ca: tls?.ca,
            cert: tls?.cert,
            key: tls?.key,
            rejectUnauthorized: !tls?.insecure,
            timeout: 5000,
          },
          callback,
        )
      : httpRequest(url, { timeout: 5000 }, callback);
    req.on('timeout', () => req.destroy(new Error(`timeout reading ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver (TLS, RBAC, service-account
 * tokens), kube-controller-manager, kube-scheduler, and KWOK simulating the nodes' kubelets.
 */
export class LocalCluster {
  readonly dir: string;
  readonly binaries: Binaries;
  readonly pki: Pki;
  readonly server: string;
  /** Admin kubeconfig (client certificate in system:masters). */
  readonly kubeconfigPath: string;
  private readonly components = new Map<ComponentName, Component>();
  private readonly ownerPid: number;
  private readonly log: (line: string) => void;
  private readonly exitHandler = (): void => {
    for (const component of this.components.values()) component.killGroup();
  };

  private constructor(
    dir: string,
    binaries: Binaries,
    pki: Pki,
    ports: Record<'etcd' | 'etcdPeer' | 'apiserver' | 'kcm' | 'scheduler' | 'kwok', number>,
    options: StartOptions,
  ) {
    this.dir = dir;
    this.binaries = binaries;
    this.pki = pki;
    this.ownerPid = options.ownerPid ?? process.pid;
    this.log = options.log ?? (() => undefined);
    this.server = `https://127.0.0.1:${ports.apiserver}`;
    this.kubeconfigPath = join(dir, 'admin.kubeconfig');
    const logs = join(dir, 'logs');
    const kubeconfig = (identity: ClientIdentity): string => join(dir, `${identity}.kubeconfig`);
    const etcdUrl = `http://127.0.0.1:${ports.etcd}`;
    const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
    const specs: Record<ComponentName, { command: string; args: string[] }> = {
      etcd: {
        command: binaries.etcd,
        args: [
          '--name=kopek',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=kopek=${peerUrl}`,
          '--listen-metrics-urls=',
          // A throwaway test store: fsync only costs time here.
          '--unsafe-no-fsync',
          '--log-level=warn',
          '--quota-backend-bytes=4294967296',
        ],
      },
      'kube-apiserver': {
        command: binaries.kubeApiserver,
        args: [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${ports.apiserver}`,
          '--advertise-address=127.0.0.1',
          `--tls-cert-file=${pki.servingCert}`,
          `--tls-private-key-file=${pki.servingKey}`,
          `--client-ca-file=${pki.caCert}`,
          '--authorization-mode=Node,RBAC',
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${pki.serviceAccountPub}`,
          `--service-account-signing-key-file=${pki.serviceAccountKey}`,
          '--service-cluster-ip-range=10.96.0.0/16',
          // No real network: nothing routes to the advertised loopback address.
          '--endpoint-reconciler-type=none',
          '--allow-privileged=true',
          '--profiling=false',
          `--cert-dir=${join(dir, 'apiserver-certs')}`,
        ],
      },
      'kube-controller-manager': {
        command: binaries.kubeControllerManager,
        args: [
          `--kubeconfig=${kubeconfig('kube-controller-manager')}`,
          `--authentication-kubeconfig=${kubeconfig('kube-controller-manager')}`,
          `--authorization-kubeconfig=${kubeconfig('kube-controller-manager')}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${ports.kcm}`,
          `--service-account-private-key-file=${pki.serviceAccountKey}`,
          `--root-ca-file=${pki.caCert}`,
          '--use-service-account-credentials=true',
          '--leader-elect=false',
          `--cert-dir=${join(dir, 'kcm-certs')}`,
          // Fast enough for tests to see Deployments roll and garbage collection finish.
          '--concurrent-deployment-syncs=10',
          '--concurrent-replicaset-syncs=10',
          '--concurrent-gc-syncs=20',
        ],
      },
      'kube-scheduler': {
        command: binaries.kubeScheduler,
        args: [
          `--kubeconfig=${kubeconfig('kube-scheduler')}`,
          `--authentication-kubeconfig=${kubeconfig('kube-scheduler')}`,
          `--authorization-kubeconfig=${kubeconfig('kube-scheduler')}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${ports.scheduler}`,
          '--leader-elect=false',
          `--cert-dir=${join(dir, 'scheduler-certs')}`,
        ],
      },
      kwok: {
        command: binaries.kwok,
        args: [
          `--kubeconfig=${kubeconfig('kwok')}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
          '--cidr=10.0.0.1/16',
          '--node-ip=10.0.0.1',
          `--server-address=127.0.0.1:${ports.kwok}`,
          `--node-lease-duration-seconds=40`,
        ],
      },
    };
    for (const name of START_ORDER) {
      const { command, args } = specs[name];
      this.components.set(
        name,
        new Component({
          name,
          command,
          args: [...args, ...(options.componentArgs?.[name] ?? [])],
          logPath: join(logs, `${name}.log`),
        }),
      );
    }
    this.healthChecks = {
      etcd: async () => (await get(`${etcdUrl}/health`)).body.includes('"health":"true"'),
      'kube-apiserver': async () => {
        let answer: { status: number; body: string };
        try {
          answer = await this.adminGet('/readyz?verbose');
        } catch (error) {
          const failing = String(error);
          if (failing !== this.apiserverWaitedOn.at(-1)?.failing)
            this.apiserverWaitedOn.push({ at: Date.now(), failing });
          throw error;
        }
        // The checks that failed, and since when, to say what a slow start waited on.
        if (answer.status !== 200) {
          const failing =
            answer.body
              .split('\n')
              .filter((line) => line.startsWith('[-]'))
              .map((line) => line.slice(3).replace(/ failed: reason withheld$/, ''))
              .join(', ') || `HTTP ${answer.status}`;
          if (failing !== this.apiserverWaitedOn.at(-1)?.failing)
            this.apiserverWaitedOn.push({ at: Date.now(), failing });
        }
        return answer.status === 200;
      },
      'kube-controller-manager': async () =>
        (await get(`https://127.0.0.1:${ports.kcm}/healthz`, { insecure: true })).status === 200,
      'kube-scheduler': async () =>
        (await get(`https://127.0.0.1:${ports.scheduler}/healthz`, { insecure: true })).status ===
        200,
      kwok: async () => (await get(`http://127.0.0.1:${ports.kwok}/healthz`)).status === 200,
    };
  }

  private readonly healthChecks: Record<ComponentName, () => Promise<boolean>>;
  /** What the API server's failed readiness checks said since it was started, when it changed. */
  private apiserverWaitedOn: { at: number; failing: string }[] = [];

  /** Builds the binaries if needed, then starts every component and waits for each to be healthy. */
  static async start(options: StartOptions = {}): Promise<LocalCluster> {
    const binaries = await ensureBinaries();
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'kopek-cluster-')));
    await mkdir(join(dir, 'logs'), { recursive: true });
    await mkdir(join(dir, 'pki'), { recursive: true });
    const pki = await createPki(join(dir, 'pki'));
    const ports = {
      etcd: await freePort(),
      etcdPeer: await freePort(),
      apiserver: await freePort(),
      kcm: await freePort(),
      scheduler: await freePort(),
      kwok: await freePort(),
    };
    const cluster = new LocalCluster(dir, binaries, pki, ports, options);
    await cluster.writeKubeconfigs();
    process.on('exit', cluster.exitHandler);
    try {
      for (const name of START_ORDER) await cluster.startComponent(name);
      await cluster.waitForDefaultServiceAccount();
    } catch (error) {
      await cluster.stop({ keepDir: true });
      throw error;
    }
    return cluster;
  }

  /** Starts one component (again) and waits until it is healthy (`timeoutMs`: on a busy machine). */
  async startComponent(name: ComponentName, timeoutMs?: number): Promise<void> {
    const component = this.component(name);
    const started = Date.now();
    this.apiserverWaitedOn = [];
    component.start(this.ownerPid);
    await waitUntil(
      component,
      'became healthy',
      this.healthChecks[name],
      timeoutMs ?? (name === 'kube-apiserver' ? 120_000 : 60_000),
    );
    // Each set of failing checks from the second it was first seen, e.g.
    // "0.4 s: poststarthook/rbac/bootstrap-roles, …; 12.0 s: poststarthook/rbac/bootstrap-roles".
    const waitedOn =
      name === 'kube-apiserver' && this.apiserverWaitedOn.length > 0
        ? ` (not ready: ${this.apiserverWaitedOn
            .map((w) => `${((w.at - started) / 1000).toFixed(1)} s: ${w.failing}`)
            .join('; ')})`
        : '';
    this.log(`${name} healthy in ${((Date.now() - started) / 1000).toFixed(1)} s${waitedOn}`);
  }

  /** Stops one component, e.g. to test how clients ride out an API server outage. */
  async stopComponent(name: ComponentName): Promise<void> {
    await this.component(name).stop();
  }

  /** kill -9 of one component (no graceful shutdown), for chaos tests; startComponent brings it back. */
  async killComponent(name: ComponentName): Promise<void> {
    await this.component(name).kill();
  }

  /** Stops every component (reverse order) and removes the working directory unless asked to keep it. */
  async stop(options: { keepDir?: boolean } = {}): Promise<void> {
    for (const name of [...START_ORDER].reverse()) await this.component(name).stop();
    process.off('exit', this.exitHandler);
    if (!options.keepDir) await rm(this.dir, { recursive: true, force: true });
  }

  /** kopek's connection (operator/kube/kubeconfig.ts) as the admin, or as `as` through impersonation. */
  connection(as?: string): KubeConnection {
    const admin = loadKubeConfig(this.kubeconfigPath);
    if (as === undefined) return admin;
    return {
      ...admin,
      credentials: async () => {
        const credentials = await admin.credentials();
        return { ...credentials, headers: { ...credentials.headers, 'Impersonate-User': as } };
      },
    };
  }

  /** A client-node KubeConfig for the admin, or for `as` through impersonation. */
  kubeConfig(as?: string): KubeConfig {
    const config = new KubeConfig();
    config.loadFromFile(this.kubeconfigPath);
    if (as !== undefined) {
      const user = config.getCurrentUser();
      if (!user) throw new Error('admin kubeconfig has no user');
      config.users = [{ ...user, impersonateUser: as }];
    }
    return config;
  }

  /**
   * Writes a kubeconfig that acts as a ServiceAccount through impersonation (the admin's
   * credentials, `as: system:serviceaccount:NS:NAME`) and returns its path. The API server adds
   * the ServiceAccount's groups, so RBAC treats requests exactly as the ServiceAccount's own.
   */
  async kubeconfigAsServiceAccount(namespace: string, name: string): Promise<string> {
    const path = join(this.dir, `sa-${namespace}-${name}.kubeconfig`);
    await writeFile(
      path,
      this.kubeconfigYaml('admin', `system:serviceaccount:${namespace}:${name}`),
    );
    return path;
  }

  /** Runs the built kubectl against this cluster. */
  kubectl(args: string[], options: KubectlOptions = {}): Promise<KubectlResult> {
    const fullArgs = [
      `--kubeconfig=${this.kubeconfigPath}`,
      ...(options.as ? [`--as=${options.as}`] : []),
      ...args,
    ];
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.binaries.kubectl,
        fullArgs,
        { maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const exitCode = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          if (exitCode !== 0 && !options.allowFailure) {
            reject(
              new Error(`kubectl ${args.join(' ')} failed (exit ${exitCode}): ${stderr.trim()}`),
            );
          } else {
            resolve({ stdout, stderr, exitCode });
          }
        },
      );
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  }

  /** Creates the fleet's KWOK nodes and waits until they are all Ready. */
  async addFleet(fleet: Fleet, options: { timeoutSeconds?: number } = {}): Promise<string[]> {
    const nodes = fleetNodes(fleet);
    await this.kubectl(['apply', '--server-side', '-f', '-'], {
      input: nodes.map((node) => JSON.stringify(node)).join('\n'),
    });
    const names = nodes.map((node) => node.metadata.name);
    await this.kubectl([
      'wait',
      '--for=condition=Ready',
      `--timeout=${options.timeoutSeconds ?? 120}s`,
      ...names.map((name) => `node/${name}`),
    ]);
    this.log(`${names.length} nodes Ready`);
    return names;
  }

  /** Where a component writes its log. */
  logPath(name: ComponentName): string {
    return this.component(name).spec.logPath;
  }

  private component(name: ComponentName): Component {
    const component = this.components.get(name);
    if (!component) throw new Error(`no component ${name}`);
    return component;
  }

  private async adminGet(path: string): Promise<{ status: number; body: string }> {
    const admin = this.pki.clients.admin;
    const [ca, cert, key] = await Promise.all([
      readFile(this.pki.caCert),
      readFile(admin.cert),
      readFile(admin.key),
    ]);
    return get(`${this.server}${path}`, { ca, cert, key });
  }

  /** The ServiceAccount controller's first work: proves controllers and token signing run. */
  private async waitForDefaultServiceAccount(): Promise<void> {
    await waitUntil(
      this.component('kube-controller-manager'),
      'created the default ServiceAccount',
      async () => {
        return (
          (await this.adminGet('/api/v1/namespaces/default/serviceaccounts/default')).status === 200
        );
      },
    );
  }

  private kubeconfigYaml(identity: ClientIdentity, as?: string): string {
    const client = this.pki.clients[identity];
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'kopek-local',
          cluster: { server: this.server, 'certificate-authority': this.pki.caCert },
        },
      ],
      users: [
        {
          name: identity,
          user: {
            'client-certificate': client.cert,
            'client-key': client.key,
            ...(as ? { as } : {}),
          },
        },
      ],
      contexts: [{ name: 'kopek-local', context: { cluster: 'kopek-local', user: identity } }],
      'current-context': 'kopek-local',
    });
  }

  private async writeKubeconfigs(): Promise<void> {
    for (const identity of Object.keys(this.pki.clients) as ClientIdentity[]) {
      await writeFile(join(this.dir, `${identity}.kubeconfig`), this.kubeconfigYaml(identity));
    }
  }
}
