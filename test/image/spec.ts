/**
 * What kopek's container image is: the one description that the daemonless build (build.ts)
 * assembles and that test/chart/dockerfile.test.ts holds the Dockerfile to.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Platform } from '../registry/seed.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The platforms a release is built for: kopek runs on Graviton as on x86. */
export const PLATFORMS: readonly Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
];

/** `os/arch[/variant]`, as `--platform` and kopek's reports write a platform. */
export const platformName = (platform: Platform): string =>
  [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');

/**
 * The Debian packages of the root filesystem (Debian 12, as distroless's nodejs24-debian12):
 * the C and C++ runtime Node's binary links to, CA certificates, time zones, /etc/os-release,
 * /etc/services. No shell, no package manager, no compiler.
 */
export const DEBIAN_PACKAGES = [
  'base-files',
  'netbase',
  'tzdata',
  'ca-certificates',
  'libc6',
  'libgcc-s1',
  'libstdc++6',
  'gcc-12-base',
] as const;

/** The non-root user kopek runs as: distroless's `nonroot`, the chart's runAsUser. */
export const USER_ID = 65532;

/** Node's options in the image and the chart's default (`nodeOptions`). */
export const NODE_OPTIONS = '--max-semi-space-size=2';

/** The image's runtime configuration (an OCI image config's `config`). */
export const RUNTIME = {
  User: `${USER_ID}:${USER_ID}`,
  WorkingDir: '/app',
  Env: [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt',
    'NODE_ENV=production',
    // A small young generation: Node 24 otherwise lets it grow to 64 MiB a half-space, which
    // shows as resident memory (docs/decisions/0015-small-young-generation.md). The chart sets
    // it too (`nodeOptions`).
    `NODE_OPTIONS=${NODE_OPTIONS}`,
  ],
  Entrypoint: ['/nodejs/bin/node', '/app/operator/cli/kopek.js'],
  Cmd: ['run'],
  ExposedPorts: { '8080/tcp': {} },
};

/**
 * What /app holds besides node_modules (the runtime stage's COPYs): package.json, the CRDs, and
 * operator/ and recommender/ compiled to JavaScript with COMPILE_CONFIG (what `kopek` loads,
 * types erased and imports renamed .ts → .js; docs/decisions/0016)…
 */
export const APP_PATHS = ['package.json', 'operator', 'recommender', 'crds'] as const;
/** …less these (what .dockerignore leaves out of them). */
export const APP_EXCLUDED = ['crds/examples', '*.test.ts', 'node_modules'] as const;
/** The tsc project that compiles kopek for the image. */
export const COMPILE_CONFIG = 'tsconfig.build.json';
/** What the compilation reads besides the sources: its git history dates the image. */
export const COMPILE_INPUTS = ['tsconfig.json', COMPILE_CONFIG] as const;

interface PackageJson {
  name: string;
  version: string;
  description: string;
  license: string;
}

export function packageJson(): PackageJson {
  return JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as PackageJson;
}

/** The exact Node.js version the project runs on: its `node` devDependency, as locked. */
export function nodeVersion(): string {
  const lock = JSON.parse(readFileSync(`${ROOT}package-lock.json`, 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const version = lock.packages['node_modules/node']?.version;
  if (version === undefined || !/^24\.\d+\.\d+$/.test(version)) {
    throw new Error(`package-lock.json does not pin Node 24 (node_modules/node is ${version})`);
  }
  return version;
}
