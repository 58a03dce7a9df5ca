// Strict type checking of rendered objects: the JSON schemas of
// kubernetes-models allow unknown fields, so each object is emitted as a
// TypeScript literal that `satisfies` its interface and tsc (strict) rejects
// any field the interface does not have, any wrong type and any missing
// required field.
import { mkdtempSync, writeFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { deployTestDir } from './paths.mjs';
import { run } from './render.mjs';

const tsc = `${deployTestDir}/node_modules/typescript/bin/tsc`;

// files: [{name, imports: [[module, names...]], body}]; throws with tsc's errors.
export function typecheck(files) {
  const dir = mkdtempSync(`${tmpdir()}/gyre-tsc-`);
  try {
    symlinkSync(`${deployTestDir}/node_modules`, `${dir}/node_modules`);
    for (const f of files) {
      const imports = f.imports.map(([m, ...names]) => `import type { ${names.join(', ')} } from '${m}';`).join('\n');
      writeFileSync(`${dir}/${f.name}.ts`, `${imports}\n${f.body}\n`);
    }
    writeFileSync(`${dir}/tsconfig.json`, JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext',
        skipLibCheck: true, exactOptionalPropertyTypes: false, types: [],
      },
      include: ['*.ts'],
    }));
    try {
      run(process.execPath, [tsc, '-p', dir]);
    } catch (e) {
      throw new Error(`tsc rejected the rendered objects:\n${e.message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// One TS file of `satisfies` literals for Kubernetes objects.
export function objectsAsTs(name, objects, modelOf) {
  const byModule = new Map();
  const lines = objects.map((obj, i) => {
    const { module, iface } = modelOf(obj);
    if (!byModule.has(module)) byModule.set(module, new Set());
    byModule.get(module).add(iface);
    return `// ${obj.kind} ${obj.metadata?.name}\nexport const o${i} = ${JSON.stringify(obj, null, 2)} satisfies ${iface};`;
  });
  return { name, imports: [...byModule].map(([m, s]) => [m, ...s]), body: lines.join('\n') };
}
