// Cross-check: what the tracker sends passes the collector's own contract model
// (schemas/event.py, pydantic) when a Python with the project installed is at hand.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { page } from '../testlib/fake-browser.mjs'

const root = fileURLToPath(new URL('../../..', import.meta.url))
const PY = `
import json, sys
from schemas.event import Event
bad = []
for e in json.load(sys.stdin):
    try:
        Event.model_validate_json(json.dumps(e))
    except Exception as exc:  # report all, not just the first
        bad.append([e.get("type"), e.get("name"), str(exc)])
print(json.dumps(bad))
`
const python = [join(root, '.venv/bin/python'), 'python3'].find(
  (p) => (!p.includes('/') || existsSync(p)) && spawnSync(p, ['-c', 'import schemas.event'], { cwd: root }).status === 0,
)

test('every kind of event the tracker makes is valid for schemas/event.py', { skip: !python && 'no Python with pydantic and schemas/' }, async () => {
  const p = await page({ url: 'https://shop.example/p?x=1', referrer: 'https://r.example/', secure: false })
  p.cs('event', 'signup', { plan: 'pro', n: 1.5, ok: true, nested: {} })
  p.cs('conversion', 'purchase', { revenue: 0.1 + 0.2, currency: 'usd', order: 'A1' })
  p.cs('conversion', 'lead')
  p.cs('identify', 'user-1', { tier: 'gold' })
  p.navigate('/q?' + 'x'.repeat(3000))
  p.click('https://partner.example/' + 'y'.repeat(1000))
  p.click('/a.pdf')
  p.scrollTo(500)
  p.pagehide()
  const events = p.events()
  assert.ok(events.length >= 10)
  const r = spawnSync(python, ['-c', PY], { cwd: root, input: JSON.stringify(events), encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), [])
})
