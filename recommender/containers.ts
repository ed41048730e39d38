/**
 * What a container is, told from its name, image and ports: a datastore, or a helper injected
 * beside the application. Name and port heuristics, kept in one place so the rules that read
 * them agree.
 */
import type { ContainerFacts, WorkloadFacts } from './facts.ts';

/** Datastores by image name (the last path segment, without tag or digest). */
const DATASTORE_IMAGE: readonly [RegExp, string][] = [
  [/^(mysql|mariadb|percona(-server)?)$/, 'MySQL'],
  [/^(postgres(ql)?|postgis)$/, 'PostgreSQL'],
  [/^mongo(db)?(-community-server)?$/, 'MongoDB'],
  [/^(redis(-stack(-server)?)?|valkey|keydb)$/, 'Redis'],
  [/^(cp-)?kafka$/, 'Kafka'],
  [/^(cp-)?zookeeper$/, 'ZooKeeper'],
  [/^(elasticsearch|opensearch)$/, 'Elasticsearch'],
  [/^(cassandra|scylla)$/, 'Cassandra'],
  [/^rabbitmq$/, 'RabbitMQ'],
  [/^etcd$/, 'etcd'],
  [/^clickhouse(-server)?$/, 'ClickHouse'],
];
/** Their well-known ports, for images named otherwise. */
const DATASTORE_PORT: ReadonlyMap<number, string> = new Map([
  [3306, 'MySQL'],
  [5432, 'PostgreSQL'],
  [27017, 'MongoDB'],
  [6379, 'Redis'],
  [9092, 'Kafka'],
  [2181, 'ZooKeeper'],
  [9200, 'Elasticsearch'],
  [9042, 'Cassandra'],
  [5672, 'RabbitMQ'],
  [2379, 'etcd'],
]);
/** Images that speak a datastore's protocol without holding its data (poolers, proxies, exporters). */
const NOT_A_DATASTORE = /proxy|bouncer|pool|exporter|operator|sentinel/;

/** The datastore a container runs, by its image or a well-known port, and what gave it away. */
export function datastoreOf(c: ContainerFacts): string | undefined {
  const repo = (c.image.split('@')[0] ?? '').split('/').pop()?.split(':')[0] ?? '';
  if (NOT_A_DATASTORE.test(repo)) return undefined;
  const byImage = DATASTORE_IMAGE.find(([re]) => re.test(repo))?.[1];
  if (byImage !== undefined) return `${byImage} (image ${repo})`;
  const port = (c.ports ?? []).find((p) => DATASTORE_PORT.has(p));
  return port === undefined ? undefined : `${DATASTORE_PORT.get(port) ?? ''} (port ${port})`;
}
/**
 * Helpers injected beside the application (service-mesh proxies, log shippers, secret agents,
 * config reloaders), by container name or image: readiness is the application's to tell.
 */
const HELPER_CONTAINER =
  /(^|[-/_])(istio-proxy|linkerd-proxy|envoy|cloud-sql-proxy|vault-agent|fluent-bit|fluentd|config-reloader|oauth2-proxy|datadog-agent|otel-collector|kube-rbac-proxy)([-:_]|$)/;

/**
 * The containers whose readiness says the pod can serve: the regular containers that are not
 * known helpers (all of them when every one is). Native sidecars (restartable init containers)
 * and helpers without a probe count as ready once started.
 */
export function mainContainers(facts: WorkloadFacts): ContainerFacts[] {
  const regular = facts.template.containers.filter((c) => c.role === 'main');
  const apps = regular.filter(
    (c) => !HELPER_CONTAINER.test(c.name) && !HELPER_CONTAINER.test(c.image),
  );
  return apps.length > 0 ? apps : regular;
}
