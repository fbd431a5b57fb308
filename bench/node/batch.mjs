// Workload 1 in Node: N concurrent async callers each load one key through dataloader
// (maxBatchSize 100; the batch function returns its keys doubled). cache: false, since dike
// does not cache either (and every key is distinct). dataloader dispatches on its default
// schedule (after the current tick), so no max-waiting-time timer is involved.
// With `mem`: JS heap growth per waiting caller once all N wait.
import DataLoader from 'dataloader';
import { args, now, heapBytes, check, report } from './common.mjs';

const { impl, n, mem } = args('batch.mjs dataloader N [mem]');
if (impl !== 'dataloader') throw new Error(`batch.mjs: unknown IMPL ${impl}`);

const loader = new DataLoader(async (keys) => keys.map((k) => k * 2), { maxBatchSize: 100, cache: false });
let sum = 0;
async function caller(i) {
  const r = await loader.load(i);
  sum += r;
}

const before = mem ? heapBytes() : 0;
const t0 = now();
const all = new Array(n);
for (let i = 1; i <= n; i++) all[i - 1] = caller(i);
const perCaller = mem ? (heapBytes() - before) / n : false;
await Promise.all(all);
const seconds = now() - t0;
check('sum of results', sum, n * (n + 1));
report({ ops: n, seconds, bytes_per_caller: perCaller });
