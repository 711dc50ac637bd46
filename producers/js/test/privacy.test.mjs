// Consent, Do Not Track, cookieless mode, and robustness (no storage, never throwing).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { browser, page } from '../testlib/fake-browser.mjs'

test("consent(false) stops sending, drops the queues and clears stored ids; consent(true) resumes", async () => {
  const store = new Map()
  const p = await page({ store, beacon: false, status: (n) => (n === 0 ? 503 : 202) })
  p.cs('identify', 'u1')
  await p.advance(1000) // first request fails -> retry queue
  await p.tick()
  assert.equal(JSON.parse(store.get('cs_q')).length, 2)
  p.cs('event', 'pending') // in the batch
  p.cs('consent', false)
  assert.deepEqual(JSON.parse(store.get('cs')), { o: 1 }, 'ids cleared, opt-out remembered')
  assert.equal(store.get('cs_q'), '[]')
  const sentBefore = p.sent.length
  p.cs('event', 'while-off')
  p.navigate('/elsewhere')
  p.click('https://partner.example/')
  p.pagehide()
  await p.advance(600_000)
  assert.equal(p.sent.length, sentBefore, 'nothing at all is sent, not even retries')

  p.cs('consent', true)
  p.cs('event', 'back')
  await p.advance(1000)
  const after = p.events().slice(-2)
  assert.deepEqual(after.map((e) => e.name ?? e.type), ['pageview', 'back'], 'resumes with a pageview of the current page')
  const old = p.sent[0].body.events[0].anonymous_id
  assert.ok(after[0].anonymous_id && after[0].anonymous_id !== old, 'a new visitor id')
  assert.equal(after[0].user_id, undefined, 'the user id was forgotten')
  assert.equal(JSON.parse(store.get('cs')).a, after[0].anonymous_id)
})

test('a request in flight when consent is withdrawn is not retried after it fails', async () => {
  const store = new Map()
  const p = await page({ store, beacon: false, status: () => 503 })
  for (let i = 0; i < 9; i++) p.cs('event', 'e') // 10th event: sent now, answer still pending
  assert.equal(p.sent.length, 1)
  p.cs('consent', false)
  await p.advance(600_000)
  assert.equal(p.sent.length, 1)
  assert.equal(store.get('cs_q'), '[]')
})

test('an opt-out is remembered by the next page load', async () => {
  const store = new Map()
  const a = await page({ store })
  a.cs('consent', false)
  const b = await page({ store })
  b.cs('event', 'x')
  b.pagehide()
  await b.advance(5000)
  assert.equal(b.sent.length, 0)
})

test('a consent(false) queued before load prevents even the first pageview', async () => {
  const p = await browser({ queue: [['consent', false]] }).load()
  await p.advance(5000)
  p.pagehide()
  assert.equal(p.sent.length, 0)
})

test('consent(true) when already on changes nothing (no lost batch, same id)', async () => {
  const p = await page()
  p.cs('event', 'a')
  p.cs('consent', true)
  await p.advance(1000)
  const ev = p.events()
  assert.deepEqual(ev.map((e) => e.name ?? e.type), ['pageview', 'a'])
  assert.equal(ev[0].anonymous_id, ev[1].anonymous_id)
})

test('Do Not Track is honoured by default: nothing sent, nothing stored', async () => {
  for (const dnt of ['1', 'yes']) {
    const store = new Map()
    const p = await page({ dnt, store })
    p.cs('event', 'x')
    p.cs('identify', 'u')
    p.cs('consent', true)
    p.click('https://partner.example/')
    p.pagehide()
    await p.advance(5000)
    assert.equal(p.sent.length, 0, `DNT=${dnt}`)
    assert.equal(store.size, 0)
  }
  const off = await page({ dnt: '0' })
  await off.advance(1000)
  assert.equal(off.sent.length, 1)
})

test('data-dnt="false" ignores Do Not Track', async () => {
  const p = await page({ dnt: '1', attrs: { dnt: 'false' } })
  await p.advance(1000)
  assert.equal(p.sent.length, 1)
})

test('data-cookieless: no anonymous_id and nothing stored (user_id kept in memory only)', async () => {
  const store = new Map()
  const p = await page({ store, attrs: { cookieless: '' }, beacon: false, status: (n) => (n ? 202 : 503) })
  p.cs('identify', 'u7')
  p.cs('event', 'x')
  await p.advance(1000)
  await p.advance(2000) // the failed batch is retried from memory
  const ev = p.events()
  assert.ok(ev.length >= 6)
  assert.ok(ev.every((e) => !('anonymous_id' in e)))
  assert.equal(ev.at(-1).user_id, 'u7')
  p.cs('consent', false)
  p.cs('consent', true)
  assert.equal(store.size, 0)
})

test('missing data-site: inert, never throws', async () => {
  const p = await page({ attrs: { site: undefined } })
  p.cs('event', 'x')
  await p.advance(5000)
  assert.equal(p.sent.length, 0)
})

for (const storage of ['throws', 'throws-on-use'])
  test(`works when localStorage ${storage} (private mode)`, async () => {
    const p = await page({ storage, beacon: false, status: (n) => (n ? 202 : 500) })
    p.cs('identify', 'u')
    p.cs('event', 'x')
    p.cs('consent', false)
    p.cs('consent', true)
    p.cs('event', 'y')
    await p.advance(1000)
    await p.advance(2000)
    const ev = p.events()
    assert.ok(ev.some((e) => e.name === 'y'))
    assert.ok(ev.every((e) => e.anonymous_id), 'an in-memory visitor id')
  })

test('never throws into the page: bad commands, broken APIs, broken storage content', async () => {
  const store = new Map([['cs', '{not json'], ['cs_q', 'nope']])
  const p = await page({ store, beacon: () => { throw new Error('beacon blew up') } })
  const bad = [
    [],
    ['nope'],
    ['event'],
    ['event', { toString: () => { throw new Error('x') } }],
    ['conversion', 'c', { revenue: 'abc', currency: 42 }],
    ['conversion', 'c', null],
    ['identify', { toString: () => { throw new Error('x') } }],
    ['consent'],
  ]
  for (const args of bad) assert.doesNotThrow(() => p.cs(...args), JSON.stringify(args))
  p.win.fetch = () => { throw new Error('fetch blew up') }
  await assert.doesNotReject(p.advance(5000))
  assert.doesNotThrow(() => p.pagehide())
  p.document.documentElement = null // scroll handler breaks
  assert.doesNotThrow(() => p.scrollTo(10))
  assert.doesNotThrow(() => p.history.pushState({}, '', '/next'))
  assert.equal(p.location.pathname, '/next')
})

test('loading without document.currentScript does not throw', async () => {
  const p = browser()
  p.document.currentScript = null
  await assert.doesNotReject(p.load())
  assert.doesNotThrow(() => p.cs('event', 'x'))
})
