import { describe, expect, it } from 'vitest';
import { parseChallenge } from './challenge.ts';
import {
  DOCKER_CONFIG,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  MANIFEST_ACCEPT,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_MANIFEST,
  parseManifest,
  platformFromConfig,
} from './manifest.ts';

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const d = (n: number): string => `sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('parseManifest', () => {
  it('lists the platforms of an OCI index, sorted, without attestations or duplicates', () => {
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: d(1),
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        { mediaType: OCI_MANIFEST, digest: d(2), platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: d(3), platform: { os: 'linux', architecture: 'amd64' } },
        {
          mediaType: OCI_MANIFEST,
          digest: d(4),
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
        },
        // An attestation recognised by its annotation alone.
        {
          mediaType: OCI_MANIFEST,
          digest: d(5),
          platform: { os: 'linux', architecture: 's390x' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
        },
        { mediaType: 'application/vnd.example+json', digest: d(6) },
      ],
    };
    expect(parseManifest(json(index), OCI_INDEX)).toEqual({
      kind: 'index',
      platforms: ['linux/amd64', 'linux/arm64/v8'],
    });
  });

  it('reads a Docker manifest list, trusting the body when Content-Type is generic', () => {
    const list = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST_LIST,
      manifests: [
        { digest: d(1), platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
        { digest: d(2), platform: { os: 'windows', architecture: 'amd64', 'os.version': '10' } },
      ],
    };
    expect(parseManifest(json(list), 'application/json')).toEqual({
      kind: 'index',
      platforms: ['linux/arm/v7', 'windows/amd64'],
    });
  });

  it('points a single manifest at its config blob', () => {
    for (const [type, configType] of [
      [OCI_MANIFEST, OCI_CONFIG],
      [DOCKER_MANIFEST, DOCKER_CONFIG],
    ] as const) {
      const manifest = {
        schemaVersion: 2,
        config: { mediaType: configType, digest: d(7), size: 2 },
        layers: [],
      };
      expect(parseManifest(json(manifest), `${type}; charset=utf-8`)).toEqual({
        kind: 'image',
        config: { digest: d(7), mediaType: configType },
      });
    }
  });

  it.each([
    [Buffer.from('{'), OCI_INDEX, 'the manifest is not valid JSON'],
    [json([1]), OCI_INDEX, 'the manifest is not a JSON object'],
    [json({ mediaType: OCI_INDEX }), OCI_INDEX, 'the index has no "manifests" list'],
    [
      json({ manifests: [{ platform: { os: 'unknown', architecture: 'unknown' } }] }),
      OCI_INDEX,
      'the index lists no image platform',
    ],
    [json({ layers: [] }), OCI_MANIFEST, 'the image manifest has no config descriptor'],
    [
      json({ config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: d(1) } }),
      OCI_MANIFEST,
      'not a container image (its config type is "application/vnd.cncf.helm.config.v1+json")',
    ],
    [
      json({ schemaVersion: 1, architecture: 'amd64' }),
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      'unsupported manifest media type',
    ],
  ])('rejects %s clearly', (body, type, message) => {
    expect(() => parseManifest(body, type)).toThrow(message);
  });

  it('asks for all four manifest types', () => {
    expect(MANIFEST_ACCEPT.split(', ').sort()).toEqual(
      [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST].sort(),
    );
  });
});

describe('platformFromConfig', () => {
  it('reads os, architecture and variant', () => {
    expect(
      platformFromConfig(json({ os: 'linux', architecture: 'arm64', variant: 'v8', config: {} })),
    ).toBe('linux/arm64/v8');
    expect(platformFromConfig(json({ os: 'linux', architecture: 'amd64' }))).toBe('linux/amd64');
  });

  it('rejects a config without them', () => {
    expect(() => platformFromConfig(json({ os: 'linux' }))).toThrow(
      'names no "os" and "architecture"',
    );
  });
});

describe('parseChallenge', () => {
  it('reads a Bearer challenge with quoted and bare parameters', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io", scope="repository:library/nginx:pull",error="insufficient_scope"',
      ),
    ).toEqual({
      scheme: 'bearer',
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
    });
    expect(parseChallenge('bearer realm=https://h/t')).toEqual({
      scheme: 'bearer',
      realm: 'https://h/t',
    });
    expect(parseChallenge('Bearer realm="https://h/t?a=\\"b\\""')).toEqual({
      scheme: 'bearer',
      realm: 'https://h/t?a="b"',
    });
  });

  it('reads Basic, and nothing from absent, unknown or realm-less challenges', () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic' });
    expect(parseChallenge(null)).toBeUndefined();
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge('Bearer service="x"')).toBeUndefined();
  });
});
