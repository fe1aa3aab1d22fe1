/**
 * Before and after thumbnails of the corrections on the review page (review.html): the image
 * and label tiles the viewer reads (annotation/tile_views.py), cropped around the edit at the
 * pyramid level the server chose (frontend/views.py `_thumbnail`). The edited nuclei are filled
 * in colour, the others outlined in white; the dashed box is the edit's bounding box.
 *
 * Each <canvas class="thumb"> says what to draw in its data attributes: image and labels (tile
 * URL prefixes), z, level, crop ("y0,y1,x0,x1" in that level's pixels), box (the edit inside the
 * crop), ids (the edited nuclei) and tile (the tile size). Drawn when scrolled near, so a long
 * queue does not fetch every tile at once; `data-state` ends "drawn" or "failed" (the title
 * says why, and the viewer links beside it still work).
 *
 * Bundled by esbuild into static/frontend/dist/thumbnails.js (`make frontend`).
 */

import { LABEL_BITMAP, idsOf } from '../shared/labeltiles.js';

const SHOWN_PX = 200; // the longer side on screen
const FILL_ALPHA = 0.45;
const EDGE_ALPHA = 0.55;

async function bitmapAt(url, options) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`the tile answered ${response.status}`);
  return createImageBitmap(await response.blob(), options);
}

function tilesOver(lo, hi, size) {
  const out = [];
  for (let t = Math.floor(lo / size); t * size < hi; t += 1) out.push(t);
  return out;
}

/** A bright colour per id (the same id, the same colour, before and after). */
function colourOf(id) {
  let h = Math.imul(id ^ (id >>> 16), 0x45d9f3b) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  const hue = h % 360;
  const f = (n) => {
    const k = (n + hue / 30) % 12;
    return Math.round(255 * (0.55 - 0.45 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

async function draw(canvas) {
  const d = canvas.dataset;
  const [y0, y1, x0, x1] = d.crop.split(',').map(Number);
  const [by0, by1, bx0, bx1] = d.box.split(',').map(Number);
  const size = Number(d.tile);
  const edited = new Set(d.ids ? d.ids.split(',').map(Number) : []);
  const w = x1 - x0;
  const h = y1 - y0;

  // The crop at its own resolution: the image, and the ids decoded from the label tiles.
  const picture = new OffscreenCanvas(w, h);
  const pictureContext = picture.getContext('2d');
  const packed = new OffscreenCanvas(w, h);
  const packedContext = packed.getContext('2d', { willReadFrequently: true });
  const loads = [];
  for (const ty of tilesOver(y0, y1, size)) {
    for (const tx of tilesOver(x0, x1, size)) {
      const path = `${d.level}/${d.z}/${ty}/${tx}.png?size=${size}`;
      const dy = ty * size - y0;
      const dx = tx * size - x0;
      loads.push(bitmapAt(d.image + path).then((bitmap) => {
        pictureContext.drawImage(bitmap, dx, dy);
        bitmap.close();
      }));
      loads.push(bitmapAt(d.labels + path, LABEL_BITMAP).then((bitmap) => {
        packedContext.drawImage(bitmap, dx, dy);
        bitmap.close();
      }));
    }
  }
  await Promise.all(loads);
  const ids = idsOf(packedContext.getImageData(0, 0, w, h).data);

  const frame = pictureContext.getImageData(0, 0, w, h);
  const px = frame.data;
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      const i = y * w + x;
      const id = ids[i];
      if (id === 0) continue;
      const edge = (x > 0 && ids[i - 1] !== id) || (x < w - 1 && ids[i + 1] !== id)
        || (y > 0 && ids[i - w] !== id) || (y < h - 1 && ids[i + w] !== id);
      let colour = null;
      let alpha = 0;
      if (edited.has(id)) {
        colour = colourOf(id);
        alpha = edge ? 1 : FILL_ALPHA;
      } else if (edge) {
        colour = [255, 255, 255];
        alpha = EDGE_ALPHA;
      }
      if (colour === null) continue;
      for (let c = 0; c < 3; c += 1) px[4 * i + c] = Math.round(px[4 * i + c] * (1 - alpha) + colour[c] * alpha);
    }
  }
  pictureContext.putImageData(frame, 0, 0);

  // On screen: scaled up without smoothing (pixels stay pixels), the box drawn at screen scale.
  const scale = SHOWN_PX / Math.max(w, h);
  canvas.width = Math.round(w * scale);
  canvas.height = Math.round(h * scale);
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.drawImage(picture, 0, 0, canvas.width, canvas.height);
  context.setLineDash([5, 4]);
  context.lineWidth = 1.5;
  context.strokeStyle = '#ffd84d';
  context.strokeRect(bx0 * scale, by0 * scale, (bx1 - bx0) * scale, (by1 - by0) * scale);
}

function start(canvas) {
  canvas.dataset.state = 'loading';
  draw(canvas).then(() => {
    canvas.dataset.state = 'drawn';
  }, (error) => {
    canvas.dataset.state = 'failed';
    canvas.title = `No thumbnail: ${error.message}`;
  });
}

const canvases = [...document.querySelectorAll('canvas.thumb')];
if ('IntersectionObserver' in window) {
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      start(entry.target);
    }
  }, { rootMargin: '300px' });
  canvases.forEach((canvas) => observer.observe(canvas));
} else {
  canvases.forEach(start);
}
