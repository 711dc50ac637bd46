// Size of our browser tracker (producers/js) next to other trackers, bundled the same way.
//
//   node bench/tracker_size.mjs [--keep]      (from the repo root; needs the npm registry)
//
// Builds dist/t.js with producers/js/build.mjs (installing its devDependencies first if needed),
// then in a temp dir installs the other trackers from npm and bundles a tiny entry that imports
// and initialises each one: esbuild, bundle + minify, IIFE, es2020, browser. Sizes are bytes of the
// minified bundle and of it gzipped with zlib level 9. A tracker that fails to install or bundle
// is reported in the table and the JSON, not fatal.
// Writes bench/results/tracker_size.json. --keep leaves the temp dir for inspection.

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'

const root = fileURLToPath(new URL('..', import.meta.url))
const js = join(root, 'producers/js')
const keep = process.argv.includes('--keep')
const gzip = (code) => gzipSync(Buffer.from(code), { level: 9 }).length
const npm = (args, cwd) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  })

// Competitors: npm package(s) to fetch and the entry that uses them (roughly our default feature
// set: auto pageviews, and outbound/download tracking where the library has them).
const OTHERS = [
  {
    name: 'posthog-js',
    pkg: 'posthog-js',
    entry: `import posthog from 'posthog-js'
posthog.init('phc_bench', { api_host: 'https://collector.example' })`,
  },
  {
    name: '@snowplow/browser-tracker',
    pkg: '@snowplow/browser-tracker',
    entry: `import { newTracker, trackPageView, enableActivityTracking } from '@snowplow/browser-tracker'
newTracker('sp', 'https://collector.example', { appId: 'bench' })
enableActivityTracking({ minimumVisitLength: 10, heartbeatDelay: 10 })
trackPageView()`,
  },
  {
    name: 'plausible-tracker (legacy npm)',
    pkg: 'plausible-tracker',
    entry: `import Plausible from 'plausible-tracker'
const p = Plausible({ domain: 'example.com', apiHost: 'https://collector.example' })
p.enableAutoPageviews()
p.enableAutoOutboundTracking()`,
  },
  {
    name: '@plausible-analytics/tracker',
    pkg: '@plausible-analytics/tracker',
    entry: `import { init } from '@plausible-analytics/tracker'
init({ domain: 'example.com', endpoint: 'https://collector.example/api/event', outboundLinks: true, fileDownloads: true })`,
  },
  {
    // Umami publishes no tracker package; its app package ships the script's source.
    // `npm pack` fetches that one tarball without the app's dependencies.
    name: 'umami (src/tracker from the umami package)',
    pack: 'umami',
    file: 'package/src/tracker/index.js',
  },
]

/** Load esbuild and our build from producers/js, installing its devDependencies if needed. */
async function ours() {
  if (!existsSync(join(js, 'node_modules/esbuild'))) {
    console.error('installing producers/js devDependencies (npm ci) ...')
    npm(['ci'], js)
  }
  const build = await import(pathToFileURL(join(js, 'build.mjs')).href)
  const esbuild = await import(pathToFileURL(join(js, 'node_modules/esbuild/lib/main.js')).href)
  return { build, esbuild }
}

const row = (name, version, code, note = '') => ({
  name,
  version,
  min_bytes: code == null ? null : Buffer.byteLength(code),
  gzip_bytes: code == null ? null : gzip(code),
  note,
})

async function main() {
  const { build, esbuild } = await ours()
  const version = (dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version
  const bundle = async (opts) =>
    (
      await esbuild.build({
        bundle: true,
        minify: true,
        format: 'iife',
        target: 'es2020',
        platform: 'browser',
        legalComments: 'none',
        logLevel: 'silent',
        write: false,
        define: { 'process.env.NODE_ENV': '"production"' },
        ...opts,
      })
    ).outputFiles[0].text

  const results = []
  const t = await build.bundle('iife') // the same bytes `npm run build` writes to dist/t.js
  results.push(row('clickstream t.js (ours, script tag)', version(js), t, `budget ${build.GZIP_BUDGET} B gzip`))
  results.push(
    row(
      'clickstream t.esm.js (ours, bundled)',
      version(js),
      await bundle({
        stdin: {
          contents: `import { init } from './src/esm.js'\ninit({ site: 'bench', api: 'https://collector.example' })`,
          resolveDir: js,
        },
      }),
    ),
  )

  const tmp = mkdtempSync(join(tmpdir(), 'tracker-size-'))
  writeFileSync(join(tmp, 'package.json'), '{"name":"tracker-size-bench","private":true}\n')
  try {
    for (const o of OTHERS) {
      try {
        let code, v
        if (o.pack) {
          const tgz = npm(['pack', o.pack, '--silent'], tmp).trim().split('\n').pop()
          execFileSync('tar', ['xzf', tgz, o.file], { cwd: tmp })
          v = tgz.replace(/^.*-(\d[^-]*?)\.tgz$/, '$1')
          code = await bundle({ entryPoints: [join(tmp, o.file)] })
        } else {
          npm(['install', '--ignore-scripts', '--no-save', o.pkg], tmp)
          v = version(join(tmp, 'node_modules', o.pkg))
          code = await bundle({ stdin: { contents: o.entry, resolveDir: tmp } })
        }
        results.push(row(o.name, v, code))
      } catch (e) {
        const msg = String(e.stderr || e.message || e).trim().split('\n')[0].slice(0, 160)
        results.push(row(o.name, null, null, `FAILED: ${msg}`))
      }
    }
  } finally {
    if (keep) console.error(`kept ${tmp}`)
    else rmSync(tmp, { recursive: true, force: true })
  }

  const head = ['tracker', 'version', 'min B', 'gzip B', 'note']
  const lines = results.map((r) => [r.name, r.version ?? '-', r.min_bytes ?? '-', r.gzip_bytes ?? '-', r.note])
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)))
  const fmt = (l) => l.map((c, i) => (i === 2 || i === 3 ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join('  ').trimEnd()
  console.log([fmt(head), fmt(w.map((n) => '-'.repeat(n))), ...lines.map(fmt)].join('\n'))

  const out = join(root, 'bench/results')
  mkdirSync(out, { recursive: true })
  const report = {
    bench: 'tracker_size',
    generated_at: new Date().toISOString(),
    node: process.version,
    esbuild: esbuild.version,
    method: 'esbuild bundle+minify, iife, target es2020, platform browser; gzip = zlib level 9',
    results,
  }
  writeFileSync(join(out, 'tracker_size.json'), JSON.stringify(report, null, 2) + '\n')
  console.log(`\nwrote ${join('bench/results', 'tracker_size.json')}`)
}

await main()
