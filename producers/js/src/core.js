// clickstream browser tracker: shared core of the IIFE (dist/t.js) and ESM (dist/t.esm.js) builds.
// Sends event contract v1 (schemas/event.py). Size matters (budget: 2000 B gzip for t.js), so
// internal names are short, there are no classes, and esbuild mangles everything not exported.
// Absent optional fields are left `undefined`: JSON.stringify drops them, so we never send nulls.

import { S, uuid, cut, props, safe } from './util.js'
import { setup, push, flush, drop } from './send.js'

let U, o, dl, ck, hs
// on: sending allowed (consent and DNT); ok: allowed at all (site given, no DNT)
let on, ok, aid, uid
// the current page: `last` is its key (URL, without hash unless data-hash), `cur` its full URL
let last, cur
// engagement of the current page: acc = visible ms so far, t0 = start of the visible stretch
// (0 while hidden), mx = max scroll %, done = already sent for this page
let acc, t0, mx, done

const now = () => Date.now()

// Stored state, localStorage 'cs': {a: visitor id, u: user id} or {o: 1} after consent(false).
const save = () => S('cs', on ? { a: aid, u: uid } : { o: 1 })

// Ids: a stored random visitor id unless cookieless; the user id set by identify.
const ids = (s = S('cs') || {}) => {
  aid = (!ck && (aid || s.a || uuid())) || U
  uid = uid || s.u
  save()
}

const ev = (type, name, p, x) => {
  if (on)
    push({
      event_id: uuid(),
      type,
      site_id: o.site,
      anonymous_id: aid,
      user_id: uid,
      name: cut(name, 128),
      ts: now(),
      url: cut(location.href, 2048),
      title: cut(document.title, 512),
      props: props(p),
      screen: screen.width + 'x' + screen.height,
      lang: navigator.language,
      ...x,
    })
}

// Max scroll depth in % of the document height.
const scroll = () => {
  let h = document.documentElement.scrollHeight
  h && (mx = Math.max(mx, Math.min(100, Math.round((window.scrollY + window.innerHeight) / h * 100))))
}

// Visible time: add the running stretch and start a new one if still visible.
const tick = () => {
  t0 && (acc += now() - t0)
  t0 = !document.hidden && now()
}

const engage = () => {
  if (!done && last) {
    tick()
    scroll()
    done = 1
    ev('event', 'engagement', { engaged_ms: acc, scroll_pct: mx }, { url: cur })
  }
}

// Page hidden or left: report engagement once, then send everything now (sendBeacon survives unload).
const leave = () => {
  engage()
  flush()
}

// Pageview if the page's key changed (so replaceState with the same URL adds nothing).
const pv = () => {
  let h = location.href,
    k = hs ? h : h.split('#')[0]
  if (on && k != last) {
    engage()
    acc = mx = done = 0
    t0 = !document.hidden && now()
    ev('pageview', U, U, { referrer: cur || cut(document.referrer, 2048) })
    last = k
    cur = cut(h, 2048)
  }
}

// Delegated click/auxclick: outbound links and file downloads. Right clicks (button 2) are skipped.
const click = (e) => {
  let a = e.button < 2 && e.target.closest?.('a[href]'),
    u = a && a.href
  if (u && /^http/.test(a.protocol))
    dl.test(a.pathname)
      ? ev('event', 'download', { url: u })
      : a.host != location.host && ev('event', 'outbound', { url: u })
}

/** The public command: clickstream('event'|'conversion'|'identify'|'consent'|'pageview', ...). */
export const clickstream = safe((c, a, b) => {
  if (!ok);
  else if (c == 'event') ev(c, a, b)
  else if (c == 'pageview') pv()
  else if (c == 'conversion') {
    let { revenue: r, currency: m, ...p } = b || {}
    // amount: a JSON number with at most 6 decimals (0.1 + 0.2 would be rejected unrounded)
    ev(c, a, p, {
      revenue: r != U && isFinite((r = +r)) ? { amount: Math.round(r * 1e6) / 1e6, currency: ('' + (m || 'EUR')).toUpperCase() } : U,
    })
  } else if (c == 'identify') {
    uid = cut(a, 256)
    save()
    uid && ev(c, U, b)
  } else if (c == 'consent') {
    // off: forget the queue and ids, remember the opt-out; on again: new visitor id, pageview
    a ? on || (drop([]), (on = 1), ids(), pv()) : (drop((on = 0)), (aid = uid = last = U), save())
  }
})

/**
 * Start tracking. Options: site (required), api (collector base URL; '' = same origin),
 * cookieless, hash, downloads ("pdf,zip"), dnt (honour Do Not Track, default true).
 * `q` is an array of argument lists queued before load; run before the first pageview so a
 * queued consent(false) or identify applies to it. `base`: default api (IIFE: its src origin).
 */
export const init = safe((opts, q, base) => {
  o = { ...opts }
  // options may be booleans (ESM) or data-* strings (IIFE: present = on, "false" = off)
  let b = (k) => '' + (o[k] ?? !1) != 'false'
  dl = RegExp(
    '\\.(' + (o.downloads || 'pdf,zip,dmg,exe,docx,xlsx,pptx,csv,mp3,mp4').replace(/\W+/g, '|') + ')$',
    'i',
  )
  S.off = ck = b('cookieless')
  hs = b('hash')
  ok = on = !!o.site && !(('' + o.dnt != 'false') && /1|yes/.test(navigator.doNotTrack || window.doNotTrack))
  if (!ok) return
  S('cs')?.o ? (on = 0) : ids()
  setup((o.api ?? base ?? '').replace(/\/+$/, '') + '/v1/events')
  q?.map((a) => clickstream(...a))
  pv()
  let H = history,
    p = safe(pv),
    li = (t, e, f) => t.addEventListener(e, safe(f))
  // SPA routers navigate with pushState/replaceState, which fire no event: wrap them
  for (let m of ['pushState', 'replaceState']) {
    let f = H[m]
    H[m] = (...a) => ((a = f.apply(H, a)), p(), a)
  }
  li(window, 'popstate', pv)
  hs && li(window, 'hashchange', pv)
  li(document, 'click', click)
  li(document, 'auxclick', click)
  li(window, 'scroll', scroll)
  li(window, 'pagehide', leave)
  li(document, 'visibilitychange', () => (!document.hidden ? tick() : leave()))
})
