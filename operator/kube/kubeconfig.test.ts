import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { inClusterConnection, loadKubeConfig } from './kubeconfig.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kopek-kubeconfig-'));
  dirs.push(dir);
  return dir;
}

const base64 = (text: string): string => Buffer.from(text).toString('base64');

/** Writes a kubeconfig with two contexts, staging and prod; `current` picks one. */
function kubeconfig(
  dir: string,
  options: { current?: string; user?: Record<string, unknown>; cluster?: Record<string, unknown> },
): string {
  return writeKubeconfig(
    dir,
    [
      {
        name: 'staging',
        cluster: { server: 'https://staging.example:6443' },
        user: { token: 'staging-token' },
      },
      {
        name: 'prod',
        cluster: {
          server: 'https://prod.example:443/',
          'certificate-authority-data': base64('PROD CA'),
          ...options.cluster,
        },
        user: options.user ?? { token: 'prod-token' },
      },
    ],
    options.current ?? 'prod',
  );
}

/**
 * A credential plugin as `aws eks get-token` is one: prints an ExecCredential; counts its runs in
 * a file and echoes what it was given (args, env, KUBERNETES_EXEC_INFO) into the token.
 */
function plugin(dir: string, status: string): string {
  const path = join(dir, 'get-token');
  writeFileSync(
    path,
    `#!/bin/sh
echo run >> "${dir}/runs"
if [ -n "$FAIL" ]; then echo "no credentials: $FAIL" >&2; exit 3; fi
printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":${status}}'
`,
  );
  chmodSync(path, 0o755);
  return path;
}

