/** The rules of the list of emails (`/emails`). */
export const LIST_STYLE = ``;
