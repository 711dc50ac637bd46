// A small hand-made fake browser for the tracker tests: window/document/navigator/location/
// history/localStorage/screen/crypto, sendBeacon and fetch that record what was sent, and a fake
// clock (setTimeout + Date.now + Math.random) that the test advances by hand.
// The tracker runs inside a `vm` context whose global object is the fake window.
// (Lives outside test/ because `node --test test/` runs every .mjs file under test/.)

import vm from 'node:vm'
import { webcrypto } from 'node:crypto'
import { bundle } from '../build.mjs'

let built
/** dist/t.js exactly as build.mjs makes it (minified IIFE), built in memory once per process. */
export const trackerCode = async () => (built ??= await bundle('iife'))

export const T0 = 1_700_000_000_000

/** A localStorage backed by a Map (pass the same Map to a new browser to simulate a reload). */
export const storage = (map = new Map()) => ({
  map,
  getItem: (k) => (map.has(k) ? map.get(k) : null),
  setItem: (k, v) => void map.set(k, String(v)),
  removeItem: (k) => void map.delete(k),
})

/**
 * Options: url, referrer, title, attrs (data-* of the script tag), store (Map) or
 * storage: 'throws' | 'throws-on-use', beacon: false (missing) | fn(url, body) -> bool,
 * status: fn(n) -> HTTP status or 'neterror' for the n-th fetch, dnt, hidden, secure (randomUUID),
 * random (Math.random value), queue (array of command argument lists queued before load).
 */
export function browser(opt = {}) {
  const listeners = { window: {}, document: {} }
  const timers = new Map()
  let seq = 0
  const sent = [] // {via, url, body, init}
  let fetches = 0

  const clock = { now: T0 }
  const loc = { href: new URL(opt.url ?? 'https://shop.example/home').href }
  for (const k of ['host', 'hostname', 'pathname', 'protocol', 'origin', 'hash', 'search'])
    Object.defineProperty(loc, k, { get: () => new URL(loc.href)[k], enumerable: true })

  const on = (who) => (type, fn) => (listeners[who][type] ??= []).push(fn)
  const fire = (who, type, ev = {}) => (listeners[who][type] ?? []).forEach((fn) => fn({ type, ...ev }))

  const dataset = { site: 'shop', ...(opt.attrs ?? {}) }
  const document = {
    title: opt.title ?? 'Home',
    referrer: opt.referrer ?? '',
    hidden: !!opt.hidden,
    documentElement: { scrollHeight: opt.scrollHeight ?? 2000 },
    currentScript: { src: opt.src ?? 'https://collector.example/t.js', dataset },
    addEventListener: on('document'),
  }

  const beacon = opt.beacon === undefined ? () => true : opt.beacon
  const navigator = { language: 'en-GB', doNotTrack: opt.dnt ?? null }
  if (beacon)
    navigator.sendBeacon = (url, body) => {
      if (typeof body !== 'string') throw new Error('body must be a string')
      const ok = beacon(url, body)
      if (ok) sent.push({ via: 'beacon', url, body: JSON.parse(body) })
      return ok
    }

  const status = opt.status ?? (() => 202)
  const fetch = (url, init) => {
    const s = status(fetches++)
    sent.push({ via: 'fetch', url, body: JSON.parse(init.body), init, status: s })
    return s === 'neterror'
      ? Promise.reject(new TypeError('Failed to fetch'))
      : Promise.resolve({ status: s, ok: s < 300 })
  }

  const history = {
    pushState: (s, t, url) => void (url != null && (loc.href = new URL(url, loc.href).href)),
    replaceState: (s, t, url) => void (url != null && (loc.href = new URL(url, loc.href).href)),
  }

  const crypto = opt.secure === false
    ? { getRandomValues: (a) => webcrypto.getRandomValues(a) }
    : { randomUUID: () => webcrypto.randomUUID(), getRandomValues: (a) => webcrypto.getRandomValues(a) }

  const win = {
    document,
    navigator,
    location: loc,
    history,
    screen: { width: 1920, height: 1080 },
    crypto,
    fetch,
    scrollY: 0,
    innerHeight: 1000,
    URL,
    addEventListener: on('window'),
    setTimeout: (fn, ms = 0) => (timers.set(++seq, { at: clock.now + ms, fn }), seq),
    clearTimeout: (id) => void timers.delete(id),
  }
  win.window = win
  win.self = win
  if (opt.storage === 'throws')
    Object.defineProperty(win, 'localStorage', {
      get() {
        throw new Error('SecurityError: access to localStorage is denied')
      },
    })
  else if (opt.storage === 'throws-on-use') {
    const boom = () => {
      throw new Error('QuotaExceededError')
    }
    win.localStorage = { getItem: boom, setItem: boom, removeItem: boom }
  } else win.localStorage = storage(opt.store)
  if (opt.queue) {
    // the page's snippet: window.clickstream = window.clickstream || function(){(q...).push(arguments)}
    const f = function () {
      ;(f.q = f.q || []).push(arguments)
    }
    win.clickstream = f
    for (const args of opt.queue) f(...args)
  }

  const ctx = vm.createContext(win)
  vm.runInContext('Date', ctx).now = () => clock.now
  vm.runInContext('Math', ctx).random = () => opt.random ?? 0.5

  const tick = () => new Promise((r) => setImmediate(r))

  const env = {
    win,
    document,
    navigator,
    location: loc,
    history: win.history, // the tracker wraps win.history's methods in place
    sent,
    clock,
    timers,
    /** Run t.js in the page (as the <script defer> would). */
    async load() {
      vm.runInContext(await trackerCode(), ctx, { filename: 't.js' })
      await tick()
      return env
    },
    /** Advance the fake clock, firing due timers in order; lets promise callbacks run between. */
    async advance(ms) {
      const end = clock.now + ms
      for (;;) {
        let next
        for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t]
        if (!next) break
        timers.delete(next[0])
        clock.now = next[1].at
        next[1].fn()
        await tick()
      }
      clock.now = end
      await tick()
    },
    tick,
    /** Every event sent so far, in order. */
    events: () => sent.flatMap((s) => s.body.events),
    /** window.clickstream(...) as the page would call it. */
    cs: (...a) => win.clickstream(...a),
    navigate(url, how = 'pushState') {
      win.history[how]({}, '', url)
    },
    /** Back/forward: the browser changes the URL, then fires popstate. */
    pop(url) {
      loc.href = new URL(url, loc.href).href
      fire('window', 'popstate')
    },
    /** A fragment navigation: browsers fire popstate, then hashchange (some only hashchange). */
    setHash(hash, { popstate = true } = {}) {
      loc.href = loc.href.split('#')[0] + hash
      if (popstate) fire('window', 'popstate')
      fire('window', 'hashchange')
    },
    /** A click on an element inside <a href=...> (href null: not inside a link). */
    click(href, { type = 'click', button = 0 } = {}) {
      const a = href == null ? null : anchor(href)
      fire('document', type, { button, target: { closest: (sel) => (sel === 'a[href]' ? a : null) } })
    },
    scrollTo(y) {
      win.scrollY = y
      fire('window', 'scroll')
    },
    hide() {
      document.hidden = true
      fire('document', 'visibilitychange')
    },
    show() {
      document.hidden = false
      fire('document', 'visibilitychange')
    },
    pagehide: () => fire('window', 'pagehide'),
  }
  const anchor = (href) => {
    const u = new URL(href, loc.href)
    return { href: u.href, protocol: u.protocol, host: u.host, pathname: u.pathname }
  }
  return env
}