const runs = (dir: string): number => {
  try {
    return readFileSync(join(dir, 'runs'), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

describe('loadKubeConfig', () => {
  it("uses the current context's cluster and user", async () => {
    const dir = tempDir();
    const prod = loadKubeConfig(kubeconfig(dir, {}));
    expect(prod.server).toBe('https://prod.example:443');
    expect(await prod.credentials()).toEqual({
      headers: { Authorization: 'Bearer prod-token' },
      tls: { ca: 'PROD CA', rejectUnauthorized: true },
    });
    const staging = loadKubeConfig(kubeconfig(dir, { current: 'staging' }));
    expect(staging.server).toBe('https://staging.example:6443');
    expect((await staging.credentials()).headers.Authorization).toBe('Bearer staging-token');
  });

  it('reads CA and client certificate files relative to the kubeconfig, again on every request', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'ca.crt'), 'FILE CA');
    writeFileSync(join(dir, 'client.crt'), 'CERT 1');
    writeFileSync(join(dir, 'client.key'), 'KEY 1');
    const connection = loadKubeConfig(
      kubeconfig(dir, {
        cluster: {
          'certificate-authority-data': undefined,
          'certificate-authority': 'ca.crt',
          'tls-server-name': 'kubernetes.default',
        },
        user: { 'client-certificate': 'client.crt', 'client-key': join(dir, 'client.key') },
      }),
    );
    expect((await connection.credentials()).tls).toEqual({
      ca: 'FILE CA',
      cert: 'CERT 1',
      key: 'KEY 1',
      servername: 'kubernetes.default',
      rejectUnauthorized: true,
    });
    // A rotated certificate (cert-manager, kubelet) is used from the next request on.
    writeFileSync(join(dir, 'client.crt'), 'CERT 2');
    writeFileSync(join(dir, 'client.key'), 'KEY 2');
    expect((await connection.credentials()).tls).toMatchObject({ cert: 'CERT 2', key: 'KEY 2' });
  });

  it('takes inline certificate data, skips verification when told, and impersonates', async () => {
    const dir = tempDir();
    const connection = loadKubeConfig(
      kubeconfig(dir, {
        cluster: { 'insecure-skip-tls-verify': true },
        user: {
          'client-certificate-data': base64('INLINE CERT'),
          'client-key-data': base64('INLINE KEY'),
          as: 'system:serviceaccount:kopek:kopek',
          'as-groups': ['system:masters'],
        },
      }),
    );
    expect(await connection.credentials()).toEqual({
      headers: {
        'Impersonate-User': 'system:serviceaccount:kopek:kopek',
        'Impersonate-Group': 'system:masters',
      },
      tls: { ca: 'PROD CA', cert: 'INLINE CERT', key: 'INLINE KEY', rejectUnauthorized: false },
    });
  });

  it('sends basic credentials', async () => {
    const connection = loadKubeConfig(
      kubeconfig(tempDir(), { user: { username: 'ada', password: 'secret' } }),
    );
    expect((await connection.credentials()).headers.Authorization).toBe(
      `Basic ${base64('ada:secret')}`,
    );
  });

  it('reads a token file again after a minute', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'token'), 'first\n');
    let now = 0;
    const connection = loadKubeConfig(kubeconfig(dir, { user: { tokenFile: 'token' } }), {
      now: () => now,
    });
    expect((await connection.credentials()).headers.Authorization).toBe('Bearer first');
    writeFileSync(join(dir, 'token'), 'second\n');
    now = 59_000;
    expect((await connection.credentials()).headers.Authorization).toBe('Bearer first');
    now = 61_000;
    expect((await connection.credentials()).headers.Authorization).toBe('Bearer second');
  });

  it('runs an exec plugin with its args and env, and keeps its token until it expires', async () => {
    const dir = tempDir();
    plugin(dir, '{"token":"eks-token","expirationTimestamp":"1970-01-01T00:15:00Z"}');
    let now = 0;
    const connection = loadKubeConfig(
      kubeconfig(dir, {
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            // Relative to the kubeconfig's folder, as client-go resolves it.
            command: './get-token',
            args: ['eks', 'get-token', '--cluster-name', 'prod'],
            env: [{ name: 'AWS_PROFILE', value: 'prod' }],
          },
        },
      }),
      { now: () => now, env: {} },
    );
    const [first, second] = await Promise.all([connection.credentials(), connection.credentials()]);
    expect(first.headers.Authorization).toBe('Bearer eks-token');
    expect(second.headers.Authorization).toBe('Bearer eks-token');
    expect(runs(dir)).toBe(1);
    now = 14 * 60_000;
    await connection.credentials();
    expect(runs(dir)).toBe(1);
    now = 16 * 60_000;
    await connection.credentials();
    expect(runs(dir)).toBe(2);
  });

  it('passes the kubeconfig env and KUBERNETES_EXEC_INFO to the plugin', async () => {
    const dir = tempDir();
    const path = join(dir, 'echo-env');
    writeFileSync(
      path,
      `#!/bin/sh
printf '{"status":{"token":"%s|%s|%s"}}' "$1" "$AWS_PROFILE" "$(echo "$KUBERNETES_EXEC_INFO" | tr -d '"')"
`,
    );
    chmodSync(path, 0o755);
    const connection = loadKubeConfig(
      kubeconfig(dir, {
        user: {
          exec: { command: path, args: ['eks'], env: [{ name: 'AWS_PROFILE', value: 'p' }] },
        },
      }),
      { env: { PATH: process.env.PATH } },
    );
    expect((await connection.credentials()).headers.Authorization).toBe(
      'Bearer eks|p|{apiVersion:client.authentication.k8s.io/v1beta1,kind:ExecCredential,spec:{interactive:false}}',
    );
  });

  it("uses an exec plugin's client certificate", async () => {
    const dir = tempDir();
    plugin(dir, '{"clientCertificateData":"EXEC CERT","clientKeyData":"EXEC KEY"}');
    const connection = loadKubeConfig(
      kubeconfig(dir, { user: { exec: { command: join(dir, 'get-token') } } }),
    );
    expect((await connection.credentials()).tls).toMatchObject({
      cert: 'EXEC CERT',
      key: 'EXEC KEY',
    });
  });

  it('reports a failing plugin with its stderr, and runs it again on the next request', async () => {
    const dir = tempDir();
    plugin(dir, '{"token":"t"}');
    const failing = loadKubeConfig(
      kubeconfig(dir, {
        user: {
          exec: {
            command: join(dir, 'get-token'),
            env: [{ name: 'FAIL', value: 'expired SSO session' }],
          },
        },
      }),
    );
    await expect(failing.credentials()).rejects.toThrow(
      /get-token failed \(exit 3\): no credentials: expired SSO session/,
    );
    await expect(failing.credentials()).rejects.toThrow(/exit 3/);
    expect(runs(dir)).toBe(2);
  });

  it('refuses what it cannot do, saying so', () => {
    const dir = tempDir();
    expect(() => loadKubeConfig(kubeconfig(dir, { current: 'nowhere' }))).toThrow(
      /no context named "nowhere"/,
    );
    expect(() =>
      loadKubeConfig(kubeconfig(dir, { user: { 'auth-provider': { name: 'gcp' } } })),
    ).toThrow(/auth-provider "gcp".*exec/);
    expect(() =>
      loadKubeConfig(kubeconfig(dir, { cluster: { 'proxy-url': 'socks5://proxy:1080' } })),
    ).toThrow(/only http:\/\/ and https:\/\/ proxies/);
    expect(() =>
      loadKubeConfig(kubeconfig(dir, { user: { as: 'a', 'as-groups': ['g1', 'g2'] } })),
    ).toThrow(/several groups/);
    writeFileSync(join(dir, 'empty'), '');
    expect(() => loadKubeConfig(join(dir, 'empty'))).toThrow(/not a kubeconfig/);
  });

  it('keeps an http(s) proxy', () => {
    const connection = loadKubeConfig(
      kubeconfig(tempDir(), { cluster: { 'proxy-url': 'http://proxy.internal:3128' } }),
    );
    expect(connection.proxyUrl).toBe('http://proxy.internal:3128');
  });
});

describe('inClusterConnection', () => {
  it("uses the ServiceAccount's CA and token, and reads a rotated token after a minute", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'ca.crt'), 'CLUSTER CA');
    writeFileSync(join(dir, 'token'), 'token-1');
    let now = 0;
    const connection = inClusterConnection({
      dir,
      env: { KUBERNETES_SERVICE_HOST: '10.100.0.1', KUBERNETES_SERVICE_PORT: '443' },
      now: () => now,
    });
    expect(connection.server).toBe('https://10.100.0.1:443');
    expect(await connection.credentials()).toEqual({
      headers: { Authorization: 'Bearer token-1' },
      tls: { ca: 'CLUSTER CA', rejectUnauthorized: true },
    });
    // The kubelet rotates the projected token (by default hourly, long before it expires).
    writeFileSync(join(dir, 'token'), 'token-2');
    now = 61_000;
    expect((await connection.credentials()).headers.Authorization).toBe('Bearer token-2');
  });

  it('brackets an IPv6 service host, and refuses to run outside a cluster', () => {
    expect(
      inClusterConnection({
        dir: tempDir(),
        env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      }).server,
    ).toBe('https://[fd00::1]:443');
    expect(() => inClusterConnection({ env: {} })).toThrow(/--kubeconfig/);
  });
});
