/**
 * The nuclei of the version on screen as a review queue, in the order of the strategy picked
 * (`nuclei/queue/?strategy=`: the core's SELECTION_STRATEGIES, listed in the page's config;
 * by default top, the least certain first): clicking one, or `n` for the next, jumps to its
 * plane and centre and selects it. With `accept` (a student's assigned region: region.js),
 * the queue keeps to the nuclei it accepts, out of the REGION_PAGE the strategy picks.
 */

import { colourOf } from './labels.js';

const PAGE_SIZE = 200;
const REGION_PAGE = 1000;

export function makeNucleiPanel({ api, volumeId, elements, onPick, strategies, accept = null }) {
  let nuclei = [];
  let selectedNow = [];
  const strategy = elements.strategy;
  strategy.replaceChildren(...strategies.map(({ name, summary }) => new Option(name.replace('_', ' '), name)));
  for (const option of strategy.options) option.title = strategies.find((s) => s.name === option.value).summary;
  strategy.addEventListener('change', () => panel.load(version, selectedNow));
  let byId = new Map();
  let version = null;
  let request = 0;

  function render(selected) {
    const list = elements.list;
    list.replaceChildren();
    nuclei.forEach((nucleus, index) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'nucleus';
      button.dataset.labelId = String(nucleus.label_id);
      button.dataset.rank = String(index + 1);
      if (selected.includes(nucleus.label_id)) button.classList.add('selected');
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = `rgb(${colourOf(nucleus.label_id).join(',')})`;
      const id = document.createElement('span');
      id.className = 'id';
      id.textContent = `#${nucleus.label_id}`;
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = nucleus.uncertainty === null ? 'unscored' : nucleus.uncertainty.toFixed(3);
      const where = document.createElement('span');
      where.className = 'where muted';
      where.textContent = nucleus.z_min === nucleus.z_max ? `z ${nucleus.z_min}` : `z ${nucleus.z_min}–${nucleus.z_max}`;
      const size = document.createElement('span');
      size.className = 'size muted';
      size.textContent = `${nucleus.volume_voxels.toLocaleString()} vx`;
      const mark = document.createElement('span');
      mark.className = 'curation';
      button.dataset.curation = nucleus.curation ?? '';
      mark.textContent = { checked: '✓ checked', edited: '✎ edited' }[nucleus.curation] ?? '';
      mark.title = { checked: 'a person checked it: it is right', edited: 'made or changed by a person' }[
        nucleus.curation] ?? '';
      button.append(swatch, id, score, where, size, mark);
      button.addEventListener('click', () => onPick(nucleus));
      item.append(button);
      list.append(item);
    });
  }

  const panel = {
    async load(nextVersion, selected = []) {
      version = nextVersion;
      selectedNow = selected;
      const mine = ++request;
      if (version === null) {
        nuclei = [];
        byId = new Map();
        elements.count.textContent = 'No label version yet: run a segmentation.';
        elements.next.disabled = true;
        render(selected);
        return;
      }
      elements.count.textContent = `Loading the nuclei of ${version}…`;
      const data = await api.get(`volumes/${volumeId}/label-versions/${version}/nuclei/queue/`
        + `?strategy=${encodeURIComponent(strategy.value)}&size=${accept ? REGION_PAGE : PAGE_SIZE}`);
      if (mine !== request) return; // a newer version was asked for meanwhile
      nuclei = accept ? data.results.filter(accept) : data.results;
      byId = new Map(data.results.map((n) => [n.label_id, n]));
      const shown = data.count > nuclei.length ? `${nuclei.length} (${strategy.value.replace('_', ' ')}) of ` : '';
      elements.count.textContent = accept ? `${nuclei.length} nuclei in your region (of ${data.count} in ${version})`
        : `${shown}${data.count} nuclei in ${version}`;
      elements.next.disabled = nuclei.length === 0;
      render(selected);
    },
    /** The nucleus after `current` in the queue (the first if none). */
    next(current) {
      if (nuclei.length === 0) return null;
      const index = nuclei.findIndex((n) => n.label_id === current);
      return nuclei[(index + 1) % nuclei.length];
    },
    get: (labelId) => byId.get(labelId) ?? null,
    /** Paint the swatches again (the label colours were shuffled). */
    recolour() {
      for (const button of elements.list.querySelectorAll('button.nucleus')) {
        button.querySelector('.swatch').style.background = `rgb(${colourOf(Number(button.dataset.labelId)).join(',')})`;
      }
    },
    top: () => nuclei[0] ?? null,
    highlight(selected) {
      for (const button of elements.list.querySelectorAll('button.nucleus')) {
        const on = selected.includes(Number(button.dataset.labelId));
        button.classList.toggle('selected', on);
        if (on && selected[0] === Number(button.dataset.labelId)) button.scrollIntoView({ block: 'nearest' });
      }
    },
    get version() { return version; },
  };
  return panel;
}
