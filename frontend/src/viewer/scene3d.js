/**
 * The three.js side of the 3D view (mesh3d.js loads this module only when the view is first
 * opened, so the viewer's first load does not carry three.js): a scene with the nucleus'
 * surface, its neighbours' (translucent), a red ring at the waist plane, lit from the viewer,
 * turned with OrbitControls. Coordinates: the server's (z, y, x) µm become three.js
 * (x, z, -y), z up and the handedness kept.
 */

import {
  AmbientLight, BufferAttribute, BufferGeometry, Color, DirectionalLight, DoubleSide, Group, LineBasicMaterial,
  LineLoop, Mesh, MeshLambertMaterial, PerspectiveCamera, Scene, Vector3, WebGLRenderer,
} from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

function geometryOf(mesh, centre) {
  const v = mesh.vertices;
  const positions = new Float32Array(v.length);
  for (let i = 0; i < v.length; i += 3) {
    positions[i] = v[i + 2] - centre[2];
    positions[i + 1] = v[i] - centre[0];
    positions[i + 2] = -(v[i + 1] - centre[1]);
  }
  const geometry = new BufferGeometry();
  geometry.setAttribute('position', new BufferAttribute(positions, 3));
  geometry.setIndex(mesh.faces);
  geometry.computeVertexNormals();
  return geometry;
}

const rgb = ([r, g, b]) => new Color(r / 255, g / 255, b / 255);

function waistRing(view, centre, radius) {
  const [vz] = view.voxel_size;
  const points = [];
  for (let k = 0; k < 64; k += 1) {
    const a = (k / 64) * Math.PI * 2;
    points.push(Math.cos(a) * radius, view.waist_z * vz - centre[0], Math.sin(a) * radius);
  }
  const ring = new BufferGeometry();
  ring.setAttribute('position', new BufferAttribute(new Float32Array(points), 3));
  return new LineLoop(ring, new LineBasicMaterial({ color: 0xff4d4d }));
}

/** A scene drawn into `canvas`; `onDraw({azimuth, polar})` after each frame (degrees). */
export function makeScene(canvas, { colourOf, onDraw }) {
  const renderer = new WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  const scene = new Scene();
  scene.background = new Color(0x11151c);
  scene.add(new AmbientLight(0xffffff, 0.55));
  const camera = new PerspectiveCamera(35, 1, 0.01, 10000);
  const light = new DirectionalLight(0xffffff, 1.6);
  light.position.set(1, 2, 3);
  camera.add(light); // the light turns with the view: the side facing you is always lit
  scene.add(camera);
  const controls = new OrbitControls(camera, canvas);
  let group = null;

  function resize() {
    const width = canvas.clientWidth || 320;
    const height = canvas.clientHeight || 240;
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
  }

  function draw() {
    renderer.render(scene, camera);
    onDraw({ azimuth: (controls.getAzimuthalAngle() * 180) / Math.PI, polar: (controls.getPolarAngle() * 180) / Math.PI });
  }
  controls.addEventListener('change', draw);

  function show(view) {
    if (group) {
      scene.remove(group);
      group.traverse((o) => { o.geometry?.dispose(); o.material?.dispose(); });
    }
    group = new Group();
    const own = view.meshes.find((m) => m.role === 'nucleus');
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < own.vertices.length; i += 3) {
      for (let a = 0; a < 3; a += 1) {
        lo[a] = Math.min(lo[a], own.vertices[i + a]);
        hi[a] = Math.max(hi[a], own.vertices[i + a]);
      }
    }
    const centre = lo.map((l, a) => (l + hi[a]) / 2); // the nucleus' box, in µm
    const size = Math.max(...hi.map((h, a) => h - lo[a]), 1);
    for (const mesh of view.meshes) {
      const nucleus = mesh.role === 'nucleus';
      const material = new MeshLambertMaterial({
        color: rgb(colourOf(mesh.label_id)), side: DoubleSide, transparent: !nucleus, opacity: nucleus ? 1 : 0.3,
        depthWrite: nucleus,
      });
      const object = new Mesh(geometryOf(mesh, centre), material);
      object.renderOrder = nucleus ? 0 : 1;
      group.add(object);
    }
    if (view.waist_z !== null && view.waist_z !== undefined) {
      group.add(waistRing(view, centre, 0.6 * Math.max(hi[1] - lo[1], hi[2] - lo[2])));
    }
    scene.add(group);
    // From the side, a little above: z stands up, as a z-merge shows best.
    const distance = size * 2.4;
    camera.near = size / 100;
    camera.far = size * 100;
    camera.position.copy(new Vector3(0, distance * 0.35, distance));
    controls.target.set(0, 0, 0);
    controls.update();
    resize();
    draw();
  }

  return {
    show,
    resize() {
      resize();
      draw();
    },
    /** Turn the view by `degrees` about the vertical axis. */
    turn(degrees) {
      const offset = camera.position.clone().sub(controls.target);
      offset.applyAxisAngle(new Vector3(0, 1, 0), (degrees * Math.PI) / 180);
      camera.position.copy(controls.target).add(offset);
      controls.update();
      draw();
    },
  };
}
