import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';

/**
 * Where the API server is and how kopek proves who it is, from a kubeconfig file (its current
 * context) or from the pod's ServiceAccount. kopek reads these itself rather than through
 * client-node's KubeConfig, whose module pulls in every generated API model: about 80 MiB resident,
 * half of what `kopek run` cost before doing anything (docs/decisions/0014-own-kubeconfig.md).
 */

/** TLS material for the connections to the API server. */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  servername?: string;
}

/** What one request carries: its headers (Authorization, Impersonate-*) and TLS material. */
export interface Credentials {
  headers: Record<string, string>;
  tls: TlsMaterial;
}

export interface KubeConnection {
  /** The API server's URL, without a trailing slash. */
  server: string;
  /** An HTTP(S) proxy to reach it through (the cluster's proxy-url). */
  proxyUrl?: string;
  /**
   * The credentials for the next request. Asked before every request: files (certificates, token
   * files) are read again so rotated ones are used, and exec plugins run again once theirs expire.
   */
  credentials(): Promise<Credentials>;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A token file is read again after this long (client-go's in-cluster token source does the same). */
const TOKEN_FILE_REREAD_MS = 60_000;

export interface LoadOptions {
  /** ms since the epoch; tests move it. */
  now?: () => number;
  env?: Readonly<Record<string, string | undefined>>;
}

/** A file's text, re-read after TOKEN_FILE_REREAD_MS. */
function tokenFile(path: string, now: () => number): () => string {
  let cached: { token: string; readAt: number } | undefined;
  return () => {
    if (!cached || now() - cached.readAt > TOKEN_FILE_REREAD_MS)
      cached = { token: readFileSync(path, 'utf8').trim(), readAt: now() };
    return cached.token;
  };
}

/**
 * The pod's ServiceAccount: the API server at KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT,
 * verified with the mounted CA, with the mounted token (re-read every minute: the kubelet rotates it).
 */
export function inClusterConnection(options: LoadOptions & { dir?: string } = {}): KubeConnection {
  const env = options.env ?? process.env;
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new Error(
      'not running in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset): pass --kubeconfig PATH',
    );
  const token = tokenFile(`${dir}/token`, options.now ?? Date.now);
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    credentials: () =>
      Promise.resolve({
        headers: { Authorization: `Bearer ${token()}` },
        tls: { ca: readFileSync(`${dir}/ca.crt`, 'utf8'), rejectUnauthorized: true },
      }),
  };
}

interface NamedEntry<T> {
  name?: unknown;
  cluster?: T;
  context?: T;
  user?: T;
}

interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
}

interface ContextEntry {
  cluster?: string;
  user?: string;
}

export interface ExecConfig {
  command?: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
}

interface UserEntry {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  as?: string;
  'as-uid'?: string;
  'as-groups'?: string[];
  exec?: ExecConfig;
  'auth-provider'?: { name?: string };
}

function entry(
  list: unknown,
  field: 'cluster' | 'context' | 'user',
  name: string,
  path: string,
): object {
  const found = (Array.isArray(list) ? (list as NamedEntry<object>[]) : []).find(
    (item) => item.name === name,
  );
  const value = found?.[field];
  if (!value) throw new Error(`${path}: no ${field} named "${name}"`);
  return value;
}

const decode = (data: string): string => Buffer.from(data, 'base64').toString('utf8');

/**
 * The current context of a kubeconfig file: its cluster (server, CA, TLS server name, proxy) and
 * its user (token, token file, client certificate, basic auth, exec plugin, impersonation).
 * Relative file names are relative to the kubeconfig, as kubectl reads them. The legacy
 * auth-provider plugins (removed from kubectl in 1.26) are refused with a message.
 */
