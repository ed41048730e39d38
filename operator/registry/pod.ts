/**
 * The bridge from registry lookups to the API and the recommender: a pod's images →
 * `status.arm64.images` entries and `WorkloadFacts.imagePlatforms` facts.
 */
import type { ImagePlatforms } from '../../recommender/api/v1alpha1.ts';
import type { ImagePlatformsFact } from '../../recommender/facts.ts';
import { clip } from '../../recommender/reasons.ts';
import type { ImageResolution, RegistryClient } from './client.ts';
import type { RegistryCredentials } from './credentials.ts';

/** The containers of a pod spec, as `V1PodSpec` has them. */
export interface PodImages {
  initContainers?: readonly { name: string; image?: string }[];
  containers?: readonly { name: string; image?: string }[];
}

// Limits of `status.arm64.images[]` in the CRD.
const MAX_TEXT = 1024;
const MAX_PLATFORMS = 64;
const MAX_PLATFORM = 64;

/** One `status.arm64.images` entry, within the CRD's limits. */
export function toImagePlatforms(container: string, resolution: ImageResolution): ImagePlatforms {
  const image = clip(resolution.image, MAX_TEXT);
  if ('error' in resolution)
    return { container, image, error: clip(resolution.error.message, MAX_TEXT) };
  return {
    container,
    image,
    digest: resolution.digest,
    platforms: resolution.platforms.slice(0, MAX_PLATFORMS).map((p) => clip(p, MAX_PLATFORM)),
  };
}

/** The recommender's fact for one image. */
export function toImagePlatformsFact(resolution: ImageResolution): ImagePlatformsFact {
  if ('error' in resolution) return { error: clip(resolution.error.message, MAX_TEXT) };
  return { platforms: resolution.platforms, digest: resolution.digest };
}

/**
 * Looks up every image of a pod — init containers first, then containers — with the pod's
 * pull-secret credentials. Containers without an image are skipped. Never throws: a failed
 * lookup gives an entry with `error`.
 */
export async function platformsForPod(
  client: Pick<RegistryClient, 'resolve'>,
  spec: PodImages,
  credentials: readonly RegistryCredentials[] = [],
): Promise<ImagePlatforms[]> {
  const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? [])].filter(
    (c): c is { name: string; image: string } => c.image !== undefined && c.image !== '',
  );
  return Promise.all(
    containers.map(async (c) =>
      toImagePlatforms(c.name, await client.resolve(c.image, credentials)),
    ),
  );
}
