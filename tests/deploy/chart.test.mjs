// Chart unit tests over `helm template` output: the values that matter change
// what they should.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { renderChart, productionValues, helmRun } from './lib/render.mjs';
import { chartDir } from './lib/paths.mjs';

const find = (objects, kind, name) => objects.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const all = (objects, kind) => objects.filter((o) => o.kind === kind);
const podSpecs = (objects) => objects
  .filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind)).map((o) => [o, o.spec.template.spec])
  .concat(objects.filter((o) => o.kind === 'Pod').map((o) => [o, o.spec]));
const configOf = (objects, file) => YAML.parse(find(objects, 'ConfigMap', 'gyre-config').data[file]);

test('each pool gets an agent Deployment, a ScaledObject and its orchestrator worker_pools entry, all from the same values', () => {
  const objects = renderChart({ values: [productionValues], crds: true });
  const values = YAML.parse(require_('production'));
  const pools = Object.keys(values.pools).sort();
  assert.deepEqual(pools, ['default', 'gpu', 'highmem']);
  const agents = all(objects, 'Deployment').filter((d) => d.metadata.labels['app.kubernetes.io/component'] === 'agent');
  assert.deepEqual(agents.map((d) => d.metadata.labels['gyre.dev/pool']).sort(), pools);
  const scaled = all(objects, 'ScaledObject');
  assert.deepEqual(scaled.map((s) => s.metadata.labels['gyre.dev/pool']).sort(), pools);
  const workerPools = configOf(objects, 'orchestrator.yaml').worker_pools;
  for (const name of pools) {
    const { min, max, factor } = values.pools[name].autoscaling;
    assert.deepEqual(workerPools[name], { min, max, factor }, `worker_pools.${name} equals the pool's autoscaling values`);
    const so = scaled.find((s) => s.metadata.labels['gyre.dev/pool'] === name);
    assert.equal(so.spec.scaleTargetRef.name, `gyre-agent-${name}`);
    assert.equal(so.spec.minReplicaCount, min);
    assert.equal(so.spec.maxReplicaCount, max);
    const [trigger] = so.spec.triggers;
    assert.equal(trigger.type, 'prometheus');
    assert.equal(trigger.metricType, 'AverageValue');
    assert.equal(trigger.metadata.threshold, '1', 'threshold is the string "1": replicas = desired workers');
    assert.equal(trigger.metadata.ignoreNullValues, 'false', 'a missing series is an error (fallback), not zero');
    assert.match(trigger.metadata.query, new RegExp(`orchestrator_desired_workers\\{[^}]*worker_type="${name}"`));
    assert.equal(so.spec.fallback.behavior, 'currentReplicas', 'a Prometheus outage holds the current size');
    const agentConfig = configOf(objects, `agent-${name}.yaml`);
    assert.ok(agentConfig.queues.includes(name), `agent-${name} serves its own worker type`);
    assert.equal(agentConfig.slots, values.pools[name].slots);
    const deployment = agents.find((d) => d.metadata.labels['gyre.dev/pool'] === name);
    assert.equal(deployment.spec.replicas, undefined, 'the scaler owns replicas');
    assert.ok(deployment.spec.template.spec.terminationGracePeriodSeconds > values.pools[name].drainSeconds,
      'the pod outlives the agent drain');
    assert.equal(deployment.spec.template.spec.containers[0].args[0], `--config=/etc/gyre/agent-${name}.yaml`);
  }
  const gpu = agents.find((d) => d.metadata.labels['gyre.dev/pool'] === 'gpu').spec.template.spec;
  assert.deepEqual(gpu.nodeSelector, { 'nvidia.com/gpu.present': 'true' });
  assert.equal(gpu.tolerations[0].key, 'nvidia.com/gpu');
  assert.equal(gpu.containers[0].resources.limits['nvidia.com/gpu'], 1);
});

// Reads a values file by short name.
import { readFileSync } from 'node:fs';
function require_(name) {
  return readFileSync(name === 'production' ? productionValues : `${chartDir}/values.yaml`, 'utf8');
}

