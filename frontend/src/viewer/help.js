/**
 * The keyboard help (`?`): every key of the viewer in one overlay over the map. The tools'
 * keys come from TOOLS (edits.js and the modules that add tools), the others from KEYS, which
 * a module that adds a key extends (`KEYS.push(['g', 'what it does'])`).
 */

import { TOOLS } from './edits.js';

/** [keys, what they do] besides the tools'. */
export const KEYS = [
  [', .  PgDn PgUp', 'previous / next plane'],
  ['n', 'next uncertain nucleus (in your region): jump there and zoom in'],
  ['y', 'check the selected nucleus: it is right (a correction of its own, kept by a new segmentation)'],
  ['o', 'labels as outlines only'],
  ['l', 'labels on / off'],
  ['h', 'uncertainty heat map'],
  ['c', 'shuffle the label colours (touching nuclei always differ)'],
  ['d', '3D view of the selected nucleus and its neighbours'],
  ['[ ]', 'brush radius smaller / larger'],
  ['Enter', 'finish an outline; merge the selected nuclei; apply an interpolation'],
  ['Esc', 'drop the drawing in progress, then the selection; close this help'],
  ['Del  Backspace', 'remove the last point of an outline; delete the selected nuclei'],
  ['shift-click', 'add a nucleus to the selection (select tool); remove it (merge tool)'],
  ['Ctrl Z', 'undo this page\'s last edit'],
  ['Ctrl Shift Z  Ctrl Y', 'redo'],
  ['?', 'this help'],
];

export function makeHelp({ element }) {
  function render() {
    const list = element.querySelector('dl');
    list.replaceChildren();
    const rows = [
      ...Object.values(TOOLS).map((tool) => [tool.key, tool.label]),
      ...KEYS,
    ];
    for (const [keys, what] of rows) {
      const term = document.createElement('dt');
      for (const key of String(keys).split(/\s{2,}/)) { // two spaces part alternatives
        const kbd = document.createElement('kbd');
        kbd.textContent = key;
        term.append(kbd, ' ');
      }
      const text = document.createElement('dd');
      text.textContent = what;
      list.append(term, text);
    }
  }

  const help = {
    get open() { return !element.hidden; },
    show() {
      render();
      element.hidden = false;
      element.querySelector('button')?.focus();
    },
    hide() {
      element.hidden = true;
    },
    toggle() {
      if (help.open) help.hide();
      else help.show();
    },
  };
  element.querySelector('button')?.addEventListener('click', help.hide);
  element.addEventListener('click', (event) => { if (event.target === element) help.hide(); });
  return help;
}
