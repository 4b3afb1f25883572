import type Router from '@koa/router';

export interface OpsRoutesOptions {
  readonly readiness: () => boolean;
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
}

/** For orchestrators and scrapers: small, uncached, and never behind a session or token. */
export function mountOpsRoutes(router: Router, options: OpsRoutesOptions): void {
  const { readiness, metrics } = options;

  router.get('/healthz', async function healthz(ctx): Promise<void> {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async function readyz(ctx): Promise<void> {
    const ready = readiness();
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable' };
  });

  // Without a metrics source the route does not exist, so /metrics is an honest 404.
  if (metrics !== undefined) {
    router.get('/metrics', async function serveMetrics(ctx): Promise<void> {
      const { contentType, body } = await metrics();
      ctx.set('Cache-Control', 'no-store');
      // Set as given: Koa's `type` setter would rewrite the exposition format's parameters.
      ctx.set('Content-Type', contentType);
      ctx.body = body;
    });
  }
}
