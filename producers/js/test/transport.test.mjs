// Batching (10 events or 1 s), sendBeacon -> fetch fallback, and the retry queue.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { browser, page } from '../testlib/fake-browser.mjs'

const names = (env) => env.events().map((e) => e.name ?? e.type)

test('events are batched for 1 s, then sent in one beacon to <api>/v1/events', async () => {
  const p = await page()
  p.cs('event', 'a')
  p.cs('event', 'b')
  assert.equal(p.sent.length, 0, 'nothing sent before the batch window closes')
  await p.advance(999)
  assert.equal(p.sent.length, 0)
  await p.advance(1)
  assert.equal(p.sent.length, 1)
  assert.equal(p.sent[0].via, 'beacon')
  assert.equal(p.sent[0].url, 'https://collector.example/v1/events')
  assert.deepEqual(names(p), ['pageview', 'a', 'b'])
})

test('the 10th event flushes the batch at once; the next batch starts its own 1 s window', async () => {
  const p = await page()
  for (let i = 1; i <= 9; i++) p.cs('event', 'e' + i) // + the pageview = 10
  assert.equal(p.sent.length, 1)
  assert.equal(p.sent[0].body.events.length, 10)
  p.cs('event', 'late')
  await p.advance(999)
  assert.equal(p.sent.length, 1)
  await p.advance(1)
  assert.equal(p.sent.length, 2)
  assert.deepEqual(p.sent[1].body.events.map((e) => e.name), ['late'])
})

test('body is a JSON string {"events": [...]} (text/plain, no preflight)', async () => {
  const p = await browser({ beacon: false })
  await p.load()
  await p.advance(1000)
  const { init } = p.sent[0]
  assert.equal(typeof init.body, 'string')
  assert.deepEqual(Object.keys(JSON.parse(init.body)), ['events'])
  assert.equal(init.method, 'POST')
  assert.equal(init.keepalive, true)
  assert.equal(init.headers['Content-Type'], 'text/plain')
})

test('fetch is used when sendBeacon is missing or refuses', async () => {
  const refused = await page({ beacon: () => false })
  await refused.advance(1000)
  assert.deepEqual(refused.sent.map((s) => s.via), ['fetch'])
  const missing = await page({ beacon: false })
  await missing.advance(1000)
  assert.deepEqual(missing.sent.map((s) => s.via), ['fetch'])
})

test('data-api overrides the collector; default is the origin of the script src', async () => {
  const p = await page({ attrs: { api: 'https://in.example/base/' } })
  await p.advance(1000)
  assert.equal(p.sent[0].url, 'https://in.example/base/v1/events')
  const q = await page({ src: 'http://localhost:8080/t.js?v=1' })
  await q.advance(1000)
  assert.equal(q.sent[0].url, 'http://localhost:8080/v1/events')
})

test('5xx is retried with exponential backoff until it succeeds', async () => {
  const codes = [503, 500, 502, 202]
  const p = await page({ beacon: false, status: (n) => codes[n] })
  await p.advance(1000) // first send -> 503
  assert.equal(p.sent.length, 1)
  await p.advance(999) // retry 1 after 1 s (random 0.5 -> factor 1)
  assert.equal(p.sent.length, 1)
  await p.advance(1)
  assert.equal(p.sent.length, 2) // -> 500
  await p.advance(1999) // retry 2 after 2 s
  assert.equal(p.sent.length, 2)
  await p.advance(1)
  assert.equal(p.sent.length, 3) // -> 502
  await p.advance(3999) // retry 3 after 4 s
  assert.equal(p.sent.length, 3)
  await p.advance(1)
  assert.equal(p.sent.length, 4) // -> 202
  const ids = p.sent.map((s) => s.body.events[0].event_id)
  assert.equal(new Set(ids).size, 1, 'the same event (same event_id) is retried')
  await p.advance(600_000)
  assert.equal(p.sent.length, 4, 'nothing more after success')
  assert.equal(p.win.localStorage.getItem('cs_q'), '[]')
})

test('backoff is jittered (x0.5 .. x1.5) and 429 and network errors are retried too', async () => {
  const lo = await page({ beacon: false, random: 0, status: (n) => (n ? 202 : 429) })
  await lo.advance(1000)
  await lo.advance(499)
  assert.equal(lo.sent.length, 1)
  await lo.advance(1)
  assert.equal(lo.sent.length, 2)
  const hi = await page({ beacon: false, random: 0.999, status: (n) => (n ? 202 : 'neterror') })
  await hi.advance(1000)
  await hi.advance(1498)
  assert.equal(hi.sent.length, 1)
  await hi.advance(2)
  assert.equal(hi.sent.length, 2)
})

test('400 (and other 4xx) is never retried', async () => {
  const p = await page({ beacon: false, status: () => 400 })
  p.cs('event', 'x')
  await p.advance(1000)
  assert.equal(p.sent.length, 1)
  await p.advance(600_000)
  assert.equal(p.sent.length, 1)
  assert.equal(p.win.localStorage.getItem('cs_q'), null)
})

test('the retry queue is bounded to the newest 100 events and retried in requests of <= 10', async () => {
  let down = true
  const p = await page({ beacon: false, status: () => (down ? 503 : 202) })
  for (let i = 0; i < 129; i++) p.cs('event', 'e' + i) // + pageview = 130 events, 13 requests
  await p.tick()
  const q = JSON.parse(p.win.localStorage.getItem('cs_q'))
  assert.equal(q.length, 100)
  assert.equal(q[0].name, 'e29', 'oldest dropped')
  assert.equal(q[99].name, 'e128')
  down = false
  const before = p.sent.length
  await p.advance(1000)
  const retried = p.sent.slice(before)
  assert.equal(retried.length, 10)
  assert.ok(retried.every((s) => s.body.events.length === 10))
  assert.equal(p.win.localStorage.getItem('cs_q'), '[]')
})

test('failed events survive a reload (localStorage) and are retried by the next page', async () => {
  const store = new Map()
  const a = await page({ store, beacon: false, status: () => 'neterror' })
  a.cs('event', 'lost-in-transit')
  await a.advance(1000)
  a.pagehide() // the engagement event fails too
  await a.tick()
  assert.deepEqual(JSON.parse(store.get('cs_q')).map((e) => e.name ?? e.type), ['pageview', 'lost-in-transit', 'engagement'])
  const b = await page({ store, beacon: false })
  await b.advance(1000)
  const got = b.events().map((e) => e.name ?? e.type)
  assert.deepEqual(got.sort(), ['engagement', 'lost-in-transit', 'pageview', 'pageview'])
  assert.equal(store.get('cs_q'), '[]')
})

test('retries use fetch (to learn the outcome) even where sendBeacon exists', async () => {
  const store = new Map([['cs_q', JSON.stringify([{ event_id: 'x', type: 'event', name: 'old' }])]])
  const p = await page({ store })
  await p.advance(1000)
  const retry = p.sent.find((s) => s.body.events[0].name === 'old')
  assert.equal(retry.via, 'fetch')
})

test('pagehide and visibility hidden flush the batch immediately', async () => {
  const p = await page()
  p.cs('event', 'x')
  p.pagehide()
  assert.equal(p.sent.length, 1)
  assert.deepEqual(names(p), ['pageview', 'x', 'engagement'])
  const q = await page()
  q.cs('event', 'y')
  q.hide()
  assert.equal(q.sent.length, 1)
})
