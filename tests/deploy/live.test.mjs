// The chart's queries against the real suite and a real Prometheus, on
// loopback: every service started with its config as the chart renders it
// (the orchestrator's worker_pools from the pools, gyre-agents of two worker
// types), a synthetic predictor target exporting a forecast series, and
// Debian's Prometheus scraping them with the chart's rules loaded. Work is
// pushed into both pools; the exact query text of each rendered ScaledObject
// and Prometheus Adapter rule is evaluated as the queues grow and drain, and
// ceil(value / threshold) clamped to the scaler's min and max must give the
// replicas the pool needs. Then every dashboard query, recording rule and
// alert expression is evaluated: none may fail, none may come back empty
// where the suite produces the series.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import YAML from 'yaml';
import { chartDir, deployTestDir, repoRoot } from './lib/paths.mjs';
import { renderChart } from './lib/render.mjs';
import { writeRulesFile } from './lib/rules.mjs';

const binDir = process.env.GYRE_BIN_DIR ?? `${repoRoot}/build`;
const bin = {
  orchestrator: `${binDir}/services/orchestrator/gyre-orchestrator`,
  agent: `${binDir}/services/agent/gyre-agent`,
  gyre: `${binDir}/cmd/gyre/gyre`,
  gateway: `${binDir}/services/gateway/gyre-gateway`,
  scheduler: `${binDir}/services/scheduler/gyre-scheduler`,
  optimizer: `${binDir}/services/optimizer/gyre-optimizer`,
  predictor: `${binDir}/services/predictor/gyre-predictor`,
  prometheus: '/usr/bin/prometheus',
};
for (const [name, path] of Object.entries(bin)) {
  if (!existsSync(path)) throw new Error(`${name} not found at ${path}: build it (scripts/build) or install prometheus (scripts/setup)`);
}

const values = [`${deployTestDir}/live-values.yaml`];
const render = (set = []) => renderChart({ values, set, crds: true });
const pools = YAML.parse(readFileSync(values[0], 'utf8')).pools;

const root = mkdtempSync(`${tmpdir()}/gyre-live-`);
const children = [];
after(async () => {
  for (const child of children.reverse()) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null
    ? new Promise((r) => { const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 15000); c.on('exit', () => { clearTimeout(t); r(); }); })
    : null)));
  predictor?.close();
  rmSync(root, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts a process; resolves with it once a stderr line matches `ready` (JSON logs).
function start(name, argv, { env = {}, ready } = {}) {
  const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready in 60 s:\n${log.slice(-3000)}`)), 60000);
    const onData = (chunk) => {
      log += chunk;
      if (log.length > 1 << 20) log = log.slice(-(1 << 19));
      for (const line of log.split('\n')) {
        if (ready && ready.test(line)) { clearTimeout(timer); resolve({ child, line, log: () => log }); return; }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code}:\n${log.slice(-3000)}`)); });
    if (!ready) { clearTimeout(timer); resolve({ child, log: () => log }); }
  });
}

const servingPorts = (line) => {
  const j = JSON.parse(line);
  return { grpc: j.grpc_port, metrics: j.metrics_port };
};

// A synthetic predictor: the forecast series the forecast switch reads.
let forecast = { cpu: 1.2 };
const predictor = createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain; version=0.0.4');
  let body = '# TYPE gyre_predicted_desired_workers gauge\n';
  for (const [wt, v] of Object.entries(forecast)) body += `gyre_predicted_desired_workers{worker_type="${wt}",horizon="2m"} ${v}\n`;
  res.end(body);
});

let prom;
async function query(expr) {
  const url = `http://127.0.0.1:${prom.port}/api/v1/query?query=${encodeURIComponent(expr)}`;
  const res = await fetch(url);
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`query failed: ${expr}\n${body.errorType}: ${body.error}`);
  return body.data.result;
}
async function scalar(expr) {
  const result = await query(expr);
  if (result.length !== 1) throw new Error(`expected one series from ${expr}, got ${JSON.stringify(result)}`);
  return Number(result[0].value[1]);
}
// Polls fn() until check(value) holds; generous bound, asserts the behaviour, not the time.
async function until(what, fn, check, seconds = 60) {
  let last;
  for (const deadline = Date.now() + seconds * 1000; Date.now() < deadline; await sleep(500)) {
    try { last = await fn(); if (check(last)) return last; } catch (e) { last = e.message; }
  }
  throw new Error(`${what}: not reached in ${seconds} s; last: ${JSON.stringify(last)}`);
}

