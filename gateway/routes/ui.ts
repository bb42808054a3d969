/**
 * The operator dashboard: GET /ui (the page), /ui/app.js and /ui/app.css. The page is public; it
 * asks for an API key and sends it with every data request (GET /v1/stats/..., /v1/workers, ...),
 * which need it as any management route does. A strict Content-Security-Policy allows only this
 * origin's script, style and fetches: no inline script or style, no other origin, no framing.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import { UI_FILES, UiAssets, type UiFile } from '../ui/assets.js';

export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function uiRoutes(app: FastifyInstance, assets: UiAssets = new UiAssets()): void {
  const send = async (reply: FastifyReply, file: UiFile): Promise<FastifyReply> => {
    let text: string;
    try {
      text = await assets.get(file);
    } catch (cause) {
      throw new SkiffError('Unavailable', 'the dashboard files are missing from this installation', { cause });
    }
    return reply
      .header('content-security-policy', UI_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-cache')
      .type(UI_FILES[file])
      .send(text);
  };
  const hidden = { schema: { hide: true } } as const;
  app.get('/ui', hidden, (_request, reply) => send(reply, 'index.html'));
  app.get('/ui/', hidden, (_request, reply) => send(reply, 'index.html'));
  app.get('/ui/app.js', hidden, (_request, reply) => send(reply, 'app.js'));
  app.get('/ui/app.css', hidden, (_request, reply) => send(reply, 'app.css'));
}
