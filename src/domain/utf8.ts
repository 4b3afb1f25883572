/**
 * How many octets `s` takes in UTF-8, counted without encoding it (the API checks every body and
 * header against octet limits on each request; an encoder would allocate a copy of each). A lone
 * surrogate counts as the three octets of U+FFFD, as `TextEncoder` writes it.
 */
export function utf8Length(s: string): number {
  let octets = 0;
  for (let i = 0; i < s.length; i += 1) {
    const unit = s.charCodeAt(i);
    if (unit < 0x80) octets += 1;
    else if (unit < 0x800) octets += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && isLowSurrogate(s.charCodeAt(i + 1))) {
      octets += 4;
      i += 1;
    } else octets += 3;
  }
  return octets;
}

const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;

/**
 * How many code points `s` holds, as `[...s].length` counts them (a surrogate pair is one, a lone
 * surrogate one too), without building that array: every subject and address of every email,
 * decoded again by each worker, is measured so.
 */
export function codePointCount(s: string): number {
  let count = 0;
  for (let i = 0; i < s.length; i += 1) {
    const unit = s.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && isLowSurrogate(s.charCodeAt(i + 1))) i += 1;
    count += 1;
  }
  return count;
}
