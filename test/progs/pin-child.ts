// Run by pinning.test.ts in a separate process: loads pin_v1.o with a pin
// root, writes one value into the pinned map, and exits.
import { loadCollectionSpec } from '../../loader/index.js';

const [pinRoot, object] = process.argv.slice(2);
const coll = await loadCollectionSpec(object).load({ pinRoot });
const key = Buffer.alloc(4);
key.writeUInt32LE(1);
const value = Buffer.alloc(8);
value.writeBigUInt64LE(0x1234_5678_9abcn);
coll.maps.shared_state.update(key, value);
coll.close();
process.stdout.write('pinned\n');
