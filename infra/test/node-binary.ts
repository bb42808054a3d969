/**
 * `node dist/infra/test/node-binary.js nodejs22`: prints the path of the Node.js binary that runtime
 * is built from (fetched and checked into SKIFF_NODE_DIR first if need be; infra/images/node-dist.ts),
 * so the test script can run the unit suite under that Node.js too. Progress goes to stderr.
 */
import { loadConfig } from '../config.js';
import { nodeBinaryFor } from '../images/nodejs-rootfs.js';
import { NODE_RELEASES } from '../images/node-releases.js';

const runtime = process.argv[2] ?? '';
const release = NODE_RELEASES.find((r) => r.runtime === runtime);
if (release === undefined) {
  console.error(`usage: node-binary.js <${NODE_RELEASES.map((r) => r.runtime).join('|')}>`);
  process.exit(2);
}
try {
  console.log(await nodeBinaryFor(release, loadConfig().nodeDir, (message) => console.error(`skiff: ${message}`)));
} catch (error) {
  console.error(`skiff: no Node.js for ${runtime}: ${(error as Error).message}`);
  process.exit(1);
}
