import { describe, expect, it } from 'vitest';
import { parseOptions } from './build.ts';
import { document, parsePushReference, sha256 } from './oci.ts';
import { packageJson } from './spec.ts';

describe('npm run image options', () => {
  it('builds both platforms under the version as tag by default', () => {
    const options = parseOptions([]);
    expect(options?.platforms.map((p) => `${p.architecture}${p.variant ?? ''}`)).toEqual([
      'amd64',
      'arm64v8',
    ]);
    expect(options?.tag).toBe(packageJson().version);
    expect(options?.output).toMatch(/\/\.kopek\/image$/);
    expect(options?.push).toBeUndefined();
    expect(parseOptions(['--help'])).toBeUndefined();
  });

  it('takes one platform, with or without its variant', () => {
    expect(parseOptions(['--platform', 'linux/arm64'])?.platforms).toEqual([
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    expect(parseOptions(['--platform', 'linux/arm64/v8'])?.platforms).toHaveLength(1);
    expect(() => parseOptions(['--platform', 'linux/s390x'])).toThrow(
      '--platform linux/s390x: expected one of linux/amd64, linux/arm64',
    );
  });

  it('reads where to push before building, and refuses what is not host/repository[:tag]', () => {
    expect(parseOptions(['--push', '127.0.0.1:5000/team/kopek:rc1'])?.push).toEqual({
      host: '127.0.0.1:5000',
      repository: 'team/kopek',
      tag: 'rc1',
    });
    expect(parsePushReference('ghcr.io/kopek/kopek')).toEqual({
      host: 'ghcr.io',
      repository: 'kopek/kopek',
      tag: undefined,
    });
    for (const bad of ['kopek', 'ghcr.io/Kopek', 'ghcr.io/kopek:']) {
      expect(() => parseOptions(['--push', bad])).toThrow(
        `--push ${bad}: expected host[:port]/repository[:tag]`,
      );
    }
    expect(() => parseOptions(['--pushh', 'x'])).toThrow("Unknown option '--pushh'");
  });
});

describe('OCI documents', () => {
  it('are digested over the exact bytes they are sent as', () => {
    const doc = document('application/vnd.oci.image.index.v1+json', { schemaVersion: 2 });
    expect(doc.bytes.toString()).toBe('{"schemaVersion":2}');
    expect(doc.descriptor).toEqual({
      mediaType: 'application/vnd.oci.image.index.v1+json',
      digest: sha256(Buffer.from('{"schemaVersion":2}')),
      size: 19,
    });
  });
});
