import { JsonlTier } from '../../src/tiers/jsonl/index.js';
import { runTierContract } from './contract.js';

runTierContract({ name: 'jsonl', durable: true, create: (dir) => new JsonlTier({ dir }) });
runTierContract({
  name: 'jsonl (full durability, bounded)',
  durable: true,
  create: (dir) => new JsonlTier({ dir, durability: 'full', maxEntries: 1_000 }),
});
