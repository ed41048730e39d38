/**
 * A real OCI registry for tests: Debian's `docker-registry` (github.com/docker/distribution)
 * on a loopback port, storing blobs in a temporary directory, optionally behind token or
 * htpasswd authentication. Its access log is how tests count what clients asked for.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { Component, waitUntil } from '../cluster/process.ts';
import { freePort } from '../support/ports.ts';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

/** How clients authenticate to the registry. */
export type RegistryAuth =
  | { kind: 'none' }
  /** Bearer tokens from a token service (see token-server.ts) whose signing certificate the registry trusts. */
  | { kind: 'token'; realm: string; service: string; issuer: string; rootCertBundle: string }
  /** Basic authentication against an htpasswd file of bcrypt hashes. */
  | { kind: 'htpasswd'; path: string };

export interface LocalRegistryOptions {
  /** Directory for config, storage and log; the caller creates and removes it. */
  dir: string;
  name?: string;
  auth?: RegistryAuth;
}

/** One request as the access log shows it. */
export interface AccessLogEntry {
  method: string;
  uri: string;
  status: number;
}

// Gorilla's combined log format: 127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /;

const run = promisify(execFile);
const INSTALL_HINT =
  'run `bash test/system-deps.sh` (it installs the Debian packages the tests use)';

/** Writes an htpasswd file with one bcrypt entry (the only hash the registry accepts). */
export async function writeHtpasswd(path: string, user: string, password: string): Promise<void> {
  let entry: string;
  try {
    entry = (await run('htpasswd', ['-Bbn', user, password])).stdout;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing ? `htpasswd (apache2-utils) is not installed: ${INSTALL_HINT}` : 'htpasswd failed',
      { cause: error },
    );
  }
  await writeFile(path, entry);
}

function authConfig(auth: RegistryAuth): Record<string, unknown> | undefined {
  switch (auth.kind) {
    case 'none':
      return undefined;
    case 'token':
      return {
        token: {
          realm: auth.realm,
          service: auth.service,
          issuer: auth.issuer,
          rootcertbundle: auth.rootCertBundle,
        },
      };
    case 'htpasswd':
      return { htpasswd: { realm: 'kopek-test', path: auth.path } };
  }
}

export class LocalRegistry {
  readonly name: string;
  /** host:port, as an image reference names it. */
  readonly host: string;
  readonly url: string;
  readonly component: Component;

  private constructor(name: string, port: number, component: Component) {
    this.name = name;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.component = component;
  }

  /** Writes the config and starts the registry; resolves once it answers `/v2/`. */
  static async start(options: LocalRegistryOptions): Promise<LocalRegistry> {
    try {
      await access(REGISTRY_BINARY);
    } catch {
      throw new Error(
        `${REGISTRY_BINARY} (Debian's docker-registry) is not installed: ${INSTALL_HINT}`,
      );
    }
    const name = options.name ?? 'registry';
    const port = await freePort();
    const config = {
      version: 0.1,
      log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: join(options.dir, `${name}-data`) },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: randomUUID() },
      auth: authConfig(options.auth ?? { kind: 'none' }),
    };
    const configPath = join(options.dir, `${name}.yml`);
    await writeFile(configPath, stringify(config));
    const component = new Component({
      name,
      command: REGISTRY_BINARY,
      args: ['serve', configPath],
      logPath: join(options.dir, `${name}.log`),
    });
    const registry = new LocalRegistry(name, port, component);
    await registry.restart();
    return registry;
  }

  /** Starts the registry again (same port, same storage) and waits until it answers. */
  async restart(): Promise<void> {
    this.component.start();
    await waitUntil(
      this.component,
      `answered on ${this.url}/v2/`,
      async () => {
        const response = await fetch(`${this.url}/v2/`);
        await response.arrayBuffer();
        return response.status === 200 || response.status === 401;
      },
      20_000,
    );
  }

  async stop(): Promise<void> {
    await this.component.stop();
  }

  /**
   * Every request the registry logged so far. A marker request is sent first and waited for,
   * so every request answered before the call is in the log.
   */
  async accessLog(): Promise<AccessLogEntry[]> {
    const marker = `kopek-log-marker=${randomUUID()}`;
    const response = await fetch(`${this.url}/v2/?${marker}`);
    await response.arrayBuffer();
    let log = '';
    await waitUntil(
      this.component,
      'logged a marker request',
      async () => {
        log = await readFile(this.component.spec.logPath, 'utf8');
        return log.includes(marker);
      },
      10_000,
    );
    const entries: AccessLogEntry[] = [];
    for (const line of log.split('\n')) {
      const match = ACCESS_LINE.exec(line);
      const [, method = '', uri = '', status = '0'] = match ?? [];
      if (match !== null && !uri.includes('kopek-log-marker='))
        entries.push({ method, uri, status: Number(status) });
    }
    return entries;
  }

  /** The URIs of manifest GETs logged so far, in order (any status). */
  async manifestGets(): Promise<string[]> {
    return (await this.accessLog())
      .filter((e) => e.method === 'GET' && /^\/v2\/.+\/manifests\/[^/]+$/.test(e.uri))
      .map((e) => e.uri);
  }
}
