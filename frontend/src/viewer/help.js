/**
 * The keyboard help (`?`): every key of the viewer in one overlay over the map. Its rows come
 * from the keymap (keymap.js: the tools' own keys and the viewer's), read each time it opens.
 */

/** `rows()`: [keys, what they do] pairs; keys that are alternatives are two spaces apart. */
export function makeHelp({ element, rows }) {
  function render() {
    const list = element.querySelector('dl');
    list.replaceChildren();
    for (const [keys, what] of rows()) {
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
