// Transport: batching, sendBeacon/fetch, and the bounded retry queue in localStorage ('cs_q').

import { S, safe } from './util.js'

let B = [], // the batch being filled
  R = [], // failed events waiting for a retry; 0 while consent is withdrawn
  T, // batch timer
  RT, // retry timer
  n = 0, // failed attempts in a row (the backoff exponent)
  url

/** Set the endpoint and pick up events a previous page load failed to send. */
export const setup = (u) => {
  url = u
  R = S('cs_q') || []
  R[0] && later()
}

/** Queue one event: sent after 1 s or at 10 events, whichever comes first. */
export const push = (e) => {
  B.push(e)
  B[9] ? flush() : T || (T = setTimeout(safe(flush), 1e3))
}

export const flush = () => {
  clearTimeout(T)
  T = 0
  B[0] && post(B.splice(0), 1)
}

/** Forget everything unsent. r = 0: consent withdrawn, late failures are dropped too; r = []: resume. */
export const drop = (r) => {
  clearTimeout(T)
  clearTimeout(RT)
  T = RT = 0
  B = []
  S('cs_q', (R = r) || [])
}

// A string body goes as text/plain: a "simple" request, so no CORS preflight. sendBeacon first
// (survives unload, but cannot report failure); fetch when it is missing or refuses. Retries use
// fetch only (beacon unset) so that their outcome is known.
const post = (evs, beacon, body = JSON.stringify({ events: evs })) =>
  (beacon && navigator.sendBeacon?.(url, body)) ||
  fetch(url, { method: 'POST', body, keepalive: !0, headers: { 'Content-Type': 'text/plain' } }).then(
    // 5xx and 429 are worth retrying; any other answer (2xx, or 4xx: bad events) is final
    (r) => (r.status > 499 || r.status == 429 ? fail(evs) : (n = 0)),
    () => fail(evs),
  )

// Keep at most the newest 100 failed events, in memory and in localStorage (for the next page).
const fail = (evs) => R && (S('cs_q', (R = R.concat(evs).slice(-100))), later())

// Jittered exponential backoff: 1 s, 2 s, 4 s ... capped at 64 s, each times 0.5-1.5.
const later = () => RT || (RT = setTimeout(safe(retry), 1e3 * 2 ** Math.min(n++, 6) * (0.5 + Math.random())))

const retry = () => {
  let x = R.splice(0)
  RT = 0
  S('cs_q', R)
  // chunks of 10 keep each request far below the 64 KB keepalive body limit
  while (x[0]) post(x.splice(0, 10))
}