// The scaler's arithmetic (KEDA's AverageValue, the HPA's AverageValue
// target): ceil(value / threshold) clamped to the scaler's own bounds.
const replicas = (value, { threshold, min, max }) => Math.min(max, Math.max(min, Math.ceil(value / threshold)));

// Queries per pool, exactly as rendered.
const scalerQueries = {};
for (const [label, set] of [['keda', []], ['keda+forecast', ['autoscaling.forecast.enabled=true']],
  ['adapter', ['autoscaling.mode=adapter']], ['adapter+forecast', ['autoscaling.mode=adapter', 'autoscaling.forecast.enabled=true']]]) {
  const objects = render(set);
  for (const pool of Object.keys(pools)) {
    let query, threshold, min, max;
    if (label.startsWith('keda')) {
      const so = objects.find((o) => o.kind === 'ScaledObject' && o.metadata.labels['gyre.dev/pool'] === pool);
      query = so.spec.triggers[0].metadata.query;
      threshold = Number(so.spec.triggers[0].metadata.threshold);
      [min, max] = [so.spec.minReplicaCount, so.spec.maxReplicaCount];
      assert.deepEqual([min, max], [pools[pool].autoscaling.min, pools[pool].autoscaling.max]);
    } else {
      const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.labels['gyre.dev/pool'] === pool);
      const rules = YAML.parse(objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('adapter-rules')).data['config.yaml']).externalRules;
      query = rules.find((r) => r.name.as === hpa.spec.metrics[0].external.metric.name).metricsQuery;
      threshold = Number(hpa.spec.metrics[0].external.target.averageValue);
      // An HPA keeps at least one replica.
      [min, max] = [hpa.spec.minReplicas, hpa.spec.maxReplicas];
      assert.deepEqual([min, max], [Math.max(1, pools[pool].autoscaling.min), pools[pool].autoscaling.max]);
    }
    (scalerQueries[label] ??= {})[pool] = { query, threshold, min, max };
  }
}

async function replicasFor(label, pool) {
  const scaler = scalerQueries[label][pool];
  return replicas(await scalar(scaler.query), scaler);
}
async function expectReplicas(label, expected, seconds = 60) {
  for (const [pool, want] of Object.entries(expected)) {
    await until(`${label}: pool ${pool} -> ${want} replicas`, () => replicasFor(label, pool), (r) => r === want, seconds);
  }
}

function workflow(name, counts) {
  const tasks = [];
  for (const [queue, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) tasks.push({ id: `${queue}-${i}`, queue, command: ['/bin/sleep', '0.3'] });
  }
  const path = `${root}/${name}.yaml`;
  writeFileSync(path, YAML.stringify({ name, tasks }));
  return path;
}

let orchestrator;
let gatewayHttpPort;
const runs = [];

