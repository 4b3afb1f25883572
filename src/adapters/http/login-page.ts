import { layout, markup } from './html.js';

export interface LoginView {
  readonly csrfToken: string;
  /** Where to go after signing in: a path of ours (see `localPath`). */
  readonly next: string;
  readonly username?: string;
  /** Wrong name or password: shown next to the password field. */
  readonly credentialsError?: string;
  /** A problem that belongs to no field: too many attempts, the database away. */
  readonly banner?: string;
}

/**
 * The sign-in page: two labelled fields with the autocomplete tokens password managers look for
 * (WCAG 2.2 SC 1.3.5, 3.3.8), an error tied to its field with `aria-describedby`, and the
 * summary announced as an alert.
 */
export function loginPage({
  csrfToken,
  next,
  username,
  credentialsError,
  banner,
}: LoginView): string {
  const errorId = 'password-error';
  const problem = credentialsError ?? banner;
  const body = markup`<main>
<h1>Sign in</h1>
${
  problem !== undefined
    ? markup`<div class="banner" role="alert" id="problems"><p>${problem}</p></div>`
    : markup`<p>Sign in to send and follow emails.</p>`
}
<form method="post" action="/login">
<input type="hidden" name="_csrf" value="${csrfToken}">
<input type="hidden" name="next" value="${next}">
<div class="field">
<label for="username">User name</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${username ?? ''}">
</div>
<div class="field">
<label for="password">Password</label>
${credentialsError !== undefined ? markup`<p class="error" id="${errorId}">${credentialsError}</p>` : ''}
<input id="password" name="password" type="password" autocomplete="current-password" required${
    credentialsError !== undefined ? markup` aria-invalid="true" aria-describedby="${errorId}"` : ''
  }>
</div>
<button type="submit">Sign in</button>
</form>
</main>`;
  return layout({ title: 'Sign in', body });
}
