/**
 * Where this person may edit: the page's config says (`can_edit`, `editable_regions`, from
 * annotation.roles.editable_regions) and the server refuses edits elsewhere anyway (403).
 *
 * - A student's assigned regions ([z0, z1, y0, y1, x0, x1), level 0) are drawn on the map as
 *   dashed boxes, bright on the planes they cover and faint on the others, and in the XZ and
 *   YZ views (`drawIn`) as the boxes' z-by-x (z-by-y) sides, bright while the cursor's row
 *   (column) crosses them; `regions` and `inside` are on window.ezqViewer.regions.
 * - The edit tools are off (greyed, with the reason as their tooltip and in #region-note) for
 *   someone who may not edit the volume, and while the plane or the centre of the view lies
 *   outside every region.
 * - The "next uncertain" queue keeps to the regions (nuclei.js is given `inside`).
 */

import Feature from 'ol/Feature.js';
import Polygon from 'ol/geom/Polygon.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import Style from 'ol/style/Style.js';
import Stroke from 'ol/style/Stroke.js';

import { toYX } from './grid.js';

const onPlane = new Style({ stroke: new Stroke({ color: '#ffb000', width: 2, lineDash: [8, 5] }) });
const offPlane = new Style({ stroke: new Stroke({ color: 'rgba(255, 176, 0, 0.35)', width: 1, lineDash: [4, 6] }) });

function describe(region) {
  const [z0, z1, y0, y1, x0, x1] = region;
  return `planes ${z0}–${z1 - 1}, y ${y0}–${y1 - 1}, x ${x0}–${x1 - 1}`;
}

export function makeRegionGate({ config, map, elements }) {
  const regions = config.editable_regions ?? null; // null: anywhere
  const canEdit = config.can_edit !== false;
  const source = new VectorSource({ wrapX: false });
  const features = (regions ?? []).map((region) => {
    const [, , y0, y1, x0, x1] = region;
    const ring = [[x0, -y0], [x1, -y0], [x1, -y1], [x0, -y1], [x0, -y0]];
    const feature = new Feature(new Polygon([ring]));
    feature.set('region', region);
    source.addFeature(feature);
    return feature;
  });
  map.addLayer(new VectorLayer({ source, zIndex: 4 }));

  /** Is level-0 (z, y, x) in a region (or anywhere, when there are none)? */
  function inside(z, y, x) {
    if (regions === null) return true;
    return regions.some(([z0, z1, y0, y1, x0, x1]) => z >= z0 && z < z1 && y >= y0 && y < y1 && x >= x0 && x < x1);
  }

  /** Why the edit tools are off at plane z with the view centred on `centre` ('' if they are on). */
  function lockedReason(z, centre) {
    if (!canEdit) return config.edit_note || 'You may look at this volume but not edit it.';
    if (regions === null || !centre) return '';
    const [y, x] = toYX(centre);
    if (inside(z, y, x)) return '';
    return `Outside the region assigned to you (${regions.map(describe).join('; ')}): the edit tools are off `
      + 'here. Go to the dashed box.';
  }

  /** Draw the regions in the XZ and YZ views too (ortho.js's `views`; `cursor` {y, x} is the
   * page's, read at each frame; `planes` the stack's Z). */
  function drawIn(views, { cursor, planes }) {
    for (const [plane, view] of Object.entries(views)) {
      const boxes = new VectorSource({ wrapX: false });
      for (const region of regions ?? []) {
        const [z0, z1, y0, y1, x0, x1] = region;
        const [a0, a1, b0, b1] = plane === 'xz' ? [x0, x1, y0, y1] : [y0, y1, x0, x1];
        const r0 = (z0 * view.rows) / planes;
        const r1 = (z1 * view.rows) / planes;
        const feature = new Feature(new Polygon([[[a0, -r0], [a1, -r0], [a1, -r1], [a0, -r1], [a0, -r0]]]));
        const crossing = () => {
          const index = plane === 'xz' ? cursor.y : cursor.x;
          return index >= b0 && index < b1;
        };
        feature.setStyle(() => (crossing() ? onPlane : offPlane));
        boxes.addFeature(feature);
      }
      view.layers.map.addLayer(new VectorLayer({ source: boxes, zIndex: 4 }));
    }
  }

  return {
    regions,
    canEdit,
    inside,
    drawIn,
    /** Restyle the boxes for plane z and say whether editing is on here. */
    update(z, centre) {
      for (const feature of features) {
        const [z0, z1] = feature.get('region');
        feature.setStyle(z >= z0 && z < z1 ? onPlane : offPlane);
      }
      const reason = lockedReason(z, centre);
      elements.note.textContent = reason;
      elements.note.hidden = !reason;
      return reason;
    },
    describe: () => (regions === null ? (canEdit ? 'anywhere' : 'nowhere') : regions.map(describe).join('; ')),
  };
}
