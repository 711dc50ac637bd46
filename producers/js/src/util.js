// Small helpers shared by the tracker modules.

let U

/** Wrap an entry point so nothing ever throws into the host page. */
export const safe =
  (f) =>
  (...a) => {
    try {
      return f(...a)
    } catch (e) {}
  }

/**
 * localStorage as JSON: S(k) reads, S(k, v) writes. Storage can be missing or throw (private
 * mode, blocked cookies): then reads give undefined and writes do nothing. With S.off
 * (cookieless) nothing is read or stored at all.
 */
export const S = (k, v) => {
  try {
    let l = !S.off && localStorage
    return v === U ? JSON.parse(l.getItem(k)) : l.setItem(k, JSON.stringify(v))
  } catch (e) {}
}

/**
 * Random v4 UUID. crypto.randomUUID is missing outside secure contexts (plain http), so the
 * fallback fills a template: x = random hex digit, y = variant digit 8-b (the 4 is the version).
 */
export const uuid = (r, i = 0) =>
  crypto.randomUUID?.() ??
  ((r = crypto.getRandomValues(new Uint8Array(31))),
  'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => ((r[i++] & (c > 'x' ? 3 : 15)) | (c > 'x' ? 8 : 0)).toString(16)))

/** String cut to the contract's max length; empty/absent -> undefined (field omitted). */
export const cut = (s, n) => (s ? ('' + s).slice(0, n) : U)

/** Flat props the collector accepts: string/bool/finite number, <= 50 keys of <= 64 chars. */
export const props = (o) => {
  let r = {},
    n = 0
  for (let k in o) {
    let v = o[k]
    // typeof: string, symbol (JSON drops it) or boolean; not bigint (JSON.stringify throws)
    if (n < 50 && k.length < 65 && (/^s|^bo/.test(typeof v) || Number.isFinite(v)))
      (r[k] = v.slice?.(0, 512) ?? v), n++
  }
  return n ? r : U
}