test('the suite starts from the chart\'s rendered configs and Prometheus scrapes it', async () => {
  const config = render().find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'gyre-config').data;
  writeFileSync(`${root}/orchestrator.yaml`, config['orchestrator.yaml']);
  for (const pool of Object.keys(pools)) writeFileSync(`${root}/agent-${pool}.yaml`, config[`agent-${pool}.yaml`]);
  orchestrator = await start('gyre-orchestrator', [bin.orchestrator, `--config=${root}/orchestrator.yaml`], {
    env: { GYRE_GRPC_ADDRESS: '127.0.0.1:0', GYRE_METRICS_ADDRESS: '127.0.0.1:0', GYRE_DATA_DIR: `${root}/data`, GYRE_SHUTDOWN_GRACE: '2s' },
    ready: /"msg":"serving"/,
  });
  orchestrator.ports = servingPorts(orchestrator.line);
  // The other services, each from its rendered config, as in the pods.
  const serviceTargets = {};
  for (const service of ['gateway', 'scheduler', 'optimizer', 'predictor']) {
    writeFileSync(`${root}/${service}.yaml`, config[`${service}.yaml`]);
    const env = { GYRE_GRPC_ADDRESS: '127.0.0.1:0', GYRE_METRICS_ADDRESS: '127.0.0.1:0', GYRE_SHUTDOWN_GRACE: '2s' };
    // The pod's volume, here a directory of the test's own.
    if (service === 'predictor') env.GYRE_DATA_DIR = `${root}/predictor`;
    if (service === 'gateway') {
      gatewayHttpPort = await freePort();
      Object.assign(env, { GYRE_HTTP_ADDRESS: `127.0.0.1:${gatewayHttpPort}`, GYRE_ORCHESTRATOR_ADDRESS: `127.0.0.1:${orchestrator.ports.grpc}` });
    }
    const started = await start(`gyre-${service}`, [bin[service], `--config=${root}/${service}.yaml`], { env, ready: /"msg":"serving"/ });
    serviceTargets[service] = `127.0.0.1:${servingPorts(started.line).metrics}`;
  }
  await new Promise((r) => predictor.listen(0, '127.0.0.1', r));

  const rulesFile = `${root}/rules.yaml`;
  writeRulesFile(rulesFile, render().find((o) => o.kind === 'PrometheusRule').spec.groups);
  writeFileSync(`${root}/agents.json`, '[]');
  const labels = { namespace: 'gyre' };
  writeFileSync(`${root}/prometheus.yml`, YAML.stringify({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: [rulesFile],
    scrape_configs: [
      // Job names as the chart's ServiceMonitors make them: the Service name.
      { job_name: 'gyre-orchestrator', static_configs: [{ targets: [`127.0.0.1:${orchestrator.ports.metrics}`], labels }] },
      // The real predictor, and the synthetic forecast as the same job.
      { job_name: 'gyre-predictor', static_configs: [{ targets: [serviceTargets.predictor, `127.0.0.1:${predictor.address().port}`], labels }] },
      ...['gateway', 'scheduler', 'optimizer'].map((s) => ({ job_name: `gyre-${s}`, static_configs: [{ targets: [serviceTargets[s]], labels }] })),
      { job_name: 'gyre-agent', file_sd_configs: [{ files: [`${root}/agents.json`], refresh_interval: '1s' }] },
    ],
  }));
  const promPort = await freePort();
  prom = await start('prometheus', [bin.prometheus, `--config.file=${root}/prometheus.yml`,
    `--storage.tsdb.path=${root}/prometheus`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], {});
  prom.port = promPort;
  // The first sample is queryable ~6 s after start: poll.
  await until('first scrape of the orchestrator', () => scalar('up{job="gyre-orchestrator"}'), (v) => v === 1, 60);
  const groups = await until('rules loaded', async () => (await (await fetch(`http://127.0.0.1:${prom.port}/api/v1/rules`)).json()).data.groups, (g) => g.length > 0);
  // Prometheus loaded every alert the chart renders (none rejected).
  const rendered = render().find((o) => o.kind === 'PrometheusRule').spec.groups.flatMap((g) => g.rules).filter((r) => r.alert);
  assert.ok(rendered.length >= 8, `the chart renders ${rendered.length} alerts`);
  assert.deepEqual(groups.flatMap((g) => g.rules).filter((r) => r.type === 'alerting').map((r) => r.name).sort(),
    rendered.map((r) => r.alert).sort());
  for (const job of ['gyre-gateway', 'gyre-scheduler', 'gyre-optimizer', 'gyre-predictor']) {
    await until(`${job} scraped`, () => scalar(`min(up{job="${job}"})`), (v) => v === 1);
  }
});

test('the helm test pod\'s request succeeds against the real gateway', async () => {
  const pod = render().find((o) => o.kind === 'Pod' && o.metadata.annotations['helm.sh/hook'] === 'test');
  const url = new URL(pod.spec.containers[0].command.at(-1));
  const res = await fetch(`http://127.0.0.1:${gatewayHttpPort}${url.pathname}`);
  assert.equal(res.status, 200, `${url.pathname}: ${await res.text()}`);
});

async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

test('as the queues grow, each pool\'s scaler query gives the replicas it needs (6 then 18 queued on cpu, factor 6 -> 1 then 3)', async () => {
  const address = `127.0.0.1:${orchestrator.ports.grpc}`;
  const submit = async (name, counts) => {
    const run = await start(`gyre run ${name}`, [bin.gyre, 'run', workflow(name, counts), `--orchestrator=${address}`], {});
    runs.push(new Promise((resolve) => run.child.on('exit', (code) => resolve({ name, code, log: run.log() }))));
  };
  // No agent is connected yet: everything submitted waits in the queues.
  await submit('first', { cpu: 6 });
  for (const label of ['keda', 'adapter']) await expectReplicas(label, { cpu: 1 });
  await submit('second', { cpu: 12, gpu: 5 });
  for (const label of ['keda', 'adapter']) await expectReplicas(label, { cpu: 3, gpu: 2 });
  // The orchestrator's own inputs agree: 18 queued on cpu, 5 on gpu.
  assert.equal(await scalar('sum(gyre_queue_depth{worker_type="cpu"})'), 18);
  assert.equal(await scalar('sum(gyre_queue_depth{worker_type="gpu"})'), 5);
  // Forecast below the current need (cpu 1.2 < 3; no gpu forecast): the need wins.
  for (const label of ['keda+forecast', 'adapter+forecast']) await expectReplicas(label, { cpu: 3, gpu: 2 });
});

