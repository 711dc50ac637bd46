// Outbound/download clicks, engagement, and the clickstream(...) commands.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { browser, page, contractErrors } from '../testlib/fake-browser.mjs'

const named = (p, name) => p.events().filter((e) => e.name === name)

test('outbound link clicks: event "outbound" with props.url; same-host links are not', async () => {
  const p = await page({ url: 'https://shop.example/' })
  p.click('https://partner.example/offer?id=1')
  p.click('https://shop.example/about')
  p.click('/contact')
  p.click('mailto:hi@shop.example') // not http(s)
  p.click(null) // click outside any link
  await p.advance(1000)
  const out = named(p, 'outbound')
  assert.equal(out.length, 1)
  assert.deepEqual(out[0].props, { url: 'https://partner.example/offer?id=1' })
  assert.equal(out[0].type, 'event')
  assert.deepEqual(contractErrors(out[0]), [])
})

test('middle click (auxclick button 1) counts; right click (button 2) does not', async () => {
  const p = await page()
  p.click('https://partner.example/a', { type: 'auxclick', button: 1 })
  p.click('https://partner.example/b', { type: 'auxclick', button: 2 })
  await p.advance(1000)
  assert.deepEqual(named(p, 'outbound').map((e) => e.props.url), ['https://partner.example/a'])
})

test('downloads by extension (default list, case-insensitive, any host)', async () => {
  const p = await page()
  p.click('/files/report.PDF')
  p.click('https://cdn.example/app.dmg?v=2')
  p.click('/blog/post.html')
  p.click('/pdf') // no extension
  await p.advance(1000)
  assert.deepEqual(named(p, 'download').map((e) => e.props.url), [
    'https://shop.example/files/report.PDF',
    'https://cdn.example/app.dmg?v=2',
  ])
  assert.equal(named(p, 'outbound').length, 0, 'an off-site download is a download, not also outbound')
})

test('data-downloads replaces the extension list', async () => {
  const p = await page({ attrs: { downloads: 'epub, mobi' } })
  p.click('/book.epub')
  p.click('/book.mobi')
  p.click('/book.pdf')
  await p.advance(1000)
  assert.deepEqual(named(p, 'download').map((e) => new URL(e.props.url).pathname), ['/book.epub', '/book.mobi'])
})

test('engagement: visible time and max scroll, sent once when the page is hidden', async () => {
  const p = await page({ scrollHeight: 4000 }) // innerHeight 1000: 25 % seen at the top
  await p.advance(3000)
  p.scrollTo(2000) // 75 %
  p.scrollTo(500) // back up: max stays
  p.hide()
  await p.advance(10_000) // hidden time does not count
  p.show()
  await p.advance(2000)
  p.hide()
  p.pagehide()
  const eng = named(p, 'engagement')
  assert.equal(eng.length, 1, 'once per page')
  assert.deepEqual(eng[0].props, { engaged_ms: 3000, scroll_pct: 75 })
  assert.equal(eng[0].type, 'event')
})

test('engagement counts only visible time when the page loads hidden (background tab)', async () => {
  const p = await page({ hidden: true, scrollHeight: 1000 })
  await p.advance(5000)
  p.show()
  await p.advance(1500)
  p.pagehide()
  assert.deepEqual(named(p, 'engagement')[0].props, { engaged_ms: 1500, scroll_pct: 100 })
})

test('SPA navigation sends the engagement of the previous page, with its URL', async () => {
  const p = await page({ url: 'https://shop.example/a' })
  await p.advance(4000)
  p.navigate('/b')
  await p.advance(1000)
  p.pagehide()
  const eng = named(p, 'engagement')
  assert.deepEqual(eng.map((e) => [e.url, e.props.engaged_ms]), [
    ['https://shop.example/a', 4000],
    ['https://shop.example/b', 1000],
  ])
  assert.deepEqual(
    p.events().map((e) => e.name ?? e.type),
    ['pageview', 'engagement', 'pageview', 'engagement'],
  )
})

test("clickstream('event', name, props): flat props only, at most 50 keys", async () => {
  const p = await page()
  const props = { plan: 'pro', seats: 3, trial: false, nested: { a: 1 }, list: [1], nan: NaN, big: 10n, none: null }
  for (let i = 0; i < 60; i++) props['k' + i] = i
  p.cs('event', 'signup', props)
  await p.advance(1000)
  const [e] = named(p, 'signup')
  assert.deepEqual(contractErrors(e), [])
  assert.equal(Object.keys(e.props).length, 50)
  assert.deepEqual([e.props.plan, e.props.seats, e.props.trial], ['pro', 3, false])
  for (const k of ['nested', 'list', 'nan', 'big', 'none']) assert.equal(k in e.props, false, k)
})

test("clickstream('conversion', name, {revenue, currency, ...}) -> revenue object + props", async () => {
  const p = await page()
  p.cs('conversion', 'purchase', { revenue: 0.1 + 0.2, currency: 'usd', order: 'A1' })
  p.cs('conversion', 'purchase', { revenue: '19.90' })
  p.cs('conversion', 'lead')
  await p.advance(1000)
  const [a, b, c] = named(p, 'purchase').concat(named(p, 'lead'))
  assert.equal(a.type, 'conversion')
  assert.deepEqual(a.revenue, { amount: 0.3, currency: 'USD' }) // rounded to the contract's 6 decimals
  assert.deepEqual(a.props, { order: 'A1' })
  assert.deepEqual(b.revenue, { amount: 19.9, currency: 'EUR' })
  assert.equal('revenue' in c, false)
  for (const e of [a, b, c]) assert.deepEqual(contractErrors(e), [])
})

test("clickstream('identify', id) sends identify; later events carry user_id, also after reload", async () => {
  const store = new Map()
  const p = await page({ store })
  p.cs('event', 'before')
  p.cs('identify', 'u-42')
  p.cs('event', 'after')
  await p.advance(1000)
  const [pv, before, ident, after] = p.events()
  assert.equal(pv.user_id, undefined)
  assert.equal(before.user_id, undefined)
  assert.deepEqual([ident.type, ident.user_id, ident.name], ['identify', 'u-42', undefined])
  assert.equal(after.user_id, 'u-42')
  const q = await page({ store })
  await q.advance(1000)
  assert.equal(q.events()[0].user_id, 'u-42')
  q.cs('identify', null) // log out
  q.cs('event', 'anon')
  await q.advance(1000)
  assert.equal(named(q, 'anon')[0].user_id, undefined)
})

test('command queue: calls made before t.js loads run on load, then the function is replaced', async () => {
  const p = browser({ queue: [['identify', 'early-user'], ['event', 'early', { a: 1 }]] })
  const stub = p.win.clickstream
  await p.load()
  assert.notEqual(p.win.clickstream, stub)
  p.cs('event', 'later')
  await p.advance(1000)
  const ev = p.events()
  assert.deepEqual(ev.map((e) => e.name ?? e.type), ['identify', 'early', 'pageview', 'later'])
  assert.ok(ev.every((e) => e.user_id === 'early-user'), 'the queued identify applies to the first pageview')
})

test('a visitor id is kept across pages in localStorage', async () => {
  const store = new Map()
  const a = await page({ store })
  const b = await page({ store })
  await a.advance(1000)
  await b.advance(1000)
  assert.match(a.events()[0].anonymous_id, /^[0-9a-f-]{36}$/)
  assert.equal(a.events()[0].anonymous_id, b.events()[0].anonymous_id)
  const other = await page()
  await other.advance(1000)
  assert.notEqual(other.events()[0].anonymous_id, a.events()[0].anonymous_id)
})
