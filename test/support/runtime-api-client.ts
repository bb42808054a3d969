/**
 * A Runtime API client of its own, in Node.js with nothing but fetch (not Skiff's bootstrap): the
 * loop a custom runtime runs. An event `{fail: true}` is reported to /error; any other is answered
 * with `{client, node, handler, event}`. Run as an image's entrypoint (`node client.mjs`).
 */
export const NODE_RUNTIME_API_CLIENT = `
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime';
for (;;) {
  const next = await fetch(api + '/invocation/next');
  const id = next.headers.get('lambda-runtime-aws-request-id');
  const event = await next.json();
  if (event.fail) {
    await fetch(api + '/invocation/' + id + '/error', {
      method: 'POST',
      headers: { 'lambda-runtime-function-error-type': 'Client.Failure' },
      body: JSON.stringify({ errorMessage: 'asked to fail', errorType: 'Client.Failure', stackTrace: ['client.mjs'] }),
    });
    continue;
  }
  const body = JSON.stringify({ client: 'node', node: process.version, handler: process.env._HANDLER, event });
  await fetch(api + '/invocation/' + id + '/response', { method: 'POST', body });
}
`;
