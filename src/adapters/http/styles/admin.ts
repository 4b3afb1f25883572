/** The rules of the operator pages: dead letters, suppressions, webhooks. */
export const ADMIN_STYLE = ``;