export function loadKubeConfig(path: string, options: LoadOptions = {}): KubeConnection {
  const document = parse(readFileSync(path, 'utf8')) as Record<string, unknown> | null;
  if (!document || typeof document !== 'object') throw new Error(`${path}: not a kubeconfig`);
  const contextName = document['current-context'];
  if (typeof contextName !== 'string' || contextName === '')
    throw new Error(`${path}: no current-context`);
  const context = entry(document.contexts, 'context', contextName, path) as ContextEntry;
  const cluster = entry(document.clusters, 'cluster', context.cluster ?? '', path) as ClusterEntry;
  const user: UserEntry = context.user ? entry(document.users, 'user', context.user, path) : {};
  if (!cluster.server) throw new Error(`${path}: cluster "${context.cluster}" has no server`);
  const provider = user['auth-provider'];
  if (provider)
    throw new Error(
      `${path}: user "${context.user}" uses the auth-provider "${provider.name}", which kopek does not support; use a client-go credential (exec) plugin instead`,
    );
  // fetch joins repeated headers into one, which the API server would read as one group.
  if ((user['as-groups']?.length ?? 0) > 1)
    throw new Error(
      `${path}: user "${context.user}" impersonates several groups; kopek can send one`,
    );
  const proxyUrl = cluster['proxy-url'];
  if (proxyUrl !== undefined && !/^https?:\/\//.test(proxyUrl))
    throw new Error(
      `${path}: proxy-url ${proxyUrl}: only http:// and https:// proxies are supported`,
    );

  const base = dirname(resolve(path));
  const file = (name: string): string =>
    readFileSync(isAbsolute(name) ? name : resolve(base, name), 'utf8');
  const now = options.now ?? Date.now;
  const token = user.tokenFile
    ? tokenFile(isAbsolute(user.tokenFile) ? user.tokenFile : resolve(base, user.tokenFile), now)
    : undefined;
  const exec = user.exec
    ? execPlugin(user.exec, { base, now, env: options.env ?? process.env })
    : undefined;

  return {
    server: cluster.server.replace(/\/$/, ''),
    ...(proxyUrl !== undefined ? { proxyUrl } : {}),
    credentials: async () => {
      const tls: TlsMaterial = { rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true };
      const ca = cluster['certificate-authority-data'];
      if (ca) tls.ca = decode(ca);
      else if (cluster['certificate-authority']) tls.ca = file(cluster['certificate-authority']);
      if (cluster['tls-server-name']) tls.servername = cluster['tls-server-name'];
      const cert = user['client-certificate-data'];
      if (cert) tls.cert = decode(cert);
      else if (user['client-certificate']) tls.cert = file(user['client-certificate']);
      const key = user['client-key-data'];
      if (key) tls.key = decode(key);
      else if (user['client-key']) tls.key = file(user['client-key']);

      const headers: Record<string, string> = {};
      if (user.token) headers.Authorization = `Bearer ${user.token}`;
      else if (token) headers.Authorization = `Bearer ${token()}`;
      else if (user.username !== undefined)
        headers.Authorization = `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`;
      if (exec) {
        const credential = await exec();
        if (credential.token) headers.Authorization = `Bearer ${credential.token}`;
        if (credential.clientCertificateData) tls.cert = credential.clientCertificateData;
        if (credential.clientKeyData) tls.key = credential.clientKeyData;
      }
      if (user.as) headers['Impersonate-User'] = user.as;
      if (user['as-uid']) headers['Impersonate-Uid'] = user['as-uid'];
      const group = user['as-groups']?.[0];
      if (group !== undefined) headers['Impersonate-Group'] = group;
      return { headers, tls };
    },
  };
}

/** The status of an ExecCredential a client-go credential plugin prints. */
export interface ExecCredentialStatus {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expirationTimestamp?: string;
}

/**
 * A client-go credential plugin (`aws eks get-token`, `kubelogin`, …): runs the command with the
 * kubeconfig's env and KUBERNETES_EXEC_INFO, and keeps its ExecCredential until it expires (for
 * ever when it says no expiry). Requests that ask meanwhile wait for the same run.
 */
export function execPlugin(
  config: ExecConfig,
  options: { base: string; now: () => number; env: Readonly<Record<string, string | undefined>> },
): () => Promise<ExecCredentialStatus> {
  const command = config.command;
  if (!command) throw new Error('the kubeconfig user has an exec plugin with no command');
  // client-go: a relative path with a separator is relative to the kubeconfig's folder.
  const executable =
    command.includes('/') && !isAbsolute(command) ? resolve(options.base, command) : command;
  const apiVersion = config.apiVersion ?? 'client.authentication.k8s.io/v1beta1';
  let cached: { status: ExecCredentialStatus; expiresAt: number } | undefined;
  let running: Promise<ExecCredentialStatus> | undefined;
  const run = async (): Promise<ExecCredentialStatus> => {
    const env: Record<string, string | undefined> = {
      ...options.env,
      KUBERNETES_EXEC_INFO: JSON.stringify({
        apiVersion,
        kind: 'ExecCredential',
        spec: { interactive: false },
      }),
    };
    for (const variable of config.env ?? []) env[variable.name] = variable.value;
    const stdout = await runPlugin(executable, config.args ?? [], env);
    let status: ExecCredentialStatus | undefined;
    try {
      status = (JSON.parse(stdout) as { status?: ExecCredentialStatus }).status;
    } catch {
      // Reported below with what the plugin printed.
    }
    if (!status || (!status.token && !status.clientCertificateData))
      throw new Error(
        `exec plugin ${command} printed no ExecCredential with a token or certificate: ${stdout.slice(0, 200)}`,
      );
    const expiresAt = status.expirationTimestamp
      ? Date.parse(status.expirationTimestamp)
      : Number.POSITIVE_INFINITY;
    cached = { status, expiresAt };
    return status;
  };
  return async () => {
    if (cached && cached.expiresAt > options.now()) return cached.status;
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };
}

function runPlugin(
  command: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
): Promise<string> {
  return new Promise((resolvePlugin, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => {
      reject(new Error(`exec plugin ${command} could not run: ${error.message}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolvePlugin(stdout);
      else
        reject(
          new Error(`exec plugin ${command} failed (exit ${code}): ${stderr.trim().slice(0, 500)}`),
        );
    });
  });
}
