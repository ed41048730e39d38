import { execFile, execFileSync } from 'node:child_process';
import {
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readFile,
  readdir,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { waitUntil } from '../cluster/process.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';
import {
  CHART_DIR,
  ensureHelm,
  findObject,
  helm,
  parseManifests,
  renderChart,
} from '../chart/helm.ts';
import { operatorCommand } from '../chart/operator-command.ts';
import { fetchBlob, fetchManifest } from '../image/oci.ts';
import {
  Container,
  unpackImage,
  type ContainerSpec,
  type UnpackedImage,
} from '../image/runtime.ts';
import { PLATFORMS, RUNTIME, USER_ID, nodeVersion, packageJson } from '../image/spec.ts';
import { LocalRegistry } from '../registry/registry.ts';
import { freePort } from '../support/ports.ts';
import { chartScraperToken, getMetricsPath, KOPEK_CLI } from '../support/kopek.ts';

// kopek's container image, built here without a container engine (`npm run image`), pushed to
// a real registry (Debian's docker-registry), run with a real OCI runtime (Debian's runc, as
// root, in the host's network) against a real control plane, and installed with the chart.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const QEMU_AARCH64 = '/usr/bin/qemu-aarch64-static';
const [AMD64, ARM64] = PLATFORMS as [(typeof PLATFORMS)[0], (typeof PLATFORMS)[0]];

interface BuildResult {
  stdout: string;
  /** The multi-platform index, from the OCI layout's index.json. */
  indexDigest: string;
  /** Each platform's manifest digest, by `os/arch`. */
  manifests: Map<string, string>;
}

/** Runs `npm run image` as a person would (in `cwd`, under `umask`) and reads the OCI layout it wrote. */
async function buildImage(
  args: string[],
  options: { cwd?: string; umask?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<BuildResult> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      'bash',
      [
        '-c',
        `umask ${options.umask ?? '022'} && exec npm run --silent image -- "$@"`,
        'image',
        ...args,
      ],
      {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, ...options.env },
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, out, err) => {
        if (error) reject(new Error(`npm run image ${args.join(' ')} failed: ${err}\n${out}`));
        else resolve(out);
      },
    );
  });
  const output = args[args.indexOf('--output') + 1] ?? '';
  const layout = JSON.parse(await readFile(join(output, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const indexDigest = layout.manifests[0]?.digest ?? '';
  const index = JSON.parse(
    await readFile(join(output, 'blobs', ...indexDigest.split(':')), 'utf8'),
  ) as { manifests: { digest: string; platform: { os: string; architecture: string } }[] };
  const manifests = new Map(
    index.manifests.map((m) => [`${m.platform.os}/${m.platform.architecture}`, m.digest]),
  );
  return { stdout, indexDigest, manifests };
}

/** The ELF machine of a binary: 62 is x86-64, 183 is AArch64. */
async function elfMachine(path: string): Promise<number> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(20);
    await file.read(header, 0, 20, 0);
    expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    return header.readUInt16LE(18);
  } finally {
    await file.close();
  }
}

async function fetchImageConfig(
  registryUrl: string,
  repository: string,
  manifestDigest: string,
): Promise<{ created: string }> {
  const manifest = await fetchManifest(registryUrl, repository, manifestDigest);
  const digest = manifest.json.config?.digest ?? '';
  return JSON.parse((await fetchBlob(registryUrl, repository, digest)).toString()) as {
    created: string;
  };
}

const exists = (path: string): Promise<boolean> =>
  lstat(path).then(
    () => true,
    () => false,
  );

