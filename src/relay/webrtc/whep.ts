/**
 * WHEP (draft-ietf-wish-whep) and the pages, as routes of the relay's HTTP server:
 *
 *   POST   /whep/STREAM      an SDP offer (application/sdp) → 201, the answer, Location of the session
 *   DELETE /whep/STREAM/ID   the session's resource: the viewer leaves
 *   PATCH  (trickle ICE, ICE restart) is not offered: 405, as the draft allows; the relay's
 *          answer carries all its candidates
 *   GET    /watch/STREAM     the page that plays it (pages.ts)
 */
import type { HttpReply, HttpRoute } from '../http/server.ts';
import { watchPage } from '../http/pages.ts';
import type { BrowserViewers } from './viewers.ts';

export function whepRoutes(viewers: BrowserViewers): HttpRoute[] {
  return [
    {
      prefix: '/whep/',
      methods: ['POST', 'DELETE'],
      withBody: ['POST'],
      cors: true,
      handle: async ({ method, rest, headers, body, remote }): Promise<HttpReply> => {
        if (method === 'DELETE') {
          const cut = rest.lastIndexOf('/');
          const closed = cut > 0 && viewers.close(rest.slice(0, cut), rest.slice(cut + 1));
          return closed ? { status: 200 } : { status: 404, body: `no session ${rest}\n` };
        }
        if (!rest) return { status: 404, body: 'POST /whep/STREAM\n' };
        if (!/^application\/sdp\b/i.test(headers['content-type'] ?? '')) return { status: 415, body: 'a WHEP offer is application/sdp\n' };
        const r = await viewers.offer(rest, body.toString('utf8'), remote);
        if ('why' in r) return { status: r.status, body: `${r.why}\n` };
        return {
          status: 201,
          type: 'application/sdp',
          body: r.answer,
          headers: [['Location', `/whep/${encodeURIComponent(rest)}/${r.id}`]],
        };
      },
    },
    {
      prefix: '/watch/',
      methods: ['GET', 'HEAD'],
      handle: ({ rest }): HttpReply => {
        if (!rest) return { status: 404, body: 'GET /watch/STREAM; / lists the streams\n' };
        viewers.warm();
        return { status: 200, type: 'text/html; charset=utf-8', body: watchPage(rest) };
      },
    },
  ];
}
