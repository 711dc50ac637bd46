// The artifacts: t.js within the size budget; the ESM build exports init/clickstream and works.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { bundle, gzipBytes, GZIP_BUDGET } from '../build.mjs'
import { browser } from '../testlib/fake-browser.mjs'

test(`dist/t.js is at most ${GZIP_BUDGET} bytes gzip`, async () => {
  const code = await bundle('iife')
  const gz = gzipBytes(code)
  assert.ok(gz <= GZIP_BUDGET, `t.js is ${gz} bytes gzip`)
  assert.doesNotMatch(code, /\bimport\b|\bexport\b|require\(/, 'a self-contained classic script')
})

test('ESM build: init(options) + clickstream(...) share the tracker', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-esm-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 't.esm.mjs')
  writeFileSync(file, await bundle('esm'))

  // The module must not touch browser globals at import time (bundlers, SSR).
  const mod = await import(pathToFileURL(file).href)
  assert.deepEqual(Object.keys(mod).sort(), ['clickstream', 'init'])

  const env = browser({ url: 'https://app.example/start' })
  for (const k of ['window', 'document', 'navigator', 'location', 'history', 'screen', 'localStorage', 'addEventListener'])
    globalThis[k] = env.win[k]
  t.after(() => {
    for (const k of ['window', 'document', 'navigator', 'location', 'history', 'screen', 'localStorage', 'addEventListener'])
      delete globalThis[k]
  })
  mod.clickstream('event', 'before-init') // ignored, no throw
  mod.init({ site: 'app', api: 'https://c.example', cookieless: true, hash: false })
  mod.clickstream('event', 'signup', { plan: 'pro' })
  env.history.pushState({}, '', '/next')
  env.pagehide()
  const ev = env.events()
  assert.equal(env.sent[0].url, 'https://c.example/v1/events')
  assert.deepEqual(ev.map((e) => e.name ?? e.type), ['pageview', 'signup', 'engagement', 'pageview', 'engagement'])
  assert.ok(ev.every((e) => e.site_id === 'app' && !e.anonymous_id))
})
