import t from 'tap';
import { isSkiffError } from '../../infra/errors.js';
import { formatReference, manifestReference, parseReference } from '../../infra/registry/reference.js';

const HEX = 'a'.repeat(64);
const DEFAULT = 'registry.skiff.local:5000';

t.test('a bare name is on the default host, with no tag', async (t) => {
  t.same(parseReference('python', DEFAULT), { host: DEFAULT, repository: 'python' });
  t.equal(manifestReference(parseReference('python', DEFAULT)), 'latest');
});

t.test('name:tag, nested paths and a digest', async (t) => {
  t.same(parseReference('team/app:v1.2_rc-3', DEFAULT), { host: DEFAULT, repository: 'team/app', tag: 'v1.2_rc-3' });
  t.same(parseReference(`app@sha256:${HEX}`, DEFAULT), { host: DEFAULT, repository: 'app', digest: `sha256:${HEX}` });
  t.same(parseReference(`app:v1@sha256:${HEX}`, DEFAULT), { host: DEFAULT, repository: 'app', tag: 'v1', digest: `sha256:${HEX}` });
  t.equal(manifestReference(parseReference(`app:v1@sha256:${HEX}`, DEFAULT)), `sha256:${HEX}`, 'the digest wins over the tag');
});

t.test('the first component is a host when it has a dot or a port, or is localhost', async (t) => {
  t.same(parseReference('localhost:5000/team/app:v1', DEFAULT), { host: 'localhost:5000', repository: 'team/app', tag: 'v1' });
  t.same(parseReference('localhost/app', DEFAULT), { host: 'localhost', repository: 'app' });
  t.same(parseReference('ghcr.io/org/app', DEFAULT), { host: 'ghcr.io', repository: 'org/app' });
  t.same(parseReference('127.0.0.1:5000/app', DEFAULT), { host: '127.0.0.1:5000', repository: 'app' });
  t.same(parseReference('[::1]:5000/app', DEFAULT), { host: '[::1]:5000', repository: 'app' });
  t.same(parseReference('org/app', DEFAULT), { host: DEFAULT, repository: 'org/app' }, 'no dot, no port: a path component');
  t.same(parseReference('registry-1:5000/app:1', DEFAULT), { host: 'registry-1:5000', repository: 'app', tag: '1' });
});

t.test('repository components are lowercased', async (t) => {
  t.same(parseReference('Example.COM/Team/My_App:V1', DEFAULT), { host: 'example.com', repository: 'team/my_app', tag: 'V1' });
});

t.test('separators follow the distribution grammar', async (t) => {
  for (const ok of ['a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'a0/b1/c2']) {
    t.equal(parseReference(ok, DEFAULT).repository, ok, `${ok} is valid`);
  }
});

t.test('format round-trips, always with the host', async (t) => {
  for (const ref of ['localhost:5000/team/app:v1', `ghcr.io/org/app:v1@sha256:${HEX}`, `ghcr.io/org/app@sha256:${HEX}`, 'ghcr.io/app']) {
    t.equal(formatReference(parseReference(ref, DEFAULT)), ref);
  }
  t.equal(formatReference(parseReference('app:v1', DEFAULT)), `${DEFAULT}/app:v1`);
});

t.test('bad references are InvalidRequest on the image field, naming the fault', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['app name', /whitespace/],
    ['app:', /tag "" is not valid/],
    ['app:-v1', /tag "-v1"/],
    [`app:${'x'.repeat(129)}`, /tag/],
    ['app@sha256:abc', /digest "sha256:abc"/],
    [`app@sha256:${'A'.repeat(64)}`, /digest/],
    [`app@md5:${HEX}`, /digest/],
    ['-app', /path component "-app"/],
    ['app-', /path component "app-"/],
    ['a..b', /path component "a..b"/],
    ['a___b', /path component/],
    ['team//app', /empty path component/],
    ['app/', /empty path component/],
    ['bad_host.com/app', /registry host "bad_host.com"/],
    ['host.com:port/app', /registry host/],
    [`@sha256:${HEX}`, /no repository/],
    [`${'a'.repeat(256)}`, /longer than 255/],
  ];
  for (const [ref, message] of cases) {
    try {
      parseReference(ref, DEFAULT);
      t.fail(`"${ref}" was accepted`);
    } catch (error) {
      t.ok(isSkiffError(error) && error.code === 'InvalidRequest' && error.field === 'image', `"${ref}" is InvalidRequest(image)`);
      t.match((error as Error).message, message, `"${ref}": ${(error as Error).message}`);
    }
  }
});
