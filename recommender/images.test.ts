import { describe, expect, it } from 'vitest';
import { normalizeImageRef } from './images.ts';

describe('image references', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['bitnami/kafka:3.9', 'docker.io/bitnami/kafka:3.9'],
    ['index.docker.io/library/redis:7', 'docker.io/library/redis:7'],
    ['ghcr.io/acme/web:1', 'ghcr.io/acme/web:1'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['registry:5000/app:2', 'registry:5000/app:2'],
    ['nginx@sha256:abc', 'docker.io/library/nginx@sha256:abc'],
  ])('%s → %s', (ref, norm) => {
    expect(normalizeImageRef(ref)).toBe(norm);
  });
});
