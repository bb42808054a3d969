/**
 * The function a Lambda path names (Lambda's FunctionName): `name`, `name:qualifier`, a partial
 * ARN `account:function:name[:qualifier]`, or a full ARN
 * `arn:aws:lambda:region:account:function:name[:qualifier]`. Skiff's account is the tenant; the
 * qualifier is a version number or `$LATEST` (the current version). Skiff has no aliases.
 */
import { invalidRequest } from '../../infra/errors.js';
import type { LambdaFunctionRef } from '../../infra/contracts/lambda-api.js';
import { TENANT_NAME } from '../../infra/tenancy/quotas.js';
import { FUNCTION_NAME } from '../routes/functions.js';

/** Lambda's own bound on FunctionName (an ARN with its qualifier). */
export const FUNCTION_REF_MAX = 170;
const NAME = new RegExp(FUNCTION_NAME);
const ACCOUNT = new RegExp(TENANT_NAME);
const QUALIFIER = /^(\$LATEST|[1-9][0-9]{0,9})$/;

/** The function `raw` (the path parameter) and `query` (`?Qualifier=`) name; 400 when it names none. */
export function parseFunctionRef(raw: string, query: string | undefined): LambdaFunctionRef {
  if (raw.length > FUNCTION_REF_MAX) throw invalidRequest('FunctionName', `FunctionName is at most ${FUNCTION_REF_MAX} characters`);
  const parts = raw.split(':');
  let account: string | undefined;
  let rest: string[];
  if (parts[0] === 'arn') {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    if (parts.length < 7 || parts[1]?.startsWith('aws') !== true || parts[2] !== 'lambda' || parts[5] !== 'function') throw badRef(raw);
    account = parts[4];
    rest = parts.slice(6);
  } else if (parts[1] === 'function') {
    account = parts[0];
    rest = parts.slice(2);
  } else {
    rest = parts;
  }
  const [name, inName, ...extra] = rest;
  if (name === undefined || !NAME.test(name) || extra.length > 0 || (account !== undefined && !ACCOUNT.test(account))) throw badRef(raw);
  if (inName !== undefined && query !== undefined && inName !== query) {
    throw invalidRequest('Qualifier', `the qualifier in FunctionName (${inName}) and Qualifier (${query}) differ`);
  }
  const qualifier = inName ?? query;
  if (qualifier !== undefined && !QUALIFIER.test(qualifier)) {
    throw invalidRequest('Qualifier', `Qualifier must be a version number or $LATEST (Skiff has no aliases), not ${JSON.stringify(qualifier)}`);
  }
  return { name, account, qualifier };
}

/** The version a qualifier names: a number, or undefined for the current one. */
export function qualifiedVersion(ref: LambdaFunctionRef): number | undefined {
  return ref.qualifier === undefined || ref.qualifier === '$LATEST' ? undefined : Number(ref.qualifier);
}

function badRef(raw: string) {
  return invalidRequest(
    'FunctionName',
    `FunctionName must be a function name or its ARN (arn:aws:lambda:<region>:<tenant>:function:<name>), not ${JSON.stringify(raw)}`,
  );
}
