import { SerializedTier, type SerializedStore } from '../support/serialized-tier.js';
import { runTierContract } from './contract.js';

// The test-support tier must itself keep the contract, or tests built on it prove nothing.
const stores = new Map<string, SerializedStore>();
runTierContract({
  name: 'serialized (test support)',
  durable: true,
  create: (dir) => {
    let store = stores.get(dir);
    if (store === undefined) {
      store = new Map();
      stores.set(dir, store);
    }
    return new SerializedTier(store);
  },
});
