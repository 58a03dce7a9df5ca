// Offline validation of the chart and the kustomize manifests: helm lint
// --strict; helm template for the default and the production values, with and
// without the CRD APIs; every rendered object checked against the Kubernetes,
// KEDA and prometheus-operator JSON schemas and type-checked strictly (unknown
// fields fail) with tsc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartDir, repoRoot } from './lib/paths.mjs';
import { helmRun, renderChart, kubectlKustomize, productionValues, validateWithSchemas, modelOf } from './lib/render.mjs';
import { typecheck, objectsAsTs } from './lib/typecheck.mjs';

const renders = {};
for (const [valuesName, values] of [['default', []], ['production', [productionValues]]]) {
  for (const crds of [false, true]) {
    renders[`${valuesName}${crds ? '-crds' : ''}`] = () => renderChart({ values, crds });
  }
}
const overlays = ['dev', 'prod'];

test('helm lint --strict passes for the default and the production values', () => {
  helmRun(['lint', '--strict', chartDir]);
  helmRun(['lint', '--strict', chartDir, '-f', productionValues]);
});

const rendered = {};
for (const [name, render] of Object.entries(renders)) {
  test(`helm template (${name}) renders objects that pass their JSON schemas`, async () => {
    const objects = render();
    rendered[name] = objects;
    assert.ok(objects.length > 10, `rendered ${objects.length} objects`);
    const kinds = new Set(objects.map((o) => o.kind));
    const crdKinds = ['ScaledObject', 'ServiceMonitor', 'PodMonitor', 'PrometheusRule'];
    for (const kind of crdKinds) {
      assert.equal(kinds.has(kind), name.endsWith('-crds'), `${kind} rendered only when its API is present`);
    }
    await validateWithSchemas(objects);
  });
}

for (const overlay of overlays) {
  test(`kubectl kustomize deploy/k8s/overlays/${overlay} renders objects that pass their JSON schemas`, async () => {
    const objects = kubectlKustomize(`${repoRoot}/deploy/k8s/overlays/${overlay}`);
    rendered[`kustomize-${overlay}`] = objects;
    assert.ok(objects.length > 5);
    await validateWithSchemas(objects);
  });
}

test('every rendered object type-checks strictly against its interface (tsc)', () => {
  const names = Object.keys(rendered);
  assert.equal(names.length, Object.keys(renders).length + overlays.length, 'every render ran');
  typecheck(names.map((n) => objectsAsTs(n.replace(/-/g, '_'), rendered[n], modelOf)));
});

test('the strict type check rejects an unknown field and a wrong type', () => {
  const base = rendered.default.find((o) => o.kind === 'Deployment');
  const unknown = structuredClone(base);
  unknown.spec.template.spec.containers[0].livenesProbe = { grpc: { port: 1 } };
  assert.throws(() => typecheck([objectsAsTs('bad', [unknown], modelOf)]), /livenesProbe/);
  const wrongType = structuredClone(rendered['default-crds'].find((o) => o.kind === 'ScaledObject'));
  wrongType.spec.minReplicaCount = '0';
  assert.throws(() => typecheck([objectsAsTs('bad', [wrongType], modelOf)]), /minReplicaCount|string/);
});

test('the generated artefacts are up to date with their sources', async () => {
  const { run } = await import('./lib/render.mjs');
  const { readFileSync } = await import('node:fs');
  // deploy/k8s from the chart.
  run(process.execPath, [`${repoRoot}/tests/deploy/tools/gen-kustomize.mjs`, '--check']);
  // The values table of the chart README from values.yaml.
  const table = run(process.execPath, [`${repoRoot}/tests/deploy/tools/gen-readme.mjs`, `${chartDir}/values.yaml`]);
  const readme = readFileSync(`${chartDir}/README.md`, 'utf8');
  assert.ok(readme.includes(`<!-- values:begin -->\n${table}<!-- values:end -->`),
    'deploy/helm/gyre/README.md values table is stale: regenerate it with tests/deploy/tools/gen-readme.mjs');
  // values.schema.json from tools/gen-schema.mjs.
  const tmp = `${run('mktemp', ['-d']).trim()}/values.schema.json`;
  run(process.execPath, [`${repoRoot}/tests/deploy/tools/gen-schema.mjs`, tmp]);
  assert.equal(readFileSync(tmp, 'utf8'), readFileSync(`${chartDir}/values.schema.json`, 'utf8'),
    'deploy/helm/gyre/values.schema.json is stale: regenerate it with tests/deploy/tools/gen-schema.mjs');
});
