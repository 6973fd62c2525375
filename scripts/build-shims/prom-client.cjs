// What a deployable's bundle gets for `prom-client` (scripts/build.mjs): the package's own exports, each loaded on
// first use. prom-client's index.js requires the whole library as it loads, the Pushgateway (node:http, node:https
// and with it TLS), cluster aggregation and the default metrics' collectors among it, which no function uses:
// 8–14 % of a function's start in its profile (docs/performance.md, "Cold start"). The exports and their modules
// are index.js's (prom-client 15).
const modules = {
  Registry: () => require('prom-client/lib/registry'),
  Counter: () => require('prom-client/lib/counter'),
  Gauge: () => require('prom-client/lib/gauge'),
  Histogram: () => require('prom-client/lib/histogram'),
  Summary: () => require('prom-client/lib/summary'),
  Pushgateway: () => require('prom-client/lib/pushgateway'),
  collectDefaultMetrics: () => require('prom-client/lib/defaultMetrics'),
  AggregatorRegistry: () => require('prom-client/lib/cluster'),
  register: () => require('prom-client/lib/registry').globalRegistry,
  prometheusContentType: () => require('prom-client/lib/registry').PROMETHEUS_CONTENT_TYPE,
  openMetricsContentType: () => require('prom-client/lib/registry').OPENMETRICS_CONTENT_TYPE,
  validateMetricName: () => require('prom-client/lib/validation').validateMetricName,
  linearBuckets: () => require('prom-client/lib/bucketGenerators').linearBuckets,
  exponentialBuckets: () => require('prom-client/lib/bucketGenerators').exponentialBuckets,
  aggregators: () => require('prom-client/lib/metricAggregators').aggregators,
};
for (const [name, load] of Object.entries(modules)) {
  Object.defineProperty(exports, name, { enumerable: true, get: load });
}
Object.defineProperty(exports, 'contentType', {
  enumerable: true,
  get: () => require('prom-client/lib/registry').globalRegistry.contentType,
  set: (value) => require('prom-client/lib/registry').globalRegistry.setContentType(value),
});