test('as agents of both worker types drain the queues, the replicas fall to the pools\' minimum', async () => {
  const targets = [];
  for (const pool of Object.keys(pools)) {
    const agent = await start(`gyre-agent ${pool}`, [bin.agent, `--config=${root}/agent-${pool}.yaml`], {
      env: { GYRE_ORCHESTRATOR_ADDRESS: `127.0.0.1:${orchestrator.ports.grpc}`, GYRE_GRPC_ADDRESS: '127.0.0.1:0',
        GYRE_METRICS_ADDRESS: '127.0.0.1:0', GYRE_WORK_DIR: `${root}/work-${pool}`, GYRE_NAME: `live-${pool}`,
        GYRE_ALLOW_ROOT_TASKS: 'true' },
      ready: /"msg":"serving"/,
    });
    targets.push(`127.0.0.1:${servingPorts(agent.line).metrics}`);
  }
  writeFileSync(`${root}/agents.json.tmp`, JSON.stringify([{ targets, labels: { namespace: 'gyre' } }]));
  renameSync(`${root}/agents.json.tmp`, `${root}/agents.json`);
  const seen = { cpu: new Set(), gpu: new Set() };
  for (const pool of Object.keys(pools)) {
    await until(`pool ${pool} drained to its minimum`, async () => {
      const r = await replicasFor('keda', pool);
      seen[pool].add(r);
      return r;
    }, (r) => r === pools[pool].autoscaling.min, 120);
  }
  // The HPA's floor is one replica.
  await expectReplicas('adapter', { cpu: 1, gpu: 1 });
  for (const [pool, values] of Object.entries(seen)) {
    for (const r of values) assert.ok(r >= pools[pool].autoscaling.min && r <= pools[pool].autoscaling.max, `${pool}: ${r} within min..max`);
  }
  for (const { name, code, log } of await Promise.all(runs)) assert.equal(code, 0, `gyre run ${name} succeeded:\n${log.slice(-2000)}`);
  assert.equal(await until('agents scraped', () => scalar('count(up{job="gyre-agent"} == 1)'), (v) => v === 2), 2);
});

test('forecast switch: a forecast above the current need scales ahead of it, clamped to the pool\'s max', async () => {
  forecast = { cpu: 3.4, gpu: 7 };
  await expectReplicas('keda+forecast', { cpu: 4, gpu: 2 });
  await expectReplicas('adapter+forecast', { cpu: 4, gpu: 2 });
  // Without the switch the queries ignore the forecast.
  await expectReplicas('keda', { cpu: 0, gpu: 0 });
  forecast = { cpu: 0.5 };
  await expectReplicas('keda+forecast', { cpu: 1, gpu: 0 });
  await expectReplicas('adapter+forecast', { cpu: 1, gpu: 1 });
});

// `a > 0.5` -> `a > bool 0.5`: a series whenever the operands have one, so
// an empty result means a metric is missing, not that the alert is quiet.
const boolify = (expr) => expr.replace(/(\s)(>=|<=|==|!=|>|<)(\s+)(?!bool\b)/g, '$1$2 bool$3');

test('every dashboard query, recording rule and alert expression evaluates and returns series', async () => {
  const problems = [];
  const check = async (where, expr, mustHaveSeries = true) => {
    try {
      const result = await query(expr);
      if (mustHaveSeries && result.length === 0) problems.push(`${where}: no series from ${expr}`);
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
  };
  const dir = `${chartDir}/files/dashboards`;
  for (const file of readdirSync(dir)) {
    const dashboard = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'));
    for (const panel of dashboard.panels) {
      for (const t of panel.targets) {
        await check(`${file} "${panel.title}" ${t.refId}`, t.expr.replaceAll('$job', '.*').replaceAll('$worker_type', '.*'));
      }
    }
  }
  const rules = render().find((o) => o.kind === 'PrometheusRule').spec.groups.flatMap((g) => g.rules);
  for (const rule of rules) {
    if (rule.record) {
      await check(`recording rule ${rule.record}`, rule.expr);
      await check(`recorded series ${rule.record}`, rule.record);
    } else {
      await check(`alert ${rule.alert}`, rule.expr, false);
      await check(`alert ${rule.alert} (operands)`, boolify(rule.expr));
    }
  }
  assert.deepEqual(problems, []);
  // The checks can fail.
  assert.equal(boolify('a > 0.5 and b == 0'), 'a > bool 0.5 and b == bool 0');
  assert.equal((await query('gyre_made_up_metric')).length, 0);
});