test('adding a pool with --set renders its Deployment, scaler and worker_pools entry', () => {
  const objects = renderChart({
    crds: true,
    set: ['pools.batch.slots=2', 'pools.batch.drainSeconds=30', 'pools.batch.autoscaling.min=1',
      'pools.batch.autoscaling.max=4', 'pools.batch.autoscaling.factor=6'],
  });
  assert.ok(find(objects, 'Deployment', 'gyre-agent-batch'));
  assert.equal(find(objects, 'ScaledObject', 'gyre-agent-batch').spec.maxReplicaCount, 4);
  assert.deepEqual(configOf(objects, 'orchestrator.yaml').worker_pools.batch, { min: 1, max: 4, factor: 6 });
  assert.deepEqual(configOf(objects, 'agent-batch.yaml').queues, ['batch']);
});

test('autoscaling off: each pool runs its replicas and no scaler is rendered', () => {
  const objects = renderChart({ crds: true, set: ['autoscaling.enabled=false', 'pools.default.replicas=0'] });
  assert.equal(all(objects, 'ScaledObject').length, 0);
  assert.equal(all(objects, 'HorizontalPodAutoscaler').length, 0);
  assert.equal(find(objects, 'Deployment', 'gyre-agent-default').spec.replicas, 0, 'replicas 0 is kept, not defaulted');
});

test('adapter mode: an External-metric HPA per pool and adapter rules with the same query as KEDA would use', () => {
  const keda = renderChart({ values: [productionValues], crds: true });
  const adapter = renderChart({ values: [productionValues], crds: true, set: ['autoscaling.mode=adapter'] });
  assert.equal(all(adapter, 'ScaledObject').length, 0);
  const rules = YAML.parse(find(adapter, 'ConfigMap', 'gyre-adapter-rules').data['config.yaml']).externalRules;
  for (const hpa of all(adapter, 'HorizontalPodAutoscaler')) {
    const pool = hpa.metadata.labels['gyre.dev/pool'];
    const metric = hpa.spec.metrics[0];
    assert.equal(metric.type, 'External');
    assert.deepEqual(metric.external.target, { type: 'AverageValue', averageValue: '1' });
    const rule = rules.find((r) => r.name.as === metric.external.metric.name);
    assert.ok(rule, `an adapter rule serves ${metric.external.metric.name}`);
    const so = find(keda, 'ScaledObject', `gyre-agent-${pool}`);
    assert.equal(rule.metricsQuery, so.spec.triggers[0].metadata.query);
    assert.ok(hpa.spec.minReplicas >= 1, 'an HPA cannot scale to zero');
  }
  assert.equal(all(adapter, 'HorizontalPodAutoscaler').length, 3);
});

test('forecast switch: the query takes the larger of desired now and the clamped forecast for the horizon', () => {
  const plain = find(renderChart({ crds: true }), 'ScaledObject').spec.triggers[0].metadata.query;
  assert.doesNotMatch(plain, /gyre_predicted_desired_workers/);
  const forecast = find(renderChart({ crds: true, set: ['autoscaling.forecast.enabled=true', 'autoscaling.forecast.horizon=90s'] }),
    'ScaledObject').spec.triggers[0].metadata.query;
  assert.match(forecast, /^max\(/);
  assert.match(forecast, /gyre_predicted_desired_workers\{[^}]*worker_type="default", horizon="90s"\}/);
  assert.match(forecast, /clamp\(ceil\(max\(gyre_predicted_desired_workers[^)]*\)\), 0, 10\)/, 'clamped to the pool min/max');
});

test('CRD objects need both their API and their toggle', () => {
  const without = renderChart({});
  for (const kind of ['ScaledObject', 'ServiceMonitor', 'PodMonitor', 'PrometheusRule']) {
    assert.equal(all(without, kind).length, 0, `${kind} without its API`);
  }
  const off = renderChart({ crds: true, set: ['monitoring.serviceMonitor.enabled=false', 'monitoring.prometheusRule.enabled=false'] });
  assert.equal(all(off, 'ServiceMonitor').length + all(off, 'PodMonitor').length + all(off, 'PrometheusRule').length, 0);
  const on = renderChart({ crds: true });
  assert.equal(all(on, 'ServiceMonitor').length, 5);
  assert.equal(all(on, 'PodMonitor').length, 1);
  assert.equal(all(on, 'PrometheusRule').length, 1);
});

