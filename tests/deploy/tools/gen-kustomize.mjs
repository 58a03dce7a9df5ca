// Generates deploy/k8s from the chart, so the plain manifests are the chart's
// objects and never drift (tests/deploy/validate.test.mjs checks they are up
// to date): base/ is the default values without CRD objects; the prod
// overlay adds the KEDA ScaledObject and the prometheus-operator objects.
// Usage: node tools/gen-kustomize.mjs [--check]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import YAML from 'yaml';
import { repoRoot } from '../lib/paths.mjs';
import { renderChart } from '../lib/render.mjs';

const header = '# Generated from deploy/helm/gyre by tests/deploy/tools/gen-kustomize.mjs; do not edit.\n';

function plain(obj) {
  const strip = (labels) => {
    if (!labels) return;
    delete labels['helm.sh/chart'];
    if (labels['app.kubernetes.io/managed-by']) labels['app.kubernetes.io/managed-by'] = 'kustomize';
  };
  strip(obj.metadata?.labels);
  strip(obj.spec?.template?.metadata?.labels);
  return obj;
}

function toYaml(objects) {
  return header + objects.map((o) => YAML.stringify(plain(o), { lineWidth: 0 })).join('---\n');
}

export function generate() {
  const crdKinds = new Set(['ScaledObject', 'ServiceMonitor', 'PodMonitor', 'PrometheusRule']);
  const isTest = (o) => o.metadata?.annotations?.['helm.sh/hook'] === 'test';
  const base = renderChart({}).filter((o) => !isTest(o));
  const withCrds = renderChart({ crds: true }).filter((o) => crdKinds.has(o.kind));
  return {
    'deploy/k8s/base/gyre.yaml': toYaml(base),
    'deploy/k8s/overlays/prod/crd-objects.yaml': toYaml(withCrds),
  };
}

if (process.argv[1].endsWith('gen-kustomize.mjs')) {
  const check = process.argv.includes('--check');
  let stale = [];
  for (const [path, text] of Object.entries(generate())) {
    const full = `${repoRoot}/${path}`;
    if (check) {
      let old = '';
      try { old = readFileSync(full, 'utf8'); } catch {}
      if (old !== text) stale.push(path);
    } else {
      mkdirSync(full.replace(/\/[^/]+$/, ''), { recursive: true });
      writeFileSync(full, text);
    }
  }
  if (stale.length) {
    console.error(`out of date (run node tests/deploy/tools/gen-kustomize.mjs): ${stale.join(', ')}`);
    process.exit(1);
  }
}
