import type Router from '@koa/router';
import type { Context } from 'koa';
import { FAVICON_PATH, LOCAL_TIME_SCRIPT_PATH } from './html.js';

/**
 * The favicon: an envelope in the pages' accent colour, 32 × 32 user units. Served as a file
 * (the CSP's `img-src 'self'`), so that no page logs a 404 for it.
 */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="6" fill="#1f4fc2"/>
<rect x="6" y="9" width="20" height="14" rx="1.5" fill="#ffffff"/>
<path d="M6.5 10l9.5 7.5 9.5-7.5" fill="none" stroke="#1f4fc2" stroke-width="2"/>
</svg>
`;

/**
 * Shows every `<time datetime>` with a full timestamp in the reader's own time zone and locale
 * ("2 Jan 2030, 04:04:11 CET"), and keeps the server's UTC text as the element's `title`, shown
 * on hover. Without JavaScript the UTC text stays. Elements added later (a live update swapping a
 * section in) are localised too, through a MutationObserver; `data-utc` marks those done.
 */
export const LOCAL_TIME_SCRIPT = `'use strict';
(() => {
  const FULL = /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d(:\\d\\d(\\.\\d+)?)?(Z|[+-]\\d\\d:\\d\\d)$/;
  let format;
  try {
    format = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });
  } catch (e) {
    return;
  }
  const localise = (root) => {
    const found = root.querySelectorAll ? [...root.querySelectorAll('time[datetime]')] : [];
    if (root.matches && root.matches('time[datetime]')) found.push(root);
    for (const el of found) {
      if (el.dataset.utc !== undefined) continue;
      const iso = el.getAttribute('datetime') || '';
      const date = new Date(iso);
      if (!FULL.test(iso) || Number.isNaN(date.getTime())) continue;
      const utc = el.textContent;
      el.dataset.utc = utc;
      el.title = utc;
      el.textContent = format.format(date);
    }
  };
  localise(document);
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) if (node.nodeType === 1) localise(node);
    }
  }).observe(document.body, { childList: true, subtree: true });
})();
`;

/** Long enough to spare a request per page, short enough that a new release shows within hours. */
const STATIC_CACHE = 'public, max-age=3600';

/**
 * What every page's `<head>` asks for: the favicon (`/favicon.svg`, and `/favicon.ico` for the
 * browsers that ask for that path by themselves) and the local-time script. Open to everyone:
 * the sign-in page needs them before anyone signed in, and they hold nothing private.
 */
export function mountLayoutRoutes(router: Router): void {
  const favicon = async (ctx: Context): Promise<void> => {
    ctx.type = 'image/svg+xml';
    ctx.set('Cache-Control', STATIC_CACHE);
    ctx.body = FAVICON_SVG;
  };
  router.get(FAVICON_PATH, async function serveFavicon(ctx): Promise<void> {
    await favicon(ctx);
  });
  router.get('/favicon.ico', async function serveFaviconIco(ctx): Promise<void> {
    await favicon(ctx);
  });
  router.get(LOCAL_TIME_SCRIPT_PATH, async function serveLocalTimeScript(ctx): Promise<void> {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.set('Cache-Control', STATIC_CACHE);
    ctx.body = LOCAL_TIME_SCRIPT;
  });
}
