/**
 * Every key of the viewer in one table, from which both the keyboard and the help (`?`) are
 * served: a binding says which keys run what, and what the help says of it.
 *
 * The tools' keys are not written here: each tool names its own (`key` and `label` in TOOLS,
 * edits.js, the tools other modules add there included) and `toolBindings` turns them into
 * bindings. A key bound twice is refused when the table is made (`keymap.table()`, at start),
 * so a new tool cannot take a key silently.
 *
 * Keys are named as `chordOf` names a keydown: the key itself ('n', 'Enter', '?', 'PageDown'),
 * 'Ctrl+z' / 'Ctrl+Shift+z' (Ctrl or ⌘, the letter in lower case), 'Alt+...'.
 */

import { TOOLS } from './edits.js';

/** A keydown as the table names it. */
export function chordOf(event) {
  if (event.ctrlKey || event.metaKey) return `Ctrl+${event.shiftKey ? 'Shift+' : ''}${event.key.toLowerCase()}`;
  if (event.altKey) return `Alt+${event.key}`;
  return event.key;
}

/** Typing in a field: its keys are its own, but Escape (checkboxes and sliders do not type). */
function typingIn(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName))
    && !(target instanceof HTMLInputElement && ['checkbox', 'range', 'radio'].includes(target.type));
}

/** One binding per tool of TOOLS (as it is now) that the page offers (`offers(name)`): its key
 * picks it. A tool whose kinds the server does not list has no key and is not in the help. */
export function toolBindings(setTool, offers = () => true) {
  return Object.entries(TOOLS)
    .filter(([name, tool]) => tool.key && offers(name))
    .map(([name, tool]) => ({ keys: { [tool.key]: () => setTool(name) }, what: tool.label }));
}

/**
 * `bindings()`: the bindings, in the help's order, each {keys: {chord: run(event)}, what,
 * shown}; `shown` is how the help writes the keys (alternatives two spaces apart), by default
 * the chords themselves. A binding without keys is listed only (a mouse gesture).
 */
export function makeKeymap(bindings) {
  /** chord -> binding; throws on a chord bound twice. */
  function table() {
    const byChord = new Map();
    for (const binding of bindings()) {
      for (const [chord, run] of Object.entries(binding.keys ?? {})) {
        const other = byChord.get(chord);
        if (other) throw new Error(`The key "${chord}" is bound twice: "${other.what}" and "${binding.what}".`);
        byChord.set(chord, { run, what: binding.what });
      }
    }
    return byChord;
  }

  return {
    table,
    /** The help's rows: [keys as shown, what they do]. */
    rows() {
      return bindings().map((b) => [b.shown ?? Object.keys(b.keys ?? {}).join('  '), b.what]);
    },
    /** Run the binding of a keydown, if any (then the browser's own action is prevented). */
    handle(event) {
      if (typingIn(event.target) && event.key !== 'Escape') return;
      const binding = table().get(chordOf(event));
      if (!binding) return;
      binding.run(event);
      event.preventDefault();
    },
  };
}

/**
 * The viewer's bindings: the tools' keys first, then the viewer's own. `parts`: the viewer's
 * parts (main.js) that the keys drive.
 */
export function viewerBindings({ editor, controls, selection, state, help, mesh, colouring, hooks, overlay, ortho }) {
  const planeBy = (step) => () => controls.setZ(state.z + step);
  const redo = () => editor.redo();
  const removeLast = () => { if (!editor.removeLastPoint()) editor.deleteSelected(); };
  // A stack's three views (ortho.js); a 2D image has none, nor their keys.
  const threeViews = Object.keys(ortho?.views ?? {}).length ? [
    { keys: { t: () => ortho.setLayout(ortho.layout === '3' ? '1' : '3') },
      what: 'one view / three views (XY, XZ, YZ)' },
    { shown: 'Alt-drag', what: 'move the three views\' cursor in any view (a click with select or merge moves it too)' },
  ] : [];
  return [
    ...toolBindings((name) => editor.setTool(name), (name) => editor.offers(name)),
    { keys: { ',': planeBy(-1), PageDown: planeBy(-1), '.': planeBy(1), PageUp: planeBy(1) },
      shown: ', .  PgDn PgUp', what: 'previous / next plane' },
    ...threeViews,
    { keys: { n: () => selection.nextUncertain() },
      what: 'next uncertain nucleus (in your region): jump there and zoom in' },
    { keys: { y: () => editor.checkSelected() },
      what: 'check the selected nucleus: it is right (a correction of its own, kept by a new segmentation)' },
    { keys: { o: () => overlay.outline.click() }, what: 'labels as outlines only' },
    { keys: { l: () => overlay.visible.click() }, what: 'labels on / off' },
    { keys: { h: () => overlay.heat.click() }, what: 'uncertainty heat map' },
    { keys: { c: () => { colouring.shuffle(); hooks.coloured(colouring.seed); } }, // every view repaints
      what: 'shuffle the label colours (touching nuclei always differ)' },
    { keys: { d: () => mesh.toggle() }, what: '3D view of the selected nucleus and its neighbours' },
    { keys: { '[': () => controls.stepBrush(-1), ']': () => controls.stepBrush(1) }, shown: '[ ]',
      what: 'brush radius smaller / larger' },
    { keys: { Enter: () => editor.enter() },
      what: 'finish an outline; merge the selected nuclei; apply an interpolation' },
    { keys: { Escape: () => { if (help.open) help.hide(); else if (!editor.escape()) selection.select([]); } },
      shown: 'Esc', what: 'drop the drawing in progress, then the selection; close this help' },
    { keys: { Delete: removeLast, Backspace: removeLast }, shown: 'Del  Backspace',
      what: 'remove the last point of an outline; delete the selected nuclei' },
    { shown: 'shift-click', what: 'add a nucleus to the selection (select tool); remove it (merge tool)' },
    { keys: { 'Ctrl+z': () => editor.undo() }, shown: 'Ctrl Z', what: 'undo this page\'s last edit' },
    { keys: { 'Ctrl+Shift+z': redo, 'Ctrl+y': redo, 'Ctrl+Shift+y': redo }, shown: 'Ctrl Shift Z  Ctrl Y',
      what: 'redo' },
    { keys: { '?': () => help.toggle() }, what: 'this help' },
  ];
}
