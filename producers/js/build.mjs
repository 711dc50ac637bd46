// Builds dist/t.js (minified IIFE, served by the collector at GET /t.js) and dist/t.esm.js
// (ESM for bundlers) from the same src/. Prints the size of t.js and fails over the budget.
// Imported by the tests (and bench/tracker_size.mjs) to build the exact same bytes in memory.

import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('.', import.meta.url))

/** Budget for dist/t.js, gzip level 9 (Plausible's script is about 1.9 KB). */
export const GZIP_BUDGET = 2000

// es2020: optional catch binding, object spread, ** (every browser since 2020).
const common = { absWorkingDir: dir, bundle: true, target: 'es2020', legalComments: 'none', logLevel: 'warning' }

export const configs = {
  iife: { ...common, entryPoints: ['src/t.js'], outfile: 'dist/t.js', format: 'iife', minify: true },
  esm: { ...common, entryPoints: ['src/esm.js'], outfile: 'dist/t.esm.js', format: 'esm' },
}

/** Build one config in memory; returns its code as a string. */
export const bundle = async (name) =>
  (await build({ ...configs[name], write: false })).outputFiles[0].text

export const gzipBytes = (code) => gzipSync(Buffer.from(code), { level: 9 }).length

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await Promise.all(Object.values(configs).map((c) => build(c)))
  const code = await bundle('iife')
  const min = Buffer.byteLength(code)
  const gz = gzipBytes(code)
  console.log(`dist/t.js: ${min} bytes minified, ${gz} bytes gzip (budget ${GZIP_BUDGET})`)
  if (gz > GZIP_BUDGET) {
    console.error(`dist/t.js is ${gz - GZIP_BUDGET} bytes over the gzip budget`)
    process.exit(1)
  }
}
