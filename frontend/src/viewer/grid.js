/**
 * The volume's pixel space as OpenLayers sees it.
 *
 * Level-0 pixel (y, x) is map coordinate [x, -y]: the extent is [0, -Y, X, 0] and tiles start
 * at its top-left corner, so OpenLayers' tile row counts downwards like ours. Pyramid level k
 * halves y and x, so it is the tile grid's resolution 2**k; OpenLayers numbers its zoom levels
 * from the coarsest, so its z is (levels - 1 - k).
 */

import Projection from 'ol/proj/Projection.js';
import TileGrid from 'ol/tilegrid/TileGrid.js';

export const TILE_SIZE = 256;

export function makeGrid(volume) {
  const [, height, width] = volume.shape;
  const levels = volume.level_shapes.length;
  const extent = [0, -height, width, 0];
  const projection = new Projection({ code: `ezquant-volume-${volume.id}`, units: 'pixels', extent });
  const resolutions = [];
  for (let level = levels - 1; level >= 0; level -= 1) resolutions.push(2 ** level);
  const tileGrid = new TileGrid({ extent, origin: [0, 0], resolutions, tileSize: TILE_SIZE });
  return {
    extent,
    projection,
    tileGrid,
    levels,
    height,
    width,
    /** Our pyramid level of an OpenLayers tile z. */
    levelOf: (olZ) => levels - 1 - olZ,
    /** The pyramid level OpenLayers shows at a view resolution. */
    levelAt: (resolution) => levels - 1 - tileGrid.getZForResolution(resolution, 0),
  };
}

/** Level-0 [y, x] of a map coordinate. */
export function toYX(coordinate) {
  return [-coordinate[1], coordinate[0]];
}

/** The map coordinate of level-0 (y, x). */
export function toCoordinate(y, x) {
  return [x, -y];
}

/** A map point inside the image? */
export function inside(grid, [y, x]) {
  return y >= 0 && x >= 0 && y < grid.height && x < grid.width;
}
