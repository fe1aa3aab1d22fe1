// The browser's JavaScript, bundled by esbuild: `node build.mjs` (npm run build: minified, with
// source maps) or `node build.mjs --watch` (npm run watch: rebuilt on every change).
//
// One entry point a page: the viewer and the scripts of the other pages. Code they share (the
// API client, the reconnecting socket, label-tile decoding: src/shared/, and OpenLayers) goes
// into chunks/ once, so a page loads only what it imports. The bundle is built, never committed.
import * as esbuild from 'esbuild';

/** Output name (static/frontend/dist/<name>.js, what the templates load) -> source. */
export const ENTRIES = {
  viewer: 'src/viewer/main.js', // viewer.html
  actions: 'src/pages/actions.js', // the API forms of project, projects, review, training
  uploads: 'src/pages/uploads.js', // project.html
  thumbnails: 'src/pages/thumbnails.js', // review.html
  training: 'src/pages/training.js', // training.html
};

const watch = process.argv.includes('--watch');
const options = {
  entryPoints: ENTRIES,
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2020',
  sourcemap: true,
  minify: !watch,
  legalComments: watch ? 'eof' : 'linked',
  outdir: 'static/frontend/dist',
  entryNames: '[name]',
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'info',
};

if (watch) {
  await (await esbuild.context(options)).watch();
} else {
  await esbuild.build(options);
}
