// Generates deploy/helm/gyre/values.schema.json (JSON Schema draft-07, in the
// subset helm 3.10 validates: type, enum, required, pattern, minimum,
// additionalProperties). Usage: node tools/gen-schema.mjs OUT.json
import { writeFileSync } from 'node:fs';
const str = (extra = {}) => ({ type: 'string', ...extra });
const int = (minimum = 0) => ({ type: 'integer', minimum });
const bool = { type: 'boolean' };
const obj = (properties, required = Object.keys(properties)) => ({ type: 'object', additionalProperties: false, required, properties });
const anyObj = { type: 'object' };
const arr = { type: 'array' };
const duration = str({ pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$' });
const quantity = { type: ['string', 'integer'] };
const image = obj({ repository: str({ pattern: '^[a-z0-9]' }), tag: str(), pullPolicy: { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'] } });
const ports = (http) => obj({ grpc: int(1), metrics: int(1), ...(http ? { http: int(1) } : {}) });
const placement = { nodeSelector: anyObj, tolerations: arr, affinity: anyObj };
const resources = { type: 'object', additionalProperties: false, properties: { requests: anyObj, limits: anyObj } };
const service = obj({ enabled: bool, replicas: int(0), shutdownGrace: duration, resources, ...placement, pdbMaxUnavailable: int(0) });
const pool = obj({
  queues: { type: 'array', items: str() }, labels: { type: 'object', additionalProperties: { type: 'string' } },
  slots: int(1), drainSeconds: int(0), replicas: int(0),
  autoscaling: obj({ min: int(0), max: int(1), factor: int(1) }),
  resources, workDirSizeLimit: quantity, ...placement,
}, ['slots', 'drainSeconds', 'autoscaling']);
const schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Values of the Gyre chart',
  ...obj({
    nameOverride: str(), fullnameOverride: str(),
    images: obj(Object.fromEntries(['orchestrator', 'agent', 'gateway', 'scheduler', 'optimizer', 'predictor'].map((s) => [s, image]))),
    imagePullSecrets: arr,
    logLevel: { type: 'string', enum: ['debug', 'info', 'warn', 'error'] },
    ports: obj({ orchestrator: ports(), agent: ports(), scheduler: ports(), optimizer: ports(), predictor: ports(), gateway: ports(true) }),
    securityContext: obj({ runAsUser: int(1), runAsGroup: int(1) }),
    orchestrator: obj({
      replicas: int(1), store: { type: 'string', enum: ['embedded', 'postgres'] }, postgresSharding: bool, shardLeaseTtl: duration, fsync: bool, snapshotEveryRecords: int(0),
      leaseTimeout: duration, heartbeatInterval: duration, shutdownGrace: duration,
      persistence: obj({ enabled: bool, size: quantity, storageClassName: str() }),
      resources, ...placement, pdbMaxUnavailable: int(0),
    }),
    gateway: obj({
      replicas: int(0), httpThreads: int(1), maxBodyBytes: int(1), shutdownGrace: duration, resources, ...placement, pdbMaxUnavailable: int(0),
      ingress: obj({ enabled: bool, className: str(), host: str(), tlsSecretName: str(), annotations: anyObj }),
    }),
    scheduler: service, optimizer: service, predictor: service,
    pools: { type: 'object', additionalProperties: pool },
    autoscaling: obj({
      enabled: bool, mode: { type: 'string', enum: ['keda', 'adapter'] }, prometheusAddress: str({ pattern: '^https?://' }),
      keda: obj({ pollingInterval: int(1), cooldownPeriod: int(0), fallbackFailureThreshold: int(1) }),
      forecast: obj({ enabled: bool, horizon: duration }),
    }),
    database: obj({ dsn: str(), existingSecret: str(), existingSecretKey: str() }),
    auth: obj({ tokenSigningKey: str(), existingSecret: str(), existingSecretKey: str() }),
    serviceAccount: obj({ create: bool, name: str(), annotations: anyObj }),
    rbac: obj({ create: bool }),
    networkPolicy: obj({ enabled: bool, prometheusNamespaceSelector: anyObj, prometheusPodSelector: anyObj, gatewayIngressNamespaceSelector: anyObj }),
    monitoring: obj({
      serviceMonitor: obj({ enabled: bool, interval: duration, labels: anyObj }),
      prometheusRule: obj({ enabled: bool, labels: anyObj }),
      runbookBaseUrl: str({ pattern: '^https?://' }),
      dashboards: obj({ enabled: bool, labels: anyObj }),
    }),
    tests: obj({ image: str({ pattern: ':' }) }),
  }, ['images', 'orchestrator', 'pools', 'autoscaling']),
};
writeFileSync(process.argv[2], JSON.stringify(schema, null, 2) + '\n');
