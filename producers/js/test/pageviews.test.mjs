// Pageview on load and on SPA navigation, the event fields, and the contract shape.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { page, contractErrors, T0 } from '../testlib/fake-browser.mjs'

const pageviews = (p) => p.events().filter((e) => e.type === 'pageview')

test('a pageview on load with the contract fields (absent optional fields omitted)', async () => {
  const p = await page({ url: 'https://shop.example/a?x=1#top', referrer: 'https://search.example/', title: 'Shop' })
  await p.advance(1000)
  const [e] = p.events()
  assert.deepEqual(contractErrors(e), [])
  assert.deepEqual(
    { ...e, event_id: 'id', anonymous_id: 'aid' },
    {
      event_id: 'id',
      type: 'pageview',
      site_id: 'shop',
      anonymous_id: 'aid',
      ts: T0,
      url: 'https://shop.example/a?x=1#top',
      referrer: 'https://search.example/',
      title: 'Shop',
      screen: '1920x1080',
      lang: 'en-GB',
    },
  )
})

test('empty referrer and title are omitted, not sent as empty strings or nulls', async () => {
  const p = await page({ referrer: '', title: '' })
  await p.advance(1000)
  const [e] = p.events()
  assert.equal('referrer' in e, false)
  assert.equal('title' in e, false)
  assert.equal('user_id' in e, false)
  assert.equal('props' in e, false)
  assert.equal('name' in e, false)
})

test('pushState, replaceState and popstate count as navigation; same URL does not', async () => {
  const p = await page({ url: 'https://shop.example/' })
  p.navigate('/products') // pushState
  p.navigate('/products') // same URL again: no new pageview
  p.navigate('/products', 'replaceState') // e.g. router saving scroll state
  p.navigate('/products?page=2', 'replaceState')
  p.pop('/products')
  p.history.pushState({ only: 'state' }) // no URL argument
  await p.advance(1000)
  assert.deepEqual(
    pageviews(p).map((e) => e.url),
    ['https://shop.example/', 'https://shop.example/products', 'https://shop.example/products?page=2', 'https://shop.example/products'],
  )
})

test('SPA pageviews carry the previous page as referrer', async () => {
  const p = await page({ url: 'https://shop.example/', referrer: 'https://news.example/' })
  p.navigate('/cart')
  await p.advance(1000)
  assert.deepEqual(pageviews(p).map((e) => e.referrer), ['https://news.example/', 'https://shop.example/'])
})

test('the wrapped pushState still does its job and returns its value', async () => {
  const p = await page()
  p.history.pushState({}, '', '/x')
  assert.equal(p.location.pathname, '/x')
})

test('hash changes are not navigation by default', async () => {
  const p = await page({ url: 'https://shop.example/docs' })
  p.setHash('#install')
  p.navigate('#usage')
  await p.advance(1000)
  assert.equal(pageviews(p).length, 1)
})

test('data-hash: hash changes count, once each (popstate + hashchange do not double count)', async () => {
  const p = await page({ url: 'https://app.example/#/inbox', attrs: { hash: '' } })
  p.setHash('#/settings')
  p.setHash('#/settings')
  p.navigate('#/inbox')
  p.setHash('#/drafts', { popstate: false })
  await p.advance(1000)
  assert.deepEqual(pageviews(p).map((e) => new URL(e.url).hash), ['#/inbox', '#/settings', '#/inbox', '#/drafts'])
})

test('data-hash="false" is off', async () => {
  const p = await page({ url: 'https://app.example/#/a', attrs: { hash: 'false' } })
  p.setHash('#/b')
  await p.advance(1000)
  assert.equal(pageviews(p).length, 1)
})

test("clickstream('pageview') sends one only if the URL changed", async () => {
  const p = await page()
  p.cs('pageview')
  await p.advance(1000)
  assert.equal(pageviews(p).length, 1)
})

test('long URLs are cut to the contract maximum (2048)', async () => {
  const p = await page({ url: 'https://shop.example/?q=' + 'a'.repeat(5000) })
  await p.advance(1000)
  assert.equal(p.events()[0].url.length, 2048)
})

test('events get fresh event_ids; the fallback UUID (no randomUUID on plain http) is v4', async () => {
  const p = await page({ secure: false })
  for (let i = 0; i < 30; i++) p.cs('event', 'e')
  await p.advance(1000)
  const ids = p.events().map((e) => e.event_id)
  assert.equal(new Set(ids).size, ids.length)
  for (const e of p.events()) assert.deepEqual(contractErrors(e), [])
})

test('the tag included twice tracks once', async () => {
  const p = await page()
  await p.load() // the same script runs again in the same page
  p.navigate('/next')
  p.click('https://partner.example/')
  await p.advance(1000)
  assert.deepEqual(p.events().map((e) => e.name ?? e.type), ['pageview', 'engagement', 'pageview', 'outbound'])
})