test('database DSN: a chart Secret from database.dsn, or the operator\'s existingSecret and no chart Secret', () => {
  const own = renderChart({ set: ['orchestrator.store=postgres', 'orchestrator.replicas=2', 'database.dsn=postgresql://u:p@db/gyre'] });
  const secret = find(own, 'Secret', 'gyre-database');
  assert.equal(secret.stringData.dsn, 'postgresql://u:p@db/gyre');
  const env = find(own, 'StatefulSet').spec.template.spec.containers[0].env;
  assert.deepEqual(env[0].valueFrom.secretKeyRef, { name: 'gyre-database', key: 'dsn' });
  assert.equal(configOf(own, 'orchestrator.yaml').store, 'postgres');
  // Two replicas share the executions by shard leases, each advertising its pod address.
  assert.equal(configOf(own, 'orchestrator.yaml').postgres_sharding, true);
  assert.notEqual(configOf(own, 'orchestrator.yaml').postgres_projection, false,
    'sharded replicas keep the relational projection (on by default)');
  assert.equal(env.find((e) => e.name === 'GYRE_ADVERTISED_ADDRESS').value, '$(POD_IP):' + configOf(own, 'orchestrator.yaml').grpc_address.split(':')[1]);
  const existing = renderChart({ set: ['orchestrator.store=postgres', 'database.existingSecret=corp-db', 'database.existingSecretKey=url'] });
  assert.equal(configOf(existing, 'orchestrator.yaml').postgres_sharding, false, 'one replica keeps the single-writer store');
  assert.equal(all(existing, 'Secret').length, 0, 'no Secret rendered when existingSecret is given');
  assert.deepEqual(find(existing, 'StatefulSet').spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef,
    { name: 'corp-db', key: 'url' });
  const auth = renderChart({ set: ['auth.existingSecret=corp-auth'] });
  assert.equal(find(auth, 'Deployment', 'gyre-gateway').spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name, 'corp-auth');
});

test('every pod runs non-root with a read-only root filesystem, no capabilities and RuntimeDefault seccomp', () => {
  for (const values of [[], [productionValues]]) {
    const specs = podSpecs(renderChart({ values, crds: true }));
    assert.ok(specs.length >= 7, `${specs.length} pod specs`);
    for (const [owner, spec] of specs) {
      const where = `${owner.kind} ${owner.metadata.name}`;
      assert.equal(spec.securityContext.runAsNonRoot, true, where);
      assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault', where);
      for (const c of spec.containers) {
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, where);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, where);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], where);
        assert.ok(c.resources?.limits?.memory, `${where} has a memory limit`);
      }
    }
  }
});

test('every data_dir a rendered config names is a writable volume of the pod that reads it (the root filesystem is read-only)', () => {
  for (const values of [[], [productionValues]]) {
    const objects = renderChart({ values, crds: true });
    const configs = find(objects, 'ConfigMap', 'gyre-config').data;
    let checked = 0;
    for (const [owner, spec] of podSpecs(objects)) {
      for (const c of spec.containers) {
        const file = (c.args ?? []).concat(c.command ?? []).map((a) => /--config=\/etc\/gyre\/(.+)/.exec(a)?.[1]).find(Boolean);
        const dataDir = file && YAML.parse(configs[file]).data_dir;
        if (!dataDir) continue;
        const where = `${owner.kind} ${owner.metadata.name} (${file}: data_dir ${dataDir})`;
        const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === dataDir);
        assert.ok(mount && !mount.readOnly, `${where}: mounted writable`);
        const claims = (owner.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name);
        assert.ok(spec.volumes.some((v) => v.name === mount.name && (v.emptyDir || v.persistentVolumeClaim)) ||
          claims.includes(mount.name), `${where}: a volume, not the image`);
        checked++;
      }
    }
    // With store: postgres (the production values) the predictor has no data_dir: its model is in the database.
    const predictorInPostgres = configOf(objects, 'predictor.yaml').store === 'postgres';
    assert.ok(checked >= (predictorInPostgres ? 1 : 2), `orchestrator and predictor checked (${checked})`);
  }
});

