import { ADMIN_STYLE } from './admin.js';
import { BASE_STYLE } from './base.js';
import { EMAIL_STYLE } from './email.js';
import { LIST_STYLE } from './list.js';

/**
 * The one stylesheet, inline so that a page is a single request; the CSP allows it by its hash
 * (see security.ts). Each area of the dashboard keeps its rules in a file of its own, so that
 * they can change apart; the order here is the cascade's.
 */
export const STYLE = [BASE_STYLE, LIST_STYLE, EMAIL_STYLE, ADMIN_STYLE].join('\n');
