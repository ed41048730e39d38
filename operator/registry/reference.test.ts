import { describe, expect, it } from 'vitest';
import {
  formatImageReference,
  manifestReference,
  parseImageReference,
  registryApiHost,
} from './reference.ts';

const SHA = `sha256:${'a'.repeat(64)}`;

describe('parseImageReference', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['library/nginx', 'docker.io/library/nginx:latest'],
    ['docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['index.docker.io/nginx:1', 'docker.io/library/nginx:1'],
    ['registry-1.docker.io/bitnami/redis:7', 'docker.io/bitnami/redis:7'],
    ['docker.io/x/y', 'docker.io/x/y:latest'],
    ['grafana/grafana:11.0.0', 'docker.io/grafana/grafana:11.0.0'],
    ['ghcr.io/org/team/app:v1.2.3', 'ghcr.io/org/team/app:v1.2.3'],
    ['host:5000/a/b:tag', 'host:5000/a/b:tag'],
    ['127.0.0.1:5000/a', '127.0.0.1:5000/a:latest'],
    ['localhost/a', 'localhost/a:latest'],
    ['[::1]:5000/a:1', '[::1]:5000/a:1'],
    ['My.Registry.io/a', 'my.registry.io/a:latest'],
    [`busybox@${SHA}`, `docker.io/library/busybox@${SHA}`],
    [`busybox:1.36@${SHA}`, `docker.io/library/busybox:1.36@${SHA}`],
    [`host:5000/a/b@${SHA}`, `host:5000/a/b@${SHA}`],
    ['a/b__c/d-e--f/g.h_i', 'docker.io/a/b__c/d-e--f/g.h_i:latest'],
    ['localhost:5000', 'docker.io/library/localhost:5000'],
  ])('%s → %s', (input, canonical) => {
    expect(formatImageReference(parseImageReference(input))).toBe(canonical);
  });

  it('keeps tag and digest apart and asks for the digest when both are given', () => {
    const ref = parseImageReference(`111122223333.dkr.ecr.eu-west-1.amazonaws.com/app:v1@${SHA}`);
    expect(ref).toEqual({
      registry: '111122223333.dkr.ecr.eu-west-1.amazonaws.com',
      repository: 'app',
      tag: 'v1',
      digest: SHA,
    });
    expect(manifestReference(ref)).toBe(SHA);
    expect(manifestReference(parseImageReference('app'))).toBe('latest');
  });

  it('has no tag for a digest-only reference', () => {
    expect(parseImageReference(`a@${SHA}`).tag).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['  ', /empty/],
    [' nginx', /white space/],
    ['Nginx', /lower case/],
    ['docker.io/Library/nginx', /lower case/],
    ['nginx:', /not a valid tag/],
    ['nginx:-x', /not a valid tag/],
    [`nginx:${'a'.repeat(129)}`, /not a valid tag/],
    ['nginx@sha256:abc', /sha256 digest has 64/],
    [`nginx@sha256:${'A'.repeat(64)}`, /sha256 digest has 64/],
    ['nginx@latest', /not a digest/],
    ['a//b', /not a valid repository path component/],
    ['a/b/', /not a valid repository path component/],
    ['a/-b', /not a valid repository path component/],
    ['host:5000/', /repository name is missing/],
    ['-bad.io/a', /not a valid registry host/],
    ['bad.io:port/a', /not a valid registry host/],
    [`x.io/${'a'.repeat(260)}`, /longer than 255/],
  ])('rejects %j with a clear error', (input, message) => {
    expect(() => parseImageReference(input)).toThrow(message);
  });

  it('names the reference in the error', () => {
    expect(() => parseImageReference('Bad/Name:x')).toThrow('invalid image reference "Bad/Name:x"');
  });
});

describe('registryApiHost', () => {
  it('serves Docker Hub from registry-1.docker.io and others from themselves', () => {
    expect(registryApiHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('host:5000')).toBe('host:5000');
  });
});
