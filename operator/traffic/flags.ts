/**
 * The traffic telemetry flags of `kopek run` and `kopek analyze`, and their help text. No
 * imports: operator/config.ts builds its flag table from this at load time.
 */

/** Flag → environment variable (for `kopek run`). */
export const TRAFFIC_FLAGS: Record<string, string> = {
  'prometheus-url': 'KOPEK_PROMETHEUS_URL',
  'prometheus-bearer-token-file': 'KOPEK_PROMETHEUS_BEARER_TOKEN_FILE',
  'prometheus-ca-file': 'KOPEK_PROMETHEUS_CA_FILE',
  'prometheus-timeout': 'KOPEK_PROMETHEUS_TIMEOUT',
  'traffic-source': 'KOPEK_TRAFFIC_SOURCE',
  'traffic-window': 'KOPEK_TRAFFIC_WINDOW',
  'traffic-refresh-interval': 'KOPEK_TRAFFIC_REFRESH_INTERVAL',
  'traffic-query-beyla': 'KOPEK_TRAFFIC_QUERY_BEYLA',
  'traffic-query-istio': 'KOPEK_TRAFFIC_QUERY_ISTIO',
  'traffic-query-kubecost': 'KOPEK_TRAFFIC_QUERY_KUBECOST',
};

export const TRAFFIC_USAGE = `Cross-zone traffic, measured (optional; without it the cross-zone share is estimated):
  --prometheus-url URL            Prometheus-compatible API (Prometheus, Thanos, Mimir; Amazon Managed Prometheus through a SigV4 proxy) [KOPEK_PROMETHEUS_URL]
  --prometheus-bearer-token-file PATH
                                  sends its content as a bearer token, read on every query [KOPEK_PROMETHEUS_BEARER_TOKEN_FILE]
  --prometheus-ca-file PATH       PEM certificates to trust for an https URL [KOPEK_PROMETHEUS_CA_FILE]
  --prometheus-timeout DURATION   per query [KOPEK_PROMETHEUS_TIMEOUT] (default 30s)
  --traffic-source SOURCE         auto, beyla, istio or kubecost; auto takes the best whose series exist [KOPEK_TRAFFIC_SOURCE] (default auto)
  --traffic-window DURATION       the counters' growth is read over this window, scaled to a 730-hour month, e.g. 1d, 7d [KOPEK_TRAFFIC_WINDOW] (default 7d)
  --traffic-refresh-interval DURATION
                                  query again this often; one query per refresh [KOPEK_TRAFFIC_REFRESH_INTERVAL] (default 15m)
  --traffic-query-beyla PROMQL    replaces a source's query; $window stands for the window
  --traffic-query-istio PROMQL    (see the README for the labels each answer must carry)
  --traffic-query-kubecost PROMQL [KOPEK_TRAFFIC_QUERY_BEYLA, _ISTIO, _KUBECOST]`;