test('orchestrator.store postgres: the predictor keeps its model in the database, DSN from the same Secret, no volume', () => {
  const pg = renderChart({ set: ['orchestrator.store=postgres', 'predictor.replicas=2', 'database.dsn=postgresql://u:p@db/gyre'] });
  const config = configOf(pg, 'predictor.yaml');
  assert.equal(config.store, 'postgres');
  assert.equal(config.data_dir, undefined);
  const spec = find(pg, 'Deployment', 'gyre-predictor').spec.template.spec;
  const dsn = spec.containers[0].env.find((e) => e.name === 'GYRE_POSTGRES_DSN');
  assert.deepEqual(dsn.valueFrom.secretKeyRef, { name: 'gyre-database', key: 'dsn' }, 'the orchestrator\'s Secret and key');
  assert.ok(!spec.volumes.some((v) => v.name === 'data'), 'no model volume');
  assert.ok(!spec.containers[0].volumeMounts.some((m) => m.name === 'data'));
  const existing = renderChart({ set: ['orchestrator.store=postgres', 'database.existingSecret=corp-db', 'database.existingSecretKey=url'] });
  assert.deepEqual(find(existing, 'Deployment', 'gyre-predictor').spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef,
    { name: 'corp-db', key: 'url' });
  const embedded = renderChart({});
  assert.equal(configOf(embedded, 'predictor.yaml').store, undefined);
  assert.equal(configOf(embedded, 'predictor.yaml').data_dir, '/var/lib/gyre/predictor');
  const embeddedSpec = find(embedded, 'Deployment', 'gyre-predictor').spec.template.spec;
  assert.equal(embeddedSpec.containers[0].env, undefined, 'no database settings without store: postgres');
  assert.ok(embeddedSpec.volumes.some((v) => v.name === 'data' && v.emptyDir));
});

test('every service container has native gRPC probes on its gRPC port, readiness on its component', () => {
  const objects = renderChart({});
  for (const [owner, spec] of podSpecs(objects).filter(([o]) => o.kind !== 'Pod')) {
    const c = spec.containers[0];
    const grpcPort = c.ports.find((p) => p.name === 'grpc').containerPort;
    const component = owner.metadata.labels['app.kubernetes.io/component'];
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      assert.equal(c[probe].grpc.port, grpcPort, `${owner.metadata.name} ${probe}`);
    }
    assert.equal(c.readinessProbe.grpc.service, `gyre.${component}`);
    // Liveness stays SERVING while a dependency (PostgreSQL) is away: only
    // readiness follows it, so an outage does not restart the pod.
    assert.equal(c.livenessProbe.grpc.service, 'gyre.liveness', `${owner.metadata.name} liveness`);
  }
});

test('a config change changes the checksum annotation, so pods roll', () => {
  const checksum = (objects) => find(objects, 'StatefulSet').spec.template.metadata.annotations['checksum/config'];
  const a = checksum(renderChart({}));
  assert.equal(a, checksum(renderChart({})), 'stable for the same values');
  assert.notEqual(a, checksum(renderChart({ set: ['logLevel=debug'] })));
  assert.notEqual(a, checksum(renderChart({ set: ['pools.default.autoscaling.max=20'] })));
});

