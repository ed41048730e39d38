/**
 * Runs an image from a registry the way a kubelet's container runtime would, without one: pulls
 * the platform's manifest, config and layers (checking every digest and diff_id), unpacks them
 * into an OCI runtime bundle, and runs it with runc (Debian's), as root, in the host's network.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Component } from '../cluster/process.ts';
import type { Platform } from '../registry/seed.ts';
import { fetchBlob, fetchManifest, sha256 } from './oci.ts';

const run = promisify(execFile);

/** The parts of an OCI image config the tests read. */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  config: {
    User?: string;
    WorkingDir?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    ExposedPorts?: Record<string, unknown>;
  };
  rootfs: { diff_ids: string[] };
}

export interface UnpackedImage {
  /** The bundle directory (config.json goes here); the root filesystem is its rootfs/. */
  bundle: string;
  rootfs: string;
  manifestDigest: string;
  config: ImageConfig;
}

const samePlatform = (a: Platform, b: Platform): boolean =>
  a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');

/** Extracts one uncompressed layer tar into `rootfs`; refuses whiteouts, which no layer here has. */
async function extract(tar: Buffer, rootfs: string): Promise<void> {
  const child = spawn('tar', ['-x', '-v', '--numeric-owner', '-C', rootfs], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let listing = '';
  let errors = '';
  child.stdout.on('data', (chunk: Buffer) => (listing += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  child.stdin.end(tar);
  // 'close', not 'exit': the listing checked below may not be all read at 'exit'.
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`tar -x failed (exit ${code}): ${errors}`);
  const whiteout = listing.split('\n').find((name) => /(^|\/)\.wh\./.test(name));
  if (whiteout !== undefined) throw new Error(`layer has a whiteout (${whiteout}): not supported`);
}

/**
 * Pulls `repository:reference` for `platform` from the registry at `registryUrl` into
 * `dir/rootfs`, layer by layer, checking that each layer's content matches the config's diff_id.
 */
export async function unpackImage(
  registryUrl: string,
  repository: string,
  reference: string,
  platform: Platform,
  dir: string,
): Promise<UnpackedImage> {
  const top = await fetchManifest(registryUrl, repository, reference);
  let manifest = top;
  if (top.json.manifests) {
    const entry = top.json.manifests.find((m) => m.platform && samePlatform(m.platform, platform));
    if (!entry) throw new Error(`${repository}:${reference} has no ${JSON.stringify(platform)}`);
    manifest = await fetchManifest(registryUrl, repository, entry.digest);
  }
  const { config: configDescriptor, layers = [] } = manifest.json;
  if (!configDescriptor) throw new Error(`${repository}@${manifest.digest} has no config`);
  const config = JSON.parse(
    (await fetchBlob(registryUrl, repository, configDescriptor.digest)).toString(),
  ) as ImageConfig;
  if (layers.length !== config.rootfs.diff_ids.length) {
    throw new Error(`${layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  for (const [i, layer] of layers.entries()) {
    const tar = gunzipSync(await fetchBlob(registryUrl, repository, layer.digest));
    if (sha256(tar) !== config.rootfs.diff_ids[i]) {
      throw new Error(
        `layer ${layer.digest} does not unpack to diff_id ${config.rootfs.diff_ids[i]}`,
      );
    }
    await extract(tar, rootfs);
  }
  return { bundle: dir, rootfs, manifestDigest: manifest.digest, config };
}

/** A bind mount into the container. */
export interface BindMount {
  source: string;
  destination: string;
}

/** The container's process and its limits, as a pod spec would set them. */
export interface ContainerSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  readonlyRootfs: boolean;
  /** allowPrivilegeEscalation: false. */
  noNewPrivileges: boolean;
  /** The size of a tmpfs at /tmp (the chart's emptyDir), in MiB. */
  tmpMiB: number;
  memoryLimitBytes?: number;
  binds?: BindMount[];
}

/**
 * The OCI runtime config (config.json) for `spec`: new PID, IPC, UTS and mount namespaces, the
 * host's network (as hostNetwork), no capabilities (capabilities: drop ALL).
 */
export function runtimeConfig(spec: ContainerSpec): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: spec.uid, gid: spec.gid },
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      noNewPrivileges: spec.noNewPrivileges,
    },
    root: { path: 'rootfs', readonly: spec.readonlyRootfs },
    hostname: 'kopek',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      // Without a network namespace of its own, a container cannot mount sysfs: bind the host's.
      {
        destination: '/sys',
        type: 'bind',
        source: '/sys',
        options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
      },
      {
        destination: '/tmp',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'mode=1777', `size=${spec.tmpMiB}m`],
      },
      ...(spec.binds ?? []).map(({ source, destination }) => ({
        destination,
        type: 'bind',
        source,
        options: ['rbind', 'ro', 'nosuid', 'nodev'],
      })),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      ...(spec.memoryLimitBytes !== undefined
        ? { resources: { memory: { limit: spec.memoryLimitBytes } } }
        : {}),
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

let containers = 0;

/** A container run by `runc run` in the foreground, stopped when this process goes away. */
export class Container {
  readonly id: string;
  readonly process: Component;

  private constructor(id: string, process: Component) {
    this.id = id;
    this.process = process;
  }

  /** Writes the bundle's config.json and starts the container; its output goes to `logPath`. */
  static async start(
    image: UnpackedImage,
    spec: ContainerSpec,
    logPath: string,
  ): Promise<Container> {
    await writeFile(join(image.bundle, 'config.json'), JSON.stringify(runtimeConfig(spec)));
    const id = `kopek-test-${process.pid}-${++containers}`;
    // runc passes the signals it gets on to the container's process, so stopping (or losing)
    // this Component stops the container; runc removes a container it ran in the foreground.
    const component = new Component({
      name: id,
      command: 'runc',
      args: ['run', '--bundle', image.bundle, id],
      logPath,
    });
    component.start();
    return new Container(id, component);
  }

  /** The container's first process, as the host sees it (from `runc state`). */
  async hostPid(): Promise<number> {
    const { stdout } = await run('runc', ['state', this.id]);
    return (JSON.parse(stdout) as { pid: number }).pid;
  }

  /** Sends `signal` to the container's first process, as a kubelet stopping a pod does. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    await run('runc', ['kill', this.id, signal.replace(/^SIG/, '')]);
  }

  /**
   * Runs a short-lived container to its end (killed after `timeoutMs`) and returns its exit
   * code and output.
   */
  static async runToEnd(
    image: UnpackedImage,
    spec: ContainerSpec,
    timeoutMs: number,
  ): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    await writeFile(join(image.bundle, 'config.json'), JSON.stringify(runtimeConfig(spec)));
    const id = `kopek-test-${process.pid}-${++containers}`;
    return new Promise((resolve) => {
      execFile(
        'runc',
        ['run', '--bundle', image.bundle, id],
        { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const exitCode = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
          resolve({ exitCode, stdout, stderr });
        },
      );
    });
  }
}
