// Validates custom resources (HTTPRoute, PrometheusRule, ServiceMonitor) against the schemas
// of their CRDs, which kubernetes-validate does not know, with the npm packages
// @kubernetes-models/gateway-api and @kubernetes-models/prometheus-operator (scripts/test.sh
// installs them into the tools cache).
//
//     node scripts/validate_custom_resources.mjs NODE_MODULES_DIR < objects.json
//
// objects.json is a JSON array of objects. Prints `valid Kind/name` or `invalid Kind/name:
// reasons` per object. Exit status: 0 when every object is valid and known; 1 otherwise; 2 for
// a usage error or a missing package.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const MODELS = {
  "gateway.networking.k8s.io/v1 HTTPRoute":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute.js",
  "monitoring.coreos.com/v1 PrometheusRule":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js",
  "monitoring.coreos.com/v1 ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js",
};

const modules = process.argv[2];
if (!modules) {
  console.error("usage: node scripts/validate_custom_resources.mjs NODE_MODULES_DIR < objects.json");
  process.exit(2);
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const object of objects) {
  const key = `${object.apiVersion} ${object.kind}`;
  const name = `${object.kind}/${object.metadata?.name}`;
  const file = MODELS[key] && join(modules, MODELS[key]);
  if (!file) {
    console.log(`invalid ${name}: no schema for ${key}`);
    failed = true;
    continue;
  }
  if (!existsSync(file)) {
    console.error(`${file} is missing: scripts/test.sh installs the @kubernetes-models packages`);
    process.exit(2);
  }
  const model = (await import(pathToFileURL(file).href))[object.kind];
  try {
    new model(object).validate();
    console.log(`valid ${name}`);
  } catch (error) {
    console.log(`invalid ${name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