/** Load a fresh page with the tracker. */
export const page = (opt) => browser(opt).load()

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const FIELDS = new Set(['event_id', 'type', 'site_id', 'anonymous_id', 'user_id', 'name', 'ts', 'url',
  'referrer', 'title', 'revenue', 'props', 'screen', 'lang'])

/** The contract v1 rules a JS test can check (schemas/event.py is the reference). */
export function contractErrors(e) {
  const err = []
  for (const k of Object.keys(e)) {
    if (!FIELDS.has(k)) err.push(`unknown field ${k}`)
    if (e[k] === null || e[k] === undefined) err.push(`${k} is null`)
  }
  if (!UUID.test(e.event_id)) err.push('event_id is not a v4 UUID')
  if (!['pageview', 'event', 'identify', 'conversion'].includes(e.type)) err.push('bad type')
  if (typeof e.site_id !== 'string') err.push('site_id')
  if (typeof e.ts !== 'number') err.push('ts must be a number')
  if (e.type === 'pageview' && !e.url) err.push('pageview needs url')
  if ((e.type === 'event' || e.type === 'conversion') && !e.name) err.push('needs name')
  if (e.type === 'identify' && !e.user_id) err.push('identify needs user_id')
  if (e.props && Object.keys(e.props).length > 50) err.push('too many props')
  for (const v of Object.values(e.props ?? {}))
    if (!['string', 'number', 'boolean'].includes(typeof v)) err.push('prop value type')
  if (e.revenue && !(typeof e.revenue.amount === 'number' && /^[A-Z]{3}$/.test(e.revenue.currency)))
    err.push('revenue')
  if (e.screen && !/^\d{1,5}x\d{1,5}$/.test(e.screen)) err.push('screen')
  return err
}