describe("kopek's container image", () => {
  let work: string;
  let registry: LocalRegistry;
  let built: BuildResult;
  const version = packageJson().version;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kopek-image-test-'));
    registry = await LocalRegistry.start({ dir: work, name: 'image-registry' });
    built = await buildImage([
      '--output',
      join(work, 'layout'),
      '--push',
      `${registry.host}/kopek`,
      '--plain-http',
    ]);
    // The build's own summary: digests, size per platform, and how long it took.
    console.log(built.stdout);
  }, 900_000);

  afterAll(async () => {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('is an OCI index for linux/amd64 and linux/arm64 in the registry, under the version as tag', async () => {
    const index = await fetchManifest(registry.url, 'kopek', version);
    expect(index.digest).toBe(built.indexDigest);
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.json.manifests?.map((m) => m.platform)).toEqual([AMD64, ARM64]);
    expect(built.stdout).toMatch(/linux\/amd64 .* MB to pull, .* MB unpacked/);
    expect(built.stdout).toMatch(/linux\/arm64\/v8 .* MB to pull, .* MB unpacked/);
  });

  // The same inputs elsewhere: a copy of the sources (new file times, made under umask 077),
  // another time zone, an empty layer cache — everything rebuilt, the same bytes.
  it('builds reproducibly: a copy of the sources, cold, gives the same digest', async () => {
    const copy = join(work, 'copy');
    const files = execFileSync(
      'git',
      ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
      {
        cwd: ROOT,
      },
    )
      .toString()
      .split('\0')
      .filter(Boolean);
    const umask = process.umask(0o077);
    try {
      for (const file of files) {
        if (!(await exists(join(ROOT, file)))) continue; // deleted, not yet committed
        await mkdir(dirname(join(copy, file)), { recursive: true });
        await copyFile(join(ROOT, file), join(copy, file));
      }
    } finally {
      process.umask(umask);
    }
    await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    const config = await fetchImageConfig(
      registry.url,
      'kopek',
      built.manifests.get('linux/amd64') ?? '',
    );
    const again = await buildImage(
      ['--platform', 'linux/amd64', '--output', join(work, 'layout-cold')],
      {
        cwd: copy,
        umask: '077',
        env: {
          KOPEK_CACHE_DIR: join(work, 'cold-cache'),
          // The copy has no git history to date it by: the date the first build used.
          SOURCE_DATE_EPOCH: String(Date.parse(config.created) / 1000),
          TZ: 'Pacific/Chatham',
        },
      },
    );
    console.log(`cold build of linux/amd64 alone, from a copy:\n${again.stdout}`);
    expect(again.manifests.get('linux/amd64')).toBe(built.manifests.get('linux/amd64'));
  }, 900_000);

  describe('linux/amd64, unpacked', () => {
    let image: UnpackedImage;

    beforeAll(async () => {
      image = await unpackImage(registry.url, 'kopek', version, AMD64, join(work, 'amd64'));
    });

    it('runs kopek as non-root from the same entrypoint the Dockerfile names', () => {
      expect(image.config).toMatchObject({ architecture: 'amd64', os: 'linux' });
      expect(image.config.config).toMatchObject(RUNTIME);
      expect(image.config.config.User).toBe(`${USER_ID}:${USER_ID}`);
    });

    it('has Node and the production dependencies, and no shell, package manager or compiler', async () => {
      expect(await elfMachine(join(image.rootfs, 'nodejs/bin/node'))).toBe(62);
      for (const present of [
        'app/operator/cli/kopek.js',
        'app/node_modules/undici',
        'etc/ssl/certs/ca-certificates.crt',
        'usr/share/zoneinfo/Europe/Paris',
        'var/lib/dpkg/status.d/libc6',
      ]) {
        expect(await exists(join(image.rootfs, present)), present).toBe(true);
      }
      for (const absent of [
        'bin/sh',
        'bin/bash',
        'bin/dash',
        'usr/bin/dpkg',
        'usr/bin/apt',
        'usr/bin/apt-get',
        'nodejs/bin/npm',
        'nodejs/bin/npx',
        'nodejs/bin/corepack',
        'usr/bin/gcc',
        'usr/bin/cc',
        'app/node_modules/typescript',
        // Only the tests use it (docs/decisions/0014): a devDependency, not in the image.
        'app/node_modules/@kubernetes/client-node',
        'app/node_modules/vitest',
        'app/node_modules/node',
        'app/crds/examples',
      ]) {
        expect(await exists(join(image.rootfs, absent)), absent).toBe(false);
      }
      // kopek is there compiled (docs/decisions/0016): no TypeScript for Node to strip at start.
      const appFiles = await readdir(join(image.rootfs, 'app'), { recursive: true });
      const kopekFiles = appFiles.filter((file) => /^(operator|recommender)\//.test(file));
      expect(kopekFiles.filter((file) => file.endsWith('.js')).length).toBeGreaterThan(50);
      expect(kopekFiles.filter((file) => file.endsWith('.ts'))).toEqual([]);
      const passwd = await readFile(join(image.rootfs, 'etc/passwd'), 'utf8');
      expect(passwd).toContain(`nonroot:x:${USER_ID}:${USER_ID}:`);
    });
  });

  describe('linux/arm64, unpacked', () => {
    let image: UnpackedImage;

    beforeAll(async () => {
      image = await unpackImage(registry.url, 'kopek', version, ARM64, join(work, 'arm64'));
    });

    it('carries the arm64 build of Node and the same runtime configuration', async () => {
      expect(image.config).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux' });
      expect(image.config.config).toMatchObject(RUNTIME);
      expect(await elfMachine(join(image.rootfs, 'nodejs/bin/node'))).toBe(183);
      expect(await exists(join(image.rootfs, 'usr/lib/ld-linux-aarch64.so.1'))).toBe(true);
    });

    // qemu-user-static's aarch64 emulator is bind-mounted into the container and started as its
    // first process with the image's own node: this needs no binfmt_misc registration (which
    // this machine's kernel offers but nothing mounts), and changes nothing on the host.
    it('runs `node --version` and `kopek --help` under qemu user emulation', async () => {
      const spec = (args: string[]): ContainerSpec => ({
        args: ['/.qemu/qemu-aarch64-static', ...args],
        env: RUNTIME.Env,
        cwd: RUNTIME.WorkingDir,
        uid: USER_ID,
        gid: USER_ID,
        readonlyRootfs: true,
        noNewPrivileges: true,
        tmpMiB: 64,
        binds: [{ source: QEMU_AARCH64, destination: '/.qemu/qemu-aarch64-static' }],
      });
      const node = await Container.runToEnd(image, spec(['/nodejs/bin/node', '--version']), 60_000);
      expect(node, node.stderr).toMatchObject({ exitCode: 0, stdout: `v${nodeVersion()}\n` });
      const help = await Container.runToEnd(
        image,
        spec([...RUNTIME.Entrypoint, '--help']),
        240_000,
      );
      expect(help.exitCode, help.stderr).toBe(0);
      expect(help.stdout).toContain('kopek run [flags]         the operator');
    }, 300_000);
  });

  it('is arm64-ready by its own `kopek analyze --registry-lookup` (dogfooding)', async () => {
    const manifest = await renderChart({
      values: { image: { repository: `${registry.host}/kopek`, digest: built.indexDigest } },
    });
    const analysis = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        process.execPath,
        [
          KOPEK_CLI,
          'analyze',
          '-f',
          '-',
          '--registry-lookup',
          '--insecure-registries',
          registry.host,
          '-o',
          'json',
          '-q',
        ],
        { maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`kopek analyze failed: ${stderr}`));
          else resolve(stdout);
        },
      );
      child.stdin?.end(manifest);
    });
    const items = (JSON.parse(analysis) as { items: WorkloadRecommendation[] }).items;
    const arm64 = items.find((item) => item.metadata.name === 'deployment-kopek')?.status?.arm64;
    expect(arm64?.verdict).toBe('Recommended');
    expect(arm64?.reasons?.map((reason) => reason.code)).toContain('AllImagesMultiArch');
    expect(arm64?.images).toEqual([
      {
        container: 'kopek',
        image: `${registry.host}/kopek@${built.indexDigest}`,
        digest: built.indexDigest,
        platforms: ['linux/amd64', 'linux/arm64/v8'],
      },
    ]);
  });

  it("the chart's default image tag (its appVersion) is the tag the build pushes", async () => {
    const deployment = findObject(
      parseManifests(
        await renderChart({ values: { image: { repository: `${registry.host}/kopek` } } }),
      ),
      'Deployment',
    );
    const image = (deployment.spec as { template: { spec: { containers: { image: string }[] } } })
      .template.spec.containers[0]?.image;
    expect(image).toBe(`${registry.host}/kopek:${version}`);
    expect((await fetchManifest(registry.url, 'kopek', version)).digest).toBe(built.indexDigest);
  });

  describe('installed with the chart, the amd64 image run by runc against a control plane', () => {
    let cluster: LocalCluster;
    let container: Container | undefined;
    let deployment: Record<string, unknown>;
    let podSpec: PodSpec;
    let metricsPort: number;
    const POD = 'kopek-7d9f8b6c5d-image';

    interface PodSpec {
      terminationGracePeriodSeconds: number;
      securityContext: { runAsUser: number; runAsGroup: number };
      containers: {
        image: string;
        securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
        resources: { limits: { memory: string } };
      }[];
      volumes: { name: string; emptyDir?: { sizeLimit: string } }[];
    }

    const lease = async (): Promise<{ holderIdentity?: string }> =>
      (
        JSON.parse(
          (await cluster.kubectl(['get', 'lease', 'kopek', '-n', 'kopek', '-o', 'json'])).stdout,
        ) as { spec: { holderIdentity?: string } }
      ).spec;

    beforeAll(async () => {
      await ensureHelm();
      cluster = await LocalCluster.start();
      await cluster.addFleet(DEFAULT_FLEET);
      metricsPort = await freePort();
      // The chart's values a person would set to run this image from this registry; kopek
      // reads its own image's platforms from it (a plain-HTTP registry needs saying so).
      await helm([
        'install',
        'kopek',
        CHART_DIR,
        '--namespace',
        'kopek',
        '--create-namespace',
        '--kubeconfig',
        cluster.kubeconfigPath,
        '--set',
        `image.repository=${registry.host}/kopek`,
        '--set',
        `image.digest=${built.indexDigest}`,
        '--set',
        `metrics.port=${metricsPort}`,
        '--set-json',
        `extraEnv=[{"name":"KOPEK_INSECURE_REGISTRIES","value":"${registry.host}"}]`,
      ]);
      deployment = JSON.parse(
        (await cluster.kubectl(['get', 'deployment', 'kopek', '-n', 'kopek', '-o', 'json'])).stdout,
      ) as Record<string, unknown>;
      podSpec = (deployment as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
    }, 300_000);

    afterAll(async () => {
      await container?.process.stop(5000);
      await cluster.stop();
    });

    it("the Deployment's image reference resolves in the registry to the built index", async () => {
      const reference = podSpec.containers[0]?.image ?? '';
      expect(reference).toBe(`${registry.host}/kopek@${built.indexDigest}`);
      const [, repository = '', digest = ''] =
        /^[^/]+\/(.+)@(sha256:[0-9a-f]{64})$/.exec(reference) ?? [];
      const resolved = await fetchManifest(registry.url, repository, digest);
      expect(resolved.json.manifests?.map((m) => m.platform?.architecture)).toEqual([
        'amd64',
        'arm64',
      ]);
    });

    it("with the chart's ServiceAccount token, flags and security context: leads, writes recommendations, serves /metrics, /healthz and /readyz", async () => {
      const reference = podSpec.containers[0]?.image ?? '';
      const image = await unpackImage(
        registry.url,
        'kopek',
        reference.slice(reference.indexOf('@') + 1),
        AMD64,
        join(work, 'run-amd64'),
      );
      // What a kubelet mounts: the ServiceAccount's token, the cluster's CA and the namespace.
      const serviceAccount = join(work, 'serviceaccount');
      await mkdir(serviceAccount, { mode: 0o755 });
      const token = (
        await cluster.kubectl(['create', 'token', 'kopek', '-n', 'kopek', '--duration=1h'])
      ).stdout.trim();
      await writeFile(join(serviceAccount, 'token'), token, { mode: 0o644 });
      await copyFile(cluster.pki.caCert, join(serviceAccount, 'ca.crt'));
      await writeFile(join(serviceAccount, 'namespace'), 'kopek');

      const { args, env } = operatorCommand(
        deployment as never,
        { namespace: 'kopek', name: POD },
        {},
      );
      const [kopek] = podSpec.containers;
      const tmp = podSpec.volumes.find((volume) => volume.name === 'tmp')?.emptyDir?.sizeLimit;
      const mebibytes = (quantity: string | undefined): number => {
        const match = /^(\d+)Mi$/.exec(quantity ?? '');
        if (!match) throw new Error(`expected a quantity in Mi, got ${quantity}`);
        return Number(match[1]);
      };
      const apiserver = new URL(cluster.server);
      container = await Container.start(
        image,
        {
          // The chart sets args, not command: the image's entrypoint runs them.
          args: [...(image.config.config.Entrypoint ?? []), 'run', ...args],
          env: [
            ...(image.config.config.Env ?? []),
            ...Object.entries(env).map(([name, value]) => `${name}=${value}`),
            `KUBERNETES_SERVICE_HOST=${apiserver.hostname}`,
            `KUBERNETES_SERVICE_PORT=${apiserver.port}`,
          ],
          cwd: image.config.config.WorkingDir ?? '/',
          uid: podSpec.securityContext.runAsUser,
          gid: podSpec.securityContext.runAsGroup,
          readonlyRootfs: kopek?.securityContext.readOnlyRootFilesystem ?? false,
          noNewPrivileges: kopek?.securityContext.allowPrivilegeEscalation === false,
          tmpMiB: mebibytes(tmp),
          memoryLimitBytes: mebibytes(kopek?.resources.limits.memory) * 1024 * 1024,
          binds: [
            {
              source: serviceAccount,
              destination: '/var/run/secrets/kubernetes.io/serviceaccount',
            },
          ],
        },
        join(work, 'kopek-container.log'),
      );
      const log = (): Promise<string> => readFile(join(work, 'kopek-container.log'), 'utf8');

      // The chart's default: HTTPS with a self-signed certificate (not verified, as by the
      // ServiceMonitor), /metrics only for a scraper bound to the chart's metrics-reader role.
      const metrics = `https://127.0.0.1:${metricsPort}`;
      const scraper = { token: await chartScraperToken(cluster), insecure: true };
      // Fails with the container's log when kopek exits or stays unready: CI shows nothing else.
      await waitUntil(
        container.process,
        'answered /readyz with 200',
        async () => (await getMetricsPath(metrics, '/readyz', { insecure: true })).status === 200,
        90_000,
      );
      await expect.poll(async () => (await lease()).holderIdentity, { timeout: 60_000 }).toBe(POD);
      expect((await getMetricsPath(metrics, '/healthz', { insecure: true })).status).toBe(200);
      expect((await getMetricsPath(metrics, '/metrics', { insecure: true })).status).toBe(401);
      await expect
        .poll(async () => (await getMetricsPath(metrics, '/metrics', scraper)).text, {
          timeout: 30_000,
        })
        .toContain('leader_election_master_status{name="kopek"} 1');

      // It recommends for its own Deployment, reading its own image from the registry.
      await expect
        .poll(
          async () => {
            const result = await cluster.kubectl(
              ['get', 'wrec', 'deployment-kopek', '-n', 'kopek', '-o', 'json'],
              { allowFailure: true },
            );
            if (result.exitCode !== 0) return undefined;
            return (JSON.parse(result.stdout) as WorkloadRecommendation).status?.arm64?.images?.[0]
              ?.platforms;
          },
          { timeout: 90_000, interval: 1000 },
        )
        .toEqual(['linux/amd64', 'linux/arm64/v8']);

      // As the chart's pod would be: non-root, no capabilities, no new privileges, read-only root.
      const pid = await container.hostPid();
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      expect(status).toMatch(new RegExp(`^Uid:\\s+${USER_ID}\\s+${USER_ID}\\s`, 'm'));
      expect(status).toMatch(/^CapEff:\s+0+$/m);
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      const mountinfo = await readFile(`/proc/${pid}/mountinfo`, 'utf8');
      expect(mountinfo).toMatch(/^\S+ \S+ \S+ \S+ \/ ro[,\s]/m);
      expect(await log()).not.toMatch(/"level":"error"/);
    }, 300_000);

    it('stops cleanly on SIGTERM within the grace period, releasing the lease', async () => {
      if (!container) throw new Error('the container did not start');
      if (!container.process.running) throw container.process.failure('stopped before SIGTERM');
      const grace = podSpec.terminationGracePeriodSeconds;
      expect(grace).toBe(30);
      const started = Date.now();
      await container.kill('SIGTERM');
      const exited = await Promise.race([
        container.process.waitForExit().then(() => true),
        new Promise<false>((resolve) => {
          setTimeout(() => {
            resolve(false);
          }, grace * 1000);
        }),
      ]);
      console.log(`kopek stopped ${Date.now() - started} ms after SIGTERM`);
      expect(exited, `still running ${grace} s after SIGTERM`).toBe(true);
      expect(container.process.exitStatus).toBe(0);
      expect((await lease()).holderIdentity ?? '').toBe('');
    }, 60_000);
  });
});
