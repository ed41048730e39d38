import type { ImagePlatformsFact } from '../recommender/facts.ts';
import { clip } from '../recommender/reasons.ts';
import { flattenLists } from '../recommender/objects/index.ts';
import { isRecord, obj, objs, str } from '../recommender/objects/read.ts';
import { systemClock, type Clock } from './clock.ts';
import type { KubeApi, ResourceType } from './kube/client.ts';
import { errorMessage, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { ImageResolution, RegistryClient } from './registry/client.ts';
import {
  CredentialsError,
  credentialsFromSecret,
  type RegistryCredentials,
  type SecretLike,
} from './registry/credentials.ts';

/** Looks up the platforms of images (the registries, in the operator). */
export interface ImagePlatformSource {
  resolve(requests: readonly ImageRequest[]): Promise<Record<string, ImagePlatformsFact>>;
}

/** An image some workload runs, with the pull secrets its pod template names. */
export interface ImageRequest {
  image: string;
  namespace: string;
  pullSecrets: readonly string[];
}

/**
 * Every image named in a workload's pod template (objects from the cache or a kubectl dump,
 * Lists of any kind unwrapped as the recommender does), with its pull secrets, for registry
 * look-ups. Pods are skipped: their workload names them.
 */
export function imageRequests(objects: readonly unknown[]): ImageRequest[] {
  const requests: ImageRequest[] = [];
  for (const object of flattenLists(objects)) {
    if (object.kind === 'Pod') continue;
    const spec = obj(object.spec);
    const podSpec = obj(spec.template).spec ?? obj(obj(obj(spec.jobTemplate).spec).template).spec;
    if (!isRecord(podSpec)) continue;
    const namespace = str(obj(object.metadata).namespace) ?? '';
    const pullSecrets = objs(podSpec.imagePullSecrets).flatMap((secret) => {
      const name = str(secret.name);
      return name ? [name] : [];
    });
    for (const container of [...objs(podSpec.containers), ...objs(podSpec.initContainers)]) {
      const image = str(container.image);
      if (image) requests.push({ image, namespace, pullSecrets });
    }
  }
  return requests;
}

/** The recommender's fact for one image; an error message within the CRD's 1,024 characters. */
function toImagePlatformsFact(resolution: ImageResolution): ImagePlatformsFact {
  if ('error' in resolution) return { error: clip(resolution.error.message, 1024) };
  return { platforms: resolution.platforms, digest: resolution.digest };
}

const SECRETS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  namespaced: true,
};
/** Pull secrets are read again after this long (they rotate, e.g. ECR tokens every 12 h). */
const SECRET_TTL_MS = 5 * 60_000;

export interface RegistryImageSourceOptions {
  registry: Pick<RegistryClient, 'resolve'>;
  /** Reads pull secrets; absent offline (kopek analyze), where no secrets are read. */
  kube?: KubeApi;
  log: Logger;
  metrics?: Metrics;
  /** Read the imagePullSecrets pods reference (opt-in: needs `get` on secrets). */
  readPullSecrets: boolean;
  clock?: Clock;
}

/**
 * Image platforms from the registries. An image's platforms are a fact of the image, so each
 * image is looked up once (the registry client caches and shares lookups), with the pull
 * secrets of a workload that references it when reading secrets is enabled.
 */
export class RegistryImageSource implements ImagePlatformSource {
  private readonly options: RegistryImageSourceOptions;
  private readonly secrets = new Map<string, { at: number; credentials: RegistryCredentials[] }>();

  constructor(options: RegistryImageSourceOptions) {
    this.options = options;
  }

  async resolve(requests: readonly ImageRequest[]): Promise<Record<string, ImagePlatformsFact>> {
    const secretsByImage = new Map<string, { namespace: string; names: readonly string[] }>();
    for (const request of requests) {
      const known = secretsByImage.get(request.image);
      if (!known || (known.names.length === 0 && request.pullSecrets.length > 0)) {
        secretsByImage.set(request.image, {
          namespace: request.namespace,
          names: request.pullSecrets,
        });
      }
    }
    const entries = await Promise.all(
      [...secretsByImage].map(async ([image, secrets]) => {
        const credentials =
          this.options.readPullSecrets && this.options.kube
            ? await this.credentials(this.options.kube, secrets.namespace, secrets.names)
            : [];
        const resolution = await this.options.registry.resolve(image, credentials);
        if ('error' in resolution) {
          this.options.metrics?.sourceErrors.inc({ source: 'registry' });
          this.options.log.debug('image platforms unknown', {
            image,
            error: resolution.error.message,
          });
        }
        return [image, toImagePlatformsFact(resolution)] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  private async credentials(
    kube: KubeApi,
    namespace: string,
    names: readonly string[],
  ): Promise<RegistryCredentials[]> {
    const all: RegistryCredentials[] = [];
    for (const name of names) {
      const key = `${namespace}/${name}`;
      const cached = this.secrets.get(key);
      const now = (this.options.clock ?? systemClock).now();
      if (cached && now - cached.at < SECRET_TTL_MS) {
        all.push(...cached.credentials);
        continue;
      }
      let credentials: RegistryCredentials[] = [];
      try {
        credentials = credentialsFromSecret(await kube.get<SecretLike>(SECRETS, name, namespace));
      } catch (error) {
        // The message names the secret, never its content.
        const reason = error instanceof CredentialsError ? error.message : errorMessage(error);
        this.options.metrics?.sourceErrors.inc({ source: 'kube' });
        this.options.log.warn('cannot use an image pull secret', { secret: key, error: reason });
      }
      this.secrets.set(key, { at: now, credentials });
      all.push(...credentials);
    }
    return all;
  }
}
