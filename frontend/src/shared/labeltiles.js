/**
 * Label tiles as the server sends them (annotation/tile_views.py): PNGs whose pixels are
 * nucleus ids packed in RGB, id = r | g << 8 | b << 16, 0 = background. The viewer (labels.js)
 * and the review page's thumbnails decode them here.
 */

/** createImageBitmap's options for a label tile: no colour management and no
 * premultiplication, so the bytes stay ids, not colours. */
export const LABEL_BITMAP = Object.freeze({ premultiplyAlpha: 'none', colorSpaceConversion: 'none' });

/** The ids of RGBA pixels (ImageData's data, 4 bytes a pixel) drawn from label tiles. */
export function idsOf(rgba) {
  const ids = new Uint32Array(rgba.length / 4);
  for (let i = 0, j = 0; i < ids.length; i += 1, j += 4) {
    ids[i] = rgba[j] | (rgba[j + 1] << 8) | (rgba[j + 2] << 16);
  }
  return ids;
}
