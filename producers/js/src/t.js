// IIFE entry (dist/t.js): configured by the data-* attributes of its own <script> tag.
//   <script defer src="https://collector.example/t.js" data-site="SITE_ID"></script>
// Takes over window.clickstream, running the calls the page queued in clickstream.q before load.

import { init, clickstream } from './core.js'

try {
  // currentScript is set while a classic script (defer, async or injected) first runs
  let W = window,
    s = document.currentScript,
    q = W.clickstream?.q
  // the tag included twice must not track twice: a second copy sees the first one's marker
  if (!W.clickstream?.l) {
    W.clickstream = clickstream
    clickstream.l = 1
    // dataset: site, api, cookieless, hash, downloads, dnt; api defaults to where t.js came from
    init(s.dataset, q, new URL(s.src).origin)
  }
} catch (e) {}
