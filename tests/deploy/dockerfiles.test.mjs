// Checks the service Dockerfiles by construction (there is no container
// engine here): every base image pinned by an exact tag, the final stage runs
// as a numeric non-root user, installs nothing and carries no build tools, and
// each service's image starts that service's binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { repoRoot } from './lib/paths.mjs';

const dockerDir = `${repoRoot}/deploy/docker`;
const services = {
  orchestrator: 'gyre-orchestrator',
  agent: 'gyre-agent',
  scheduler: 'gyre-scheduler',
  optimizer: 'gyre-optimizer',
  predictor: 'gyre-predictor',
  gateway: 'gyre-gateway',
};
const buildTools = /\b(build-essential|gcc|g\+\+|clang|cmake|ninja-build|ninja|make|pkg-config|protoc|protobuf-compiler\S*|\S+-dev)\b/;

// Splits a Dockerfile into stages: {from, name, instructions: [{op, args}]}.
export function parseDockerfile(text) {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const [image, as, name] = rest;
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      assert.ok(stages.length, `instruction before FROM: ${line}`);
      stages.at(-1).instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

test('there is one Dockerfile per service and nothing else', () => {
  const files = readdirSync(dockerDir).filter((f) => f.endsWith('.Dockerfile')).sort();
  assert.deepEqual(files, Object.keys(services).map((s) => `${s}.Dockerfile`).sort());
});

for (const [service, binary] of Object.entries(services)) {
  test(`${service}.Dockerfile is multi-stage, pinned, slim and non-root`, () => {
    const stages = parseDockerfile(readFileSync(`${dockerDir}/${service}.Dockerfile`, 'utf8'));
    assert.ok(stages.length >= 2, 'multi-stage: a build stage and a runtime stage');
    const names = new Set(stages.map((s) => s.name).filter(Boolean));
    for (const stage of stages) {
      if (names.has(stage.image)) continue; // FROM an earlier stage
      // debian:12.8 or debian:12.8-slim: Debian 12, an exact point release.
      assert.match(stage.image, /^debian:12\.\d+(-slim)?$/, `base image pinned to a Debian 12 point release: ${stage.image}`);
    }
    const final = stages.at(-1);
    assert.match(final.image, /-slim$/, 'runtime stage is Debian slim');
    const users = final.instructions.filter((i) => i.op === 'USER');
    assert.ok(users.length, 'final stage sets USER');
    const user = users.at(-1).args.split(':')[0];
    assert.match(user, /^\d+$/, 'USER is numeric so runAsNonRoot can verify it');
    assert.notEqual(Number(user), 0, 'USER is not root');
    for (const { op, args } of final.instructions) {
      if (op === 'RUN') {
        assert.doesNotMatch(args, /apt-get|apt |dpkg -i|curl|wget/, `final stage installs nothing: ${args}`);
        assert.doesNotMatch(args, buildTools, `final stage has no build tools: ${args}`);
      }
      if (op === 'COPY' || op === 'ADD') {
        assert.match(args, /^--from=/, `final stage copies only from the build stage: ${op} ${args}`);
      }
    }
    const build = stages.find((s) => s.name && stages.at(-1) !== s);
    const buildRuns = build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.match(buildRuns, new RegExp(`ninja -C \\S+ ${binary}\\b`), 'build stage builds the service binary');
    assert.match(buildRuns, /ldd .*\| .*cp -L \{\} \/rootfs\/usr\/lib\/x86_64-linux-gnu\//, 'build stage collects the shared libraries ldd reports');
    const entry = final.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    assert.deepEqual(JSON.parse(entry.args), [`/usr/local/bin/${binary}`]);
  });
}

// The packages scripts/setup installs to build the C++ (every -dev package and
// the protobuf/gRPC compilers): the image's build stage needs the same. The
// sanitizer and libFuzzer runtimes (libclang-rt-*) serve scripts/fuzz only.
function setupBuildPackages() {
  const setup = readFileSync(`${repoRoot}/scripts/setup`, 'utf8');
  const block = setup.match(/packages=\(([\s\S]*?)\n\)/);
  assert.ok(block, 'scripts/setup has a packages=( ... ) list');
  return block[1].split('\n').map((l) => l.replace(/#.*/, '')).join(' ').split(/\s+/)
    .filter((p) => /-dev$|^protobuf-compiler|^grpc-proto$/.test(p) && !/^libclang-rt-/.test(p));
}

test('each build stage installs the C++ build dependencies scripts/setup installs', () => {
  const wanted = setupBuildPackages();
  assert.ok(wanted.includes('libgrpc++-dev'));
  for (const service of Object.keys(services)) {
    const stages = parseDockerfile(readFileSync(`${dockerDir}/${service}.Dockerfile`, 'utf8'));
    const installed = stages[0].instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ').split(/\s+/);
    const missing = wanted.filter((p) => !installed.includes(p));
    assert.deepEqual(missing, [], `${service}.Dockerfile build stage lacks packages scripts/setup installs`);
  }
});

test('the parser catches what the checks look for', () => {
  const bad = parseDockerfile('FROM debian:latest AS build\nRUN make\nFROM debian\nRUN apt-get install -y gcc\nUSER 0\n');
  assert.equal(bad.length, 2);
  assert.doesNotMatch(bad[0].image, /^debian:12\.\d+(-slim)?$/);
  assert.match(bad[1].instructions[0].args, buildTools);
  assert.equal(bad[1].instructions[1].args, '0');
});
