import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { KubeApi, ResourceType } from '../kube/client.ts';
import { errorMessage, type Logger } from '../log.ts';
import { rfc3339 } from '../time.ts';

export const EVENTS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  namespaced: true,
};

/** The object an Event is about. */
export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

/**
 * Records core/v1 Events for people running `kubectl describe`. An Event that cannot be written
 * is logged and dropped: it must never stop or repeat a change.
 */
export class EventRecorder {
  private readonly client: KubeApi;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(options: { client: KubeApi; clock: Clock; log: Logger }) {
    this.client = options.client;
    this.clock = options.clock;
    this.log = options.log;
  }

  async record(
    objects: readonly InvolvedObject[],
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const now = rfc3339(new Date(this.clock.now()));
    for (const involved of objects) {
      try {
        await this.client.create(EVENTS, {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: {
            name: `${involved.name}.${randomBytes(8).toString('hex')}`,
            namespace: involved.namespace,
          },
          involvedObject: involved,
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: 'kopek' },
          reportingComponent: 'kopek.dev/apply',
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        } as Parameters<KubeApi['create']>[1]);
      } catch (error) {
        this.log.warn('could not record an event', {
          reason,
          object: `${involved.kind}/${involved.namespace}/${involved.name}`,
          error: errorMessage(error),
        });
      }
    }
  }
}