test('the orchestrator: a StatefulSet behind a headless Service, a volume claim for the embedded store', () => {
  const objects = renderChart({});
  const sts = find(objects, 'StatefulSet');
  const svc = find(objects, 'Service', 'gyre-orchestrator');
  assert.equal(svc.spec.clusterIP, 'None');
  assert.equal(sts.spec.serviceName, svc.metadata.name);
  assert.equal(sts.spec.volumeClaimTemplates[0].metadata.name, 'data');
  assert.equal(configOf(objects, 'agent-default.yaml').orchestrator_address, 'gyre-orchestrator:50051');
  assert.throws(() => renderChart({ set: ['orchestrator.replicas=2'] }), /needs orchestrator.store: postgres/);
});

test('network policies: agents and the gateway reach the orchestrator; Prometheus reaches every metrics port', () => {
  const objects = renderChart({});
  const policies = all(objects, 'NetworkPolicy');
  assert.equal(policies.length, 6);
  const orch = find(objects, 'NetworkPolicy', 'gyre-orchestrator');
  const grpcRule = orch.spec.ingress.find((r) => r.ports[0].port === 50051);
  const clients = grpcRule.from.map((f) => f.podSelector.matchLabels['app.kubernetes.io/component']);
  assert.ok(clients.includes('agent') && clients.includes('gateway'));
  for (const p of policies) {
    assert.ok(p.spec.ingress.some((r) => r.from[0].namespaceSelector && r.from[0].podSelector), `${p.metadata.name}: Prometheus rule`);
  }
  assert.equal(all(renderChart({ set: ['networkPolicy.enabled=false'] }), 'NetworkPolicy').length, 0);
});

test('ingress, dashboards and the helm test pod', () => {
  assert.equal(all(renderChart({}), 'Ingress').length, 0);
  const ing = find(renderChart({ values: [productionValues] }), 'Ingress');
  assert.equal(ing.spec.rules[0].host, 'gyre.example.com');
  assert.equal(ing.spec.tls[0].secretName, 'gyre-tls');
  const objects = renderChart({});
  const dashboards = all(objects, 'ConfigMap').filter((c) => c.metadata.labels.grafana_dashboard === '1');
  assert.equal(dashboards.length, 3);
  const testPod = find(objects, 'Pod');
  assert.equal(testPod.metadata.annotations['helm.sh/hook'], 'test');
  assert.match(testPod.spec.containers[0].command.join(' '), /http:\/\/gyre-gateway:8080\/readyz/);
});

test('bad values fail the render with a message naming the value', () => {
  assert.throws(() => renderChart({ set: ['pools.default.slots=0'] }), /pools.default.slots/);
  assert.throws(() => renderChart({ set: ['autoscaling.mode=hpa'] }), /autoscaling.mode/);
  assert.throws(() => renderChart({ set: ['pools.default.autoscaling.min=5', 'pools.default.autoscaling.max=2'] }), /min 5 is above max 2/);
  assert.throws(() => renderChart({ set: ['pools.Bad_Name.slots=1', 'pools.Bad_Name.drainSeconds=1', 'pools.Bad_Name.autoscaling.min=0', 'pools.Bad_Name.autoscaling.max=1', 'pools.Bad_Name.autoscaling.factor=1'] }), /DNS label/);
  assert.throws(() => renderChart({ set: ['orchestrator.lease_timeout=3s'] }), /lease_timeout/);
  assert.throws(() => helmRun(['template', 'x', chartDir, '--set', 'orchestrator.leaseTimeout=soon']), /leaseTimeout/);
});

test('RBAC: read-only EndpointSlices in the release namespace, the token only in the orchestrator', () => {
  const objects = renderChart({});
  const role = find(objects, 'Role');
  assert.deepEqual(role.rules, [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }]);
  assert.equal(all(objects, 'ClusterRole').length, 0);
  for (const [owner, spec] of podSpecs(objects)) {
    const isOrchestrator = owner.kind === 'StatefulSet';
    assert.equal(spec.automountServiceAccountToken, isOrchestrator, `${owner.kind} ${owner.metadata.name}`);
  }
  const off = renderChart({ set: ['rbac.create=false'] });
  assert.equal(all(off, 'Role').length, 0);
  assert.equal(find(off, 'StatefulSet').spec.template.spec.automountServiceAccountToken, false);
});
