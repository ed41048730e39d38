import { describe, expect, it } from 'vitest';
import {
  credentialsFromSecret,
  normalizeRegistryKey,
  parseDockerConfig,
  selectCredentials,
  type RegistryCredentials,
} from './credentials.ts';
import { parseImageReference } from './reference.ts';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

function secret(
  config: unknown,
  type = 'kubernetes.io/dockerconfigjson',
): Parameters<typeof credentialsFromSecret>[0] {
  const key = type === 'kubernetes.io/dockercfg' ? '.dockercfg' : '.dockerconfigjson';
  return {
    metadata: { name: 'regcred', namespace: 'team-a' },
    type,
    data: { [key]: b64(JSON.stringify(config)) },
  };
}

describe('normalizeRegistryKey', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['https://GHCR.io', 'ghcr.io'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['quay.io/org/', 'quay.io/org'],
    ['*.example.com', '*.example.com'],
  ])('%s → %s', (key, normalized) => {
    expect(normalizeRegistryKey(key)).toBe(normalized);
  });
});

describe('credentialsFromSecret', () => {
  it('reads auth, username/password, identitytoken and registrytoken entries', () => {
    const creds = credentialsFromSecret(
      secret({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub-user:hub:pass') },
          'ghcr.io': { username: 'gh', password: 'ghp_x' },
          'quay.io': { identitytoken: 'refresh' },
          'registry.example.com': { registrytoken: 'bearer' },
        },
      }),
    );
    expect(creds).toEqual([
      {
        registry: 'docker.io',
        username: 'hub-user',
        password: 'hub:pass',
        source: 'secret team-a/regcred',
      },
      { registry: 'ghcr.io', username: 'gh', password: 'ghp_x', source: 'secret team-a/regcred' },
      { registry: 'quay.io', identityToken: 'refresh', source: 'secret team-a/regcred' },
      {
        registry: 'registry.example.com',
        registryToken: 'bearer',
        source: 'secret team-a/regcred',
      },
    ]);
  });

  it('reads the legacy dockercfg format', () => {
    const creds = credentialsFromSecret(
      secret({ 'host:5000': { auth: b64('u:p') } }, 'kubernetes.io/dockercfg'),
    );
    expect(creds).toEqual([
      { registry: 'host:5000', username: 'u', password: 'p', source: 'secret team-a/regcred' },
    ]);
  });

  it('ignores secrets of other types', () => {
    expect(credentialsFromSecret({ type: 'Opaque', data: { x: b64('y') } })).toEqual([]);
  });

  it.each([
    ['not json', /secret team-a\/regcred: not valid JSON/],
    ['[]', /not a JSON object/],
    ['{}', /has no "auths" object/],
    [JSON.stringify({ auths: { h: 'x' } }), /auths\["h"\] is not an object/],
    [JSON.stringify({ auths: { h: { auth: b64('no-colon-secret') } } }), /auth is not the base64/],
    [
      JSON.stringify({ auths: { h: { auth: '!!!not-base64-secret!!!' } } }),
      /auth is not the base64/,
    ],
    [JSON.stringify({ auths: { h: { username: 'u' } } }), /has neither auth, password/],
    [JSON.stringify({ auths: { h: { password: 7 } } }), /password is not a string/],
  ])('rejects malformed content %j without echoing it', (content, message) => {
    const malformed = {
      metadata: { name: 'regcred', namespace: 'team-a' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': b64(content) },
    };
    let error: unknown;
    try {
      credentialsFromSecret(malformed);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    const text = (error as Error).message;
    expect(text).toMatch(message);
    expect(text).not.toContain('secret!!!');
    expect(text).not.toContain('no-colon-secret');
  });

  it('says when the data key is missing', () => {
    expect(() =>
      credentialsFromSecret({
        type: 'kubernetes.io/dockerconfigjson',
        metadata: { name: 's', namespace: 'n' },
      }),
    ).toThrow('secret n/s: has no .dockerconfigjson key');
  });
});

describe('selectCredentials', () => {
  const creds: RegistryCredentials[] = parseDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:1') },
        'ghcr.io': { auth: b64('gh:all') },
        'ghcr.io/team': { auth: b64('gh:team') },
        '*.example.com': { auth: b64('ex:wild') },
        'localhost:5000': { auth: b64('lo:5000') },
      },
    }),
  );
  const pick = (image: string): string | undefined =>
    selectCredentials(creds, parseImageReference(image))?.password;

  it('matches Docker Hub short names to the index.docker.io key', () => {
    expect(pick('nginx')).toBe('1');
    expect(pick('docker.io/bitnami/redis')).toBe('1');
  });

  it('prefers the most specific path prefix', () => {
    expect(pick('ghcr.io/team/app:1')).toBe('team');
    expect(pick('ghcr.io/teamx/app:1')).toBe('all');
    expect(pick('ghcr.io/other/app')).toBe('all');
  });

  it('matches one label per wildcard and requires the same port', () => {
    expect(pick('registry.example.com/a')).toBe('wild');
    expect(pick('a.b.example.com/a')).toBeUndefined();
    expect(pick('localhost:5000/a')).toBe('5000');
    expect(pick('localhost:5001/a')).toBeUndefined();
    expect(pick('localhost/a')).toBeUndefined();
    expect(pick('quay.io/a/b')).toBeUndefined();
  });
});
