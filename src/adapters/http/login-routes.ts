import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context } from 'koa';
import type { Operators } from '../../application/operators.js';
import type { Logger } from '../../application/ports/system.js';
import type { Guards } from './access.js';
import { OPERATOR_COOKIE, localPath, sessionToken } from './access.js';
import type { Csrf } from './csrf.js';
import { csrfRejectionMessages } from './csrf.js';
import { RETRY_AFTER_SECONDS } from './errors.js';
import type { LoginView } from './login-page.js';
import { loginPage } from './login-page.js';
import { urlencodedBody } from './form-routes.js';
import { problemPage } from './pages.js';

export interface LoginRoutesOptions {
  readonly operators: Pick<Operators, 'signIn' | 'signOut' | 'session'>;
  readonly guards: Guards;
  readonly csrf: Csrf;
  readonly log: Logger;
}

/** Sign-in forms are small: a name, a password, two tokens. */
const LOGIN_FORM_LIMIT = 16 * 1024;

const field = (body: unknown, name: string): string | undefined => {
  if (typeof body !== 'object' || body === null) return undefined;
  const value: unknown = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
};

function render(ctx: Context, status: number, view: LoginView): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = loginPage(view);
}

/**
 * The session cookie (OWASP Session Management Cheat Sheet, "Cookies"): HttpOnly, so no script
 * reads it; SameSite=Lax, so another site's form cannot post with it but a link still opens
 * signed in; Secure whenever the request came over https (behind a proxy only with
 * TRUST_PROXY, which lets Koa believe X-Forwarded-Proto); signed with SESSION_SECRET. No
 * expiry of its own: the server ends it after 12 h idle, the browser when it closes.
 */
const cookieOptions = (ctx: Context) =>
  ({
    httpOnly: true,
    sameSite: 'lax',
    secure: ctx.secure,
    path: '/',
    signed: true,
    overwrite: true,
  }) as const;

/** `GET /login`, `POST /login`, `POST /logout`: only where access is guarded. */
export function mountLoginRoutes(router: Router, options: LoginRoutesOptions): void {
  const { operators, guards, csrf, log } = options;
  const form = (ctx: Context, next: string, rest: Omit<LoginView, 'csrfToken' | 'next'> = {}) => ({
    csrfToken: csrf.issue(csrf.ensureSession(ctx)),
    next,
    ...rest,
  });

  router.get('/login', guards.open(), async function showLogin(ctx: Context): Promise<void> {
    const next = localPath(ctx.query.next);
    // Signed in already (a bookmark of /login): straight on.
    const session = await operators.session(sessionToken(ctx))();
    if (E.isRight(session) && session.right._tag === 'Some') {
      ctx.status = 303;
      ctx.redirect(next);
      return;
    }
    render(ctx, 200, form(ctx, next));
  });

  router.post(
    '/login',
    guards.open(),
    urlencodedBody(LOGIN_FORM_LIMIT),
    async function signIn(ctx: Context): Promise<void> {
      const body: unknown = ctx.request.body;
      const next = localPath(field(body, 'next'));
      const verdict = csrf.verify(csrf.session(ctx), field(body, '_csrf'));
      if (E.isLeft(verdict)) {
        log.warn({ reason: verdict.left }, 'Sign-in refused: CSRF check failed');
        render(
          ctx,
          403,
          form(ctx, next, {
            banner: `${csrfRejectionMessages[verdict.left]} Please sign in again.`,
          }),
        );
        return;
      }
      const username = field(body, 'username') ?? '';
      const password = field(body, 'password') ?? '';
      if (username === '' || password === '') {
        render(
          ctx,
          400,
          form(ctx, next, { username, credentialsError: 'Enter your user name and password.' }),
        );
        return;
      }
      const result = await operators.signIn(username, password, ctx.ip, sessionToken(ctx))();
      if (E.isRight(result)) {
        ctx.cookies.set(OPERATOR_COOKIE, result.right.token, cookieOptions(ctx));
        ctx.set('Cache-Control', 'no-store');
        ctx.status = 303;
        ctx.redirect(next);
        return;
      }
      const refusal = result.left;
      switch (refusal._tag) {
        case 'BadCredentials':
          render(
            ctx,
            401,
            form(ctx, next, {
              username,
              credentialsError: 'The user name or password is not right.',
            }),
          );
          return;
        case 'TooManyAttempts': {
          const seconds = Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
          ctx.set('Retry-After', String(seconds));
          render(
            ctx,
            429,
            form(ctx, next, {
              username,
              banner: `Too many failed sign-ins. Try again in ${seconds} seconds.`,
            }),
          );
          return;
        }
        case 'StoreUnavailable':
          ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
          render(
            ctx,
            503,
            form(ctx, next, {
              username,
              banner: 'Sign-in is not available right now. Try again in a few seconds.',
            }),
          );
          return;
      }
    },
  );

  router.post(
    '/logout',
    urlencodedBody(LOGIN_FORM_LIMIT),
    async function signOut(ctx: Context): Promise<void> {
      const verdict = csrf.verify(csrf.session(ctx), field(ctx.request.body, '_csrf'));
      if (E.isLeft(verdict)) {
        ctx.status = 403;
        ctx.type = 'html';
        ctx.body = problemPage({
          title: 'You are still signed in',
          message: `${csrfRejectionMessages[verdict.left]} Open the page again and press Sign out.`,
          link: { href: '/', label: 'Back to the form' },
        });
        return;
      }
      const ended = await operators.signOut(sessionToken(ctx))();
      if (E.isLeft(ended)) log.warn({ reason: ended.left.reason }, 'A session could not be ended');
      ctx.cookies.set(OPERATOR_COOKIE, null, cookieOptions(ctx));
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect('/login');
    },
  );
}
