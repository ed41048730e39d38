import { describe, expect, it } from 'vitest';
import type { ImageResolution } from './client.ts';
import type { RegistryCredentials } from './credentials.ts';
import { platformsForPod, toImagePlatforms, toImagePlatformsFact } from './pod.ts';

const DIGEST = `sha256:${'b'.repeat(64)}`;

describe('platformsForPod', () => {
  it('looks up init containers then containers, with the pod credentials, skipping empty images', async () => {
    const asked: [string, readonly RegistryCredentials[]][] = [];
    const creds: RegistryCredentials[] = [{ registry: 'ghcr.io', username: 'u', password: 'p' }];
    const client = {
      resolve: (
        image: string,
        credentials: readonly RegistryCredentials[] = [],
      ): Promise<ImageResolution> => {
        asked.push([image, credentials]);
        return Promise.resolve(
          image === 'broken'
            ? {
                image,
                error: {
                  kind: 'unreachable',
                  message: 'unreachable: could not connect to registry x',
                },
              }
            : { image, digest: DIGEST, platforms: ['linux/amd64'] },
        );
      },
    };
    const entries = await platformsForPod(
      client,
      {
        containers: [
          { name: 'app', image: 'ghcr.io/a/app:1' },
          { name: 'sidecar', image: 'broken' },
          { name: 'no-image' },
        ],
        initContainers: [{ name: 'init', image: 'busybox' }],
      },
      creds,
    );
    expect(entries).toEqual([
      { container: 'init', image: 'busybox', digest: DIGEST, platforms: ['linux/amd64'] },
      { container: 'app', image: 'ghcr.io/a/app:1', digest: DIGEST, platforms: ['linux/amd64'] },
      {
        container: 'sidecar',
        image: 'broken',
        error: 'unreachable: could not connect to registry x',
      },
    ]);
    expect(asked.map(([image]) => image)).toEqual(['busybox', 'ghcr.io/a/app:1', 'broken']);
    expect(asked.every(([, c]) => c === creds)).toBe(true);
  });
});

describe('toImagePlatforms', () => {
  it('keeps entries within the CRD limits', () => {
    const platforms = Array.from(
      { length: 70 },
      (_, i) => `linux/${'x'.repeat(70)}${String(i).padStart(2, '0')}`,
    );
    const entry = toImagePlatforms('c', { image: 'i'.repeat(2000), digest: DIGEST, platforms });
    expect(entry.image).toHaveLength(1024);
    expect(entry.platforms).toHaveLength(64);
    expect(entry.platforms?.every((p) => p.length === 64)).toBe(true);
    const failed = toImagePlatforms('c', {
      image: 'x',
      error: { kind: 'registry-error', message: 'm'.repeat(5000) },
    });
    expect(failed.error).toHaveLength(1024);
    expect(failed.error?.endsWith('…')).toBe(true);
  });
});

describe('toImagePlatformsFact', () => {
  it('gives platforms and digest, or the error message', () => {
    expect(
      toImagePlatformsFact({ image: 'x', digest: DIGEST, platforms: ['linux/arm64'] }),
    ).toEqual({
      platforms: ['linux/arm64'],
      digest: DIGEST,
    });
    expect(
      toImagePlatformsFact({
        image: 'x',
        error: { kind: 'auth', message: 'authentication failed: …' },
      }),
    ).toEqual({
      error: 'authentication failed: …',
    });
  });
});
