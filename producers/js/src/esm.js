// ESM entry (dist/t.esm.js) for bundlers:
//   import { init, clickstream } from '@clickstream/tracker'
//   init({ site: 'SITE_ID', api: 'https://collector.example' })
//   clickstream('event', 'signup', { plan: 'pro' })
export { init, clickstream } from './core.js'
