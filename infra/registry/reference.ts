/**
 * Image references as users write them (`python:3.11`, `registry.example.com:5000/team/app@sha256:...`),
 * parsed by the grammar of the distribution project's `reference` package: an optional registry
 * host, a repository path, an optional tag and an optional digest.
 */
import { invalidRequest } from '../errors.js';
import { isDigest } from '../images/oci/types.js';

export interface ImageReference {
  /** `host[:port]` of the registry. */
  host: string;
  /** Lowercase path components joined by '/', e.g. `team/app`. */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>`; when given, it is what the reference means and the tag is only a label. */
  digest?: string;
}

/** A repository path component: lowercase alphanumerics, joined by `.`, `_`, `__` or runs of `-`. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** A DNS name or IPv4 address, or a bracketed IPv6 address, then an optional port. */
const HOST =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const MAX_NAME_LENGTH = 255;

/**
 * Parses `[host/]repository[:tag][@digest]`. The first path component is a host when it has a
 * '.' or ':' or is `localhost` (Docker's rule); otherwise the image is on `defaultHost`.
 * Repository components are lowercased. Throws InvalidRequest (field `image`) naming the fault.
 */
export function parseReference(ref: string, defaultHost: string): ImageReference {
  const bad = (what: string) => invalidRequest('image', `image reference "${ref}": ${what}`);
  if (ref === '') throw bad('is empty');
  if (/\s/.test(ref)) throw bad('contains whitespace');

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad(`digest "${digest}" is not sha256: followed by 64 lowercase hex digits`);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag "${tag}" is not valid (up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')`);
  }

  const components = rest.split('/');
  const first = components[0] ?? '';
  let host = defaultHost;
  if (components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    components.shift();
    if (!HOST.test(host)) throw bad(`registry host "${host}" is not a valid host[:port]`);
  }
  if (components.length === 0 || components.every((c) => c === '')) throw bad('has no repository name');
  const repository = components.map((c) => c.toLowerCase()).join('/');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw bad(
        component === ''
          ? 'repository has an empty path component'
          : `repository path component "${component}" is not valid (letters, digits, separated by '.', '_', '__' or '-')`,
      );
    }
  }
  if (repository.length > MAX_NAME_LENGTH) throw bad(`repository name is longer than ${MAX_NAME_LENGTH} characters`);

  const parsed: ImageReference = { host: host.toLowerCase(), repository };
  if (tag !== undefined) parsed.tag = tag;
  if (digest !== undefined) parsed.digest = digest;
  return parsed;
}

/** `host/repository[:tag][@digest]`: always with the host, so it names the same image anywhere. */
export function formatReference(ref: ImageReference): string {
  return `${ref.host}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** What to ask the registry for: the digest when pinned, else the tag, else `latest`. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** True for a repository path the distribution grammar accepts (already lowercase). */
export function isRepository(value: string): boolean {
  return value.length > 0 && value.length <= MAX_NAME_LENGTH && value.split('/').every((c) => PATH_COMPONENT.test(c));
}

/** True for a tag the distribution grammar accepts. */
export function isTag(value: string): boolean {
  return TAG.test(value);
}
