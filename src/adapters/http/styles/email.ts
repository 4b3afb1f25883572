/** The rules of an email's page (`/emails/{id}`): its message, timeline and actions. */
export const EMAIL_STYLE = ``;
