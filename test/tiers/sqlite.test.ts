import { join } from 'node:path';
import { SqliteTier } from '../../src/tiers/sqlite/index.js';
import { runTierContract } from './contract.js';

runTierContract({
  name: 'sqlite l2',
  durable: true,
  create: (dir) => new SqliteTier({ path: join(dir, 'l2_cache.db'), role: 'l2' }),
});

runTierContract({
  name: 'sqlite l3',
  durable: true,
  create: (dir) => new SqliteTier({ path: join(dir, 'proxywhirl.db'), role: 'l3' }),
});
