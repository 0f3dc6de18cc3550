// The drawing pad: Pointer Events (mouse, finger, pen), a brush width, Undo and Clear, and the
// ten probabilities redrawn while the pen moves (at most once per animation frame), computed
// here by pipeline.js on the chosen model's weights, fetched once from their content-hash URL.
// When the pen lifts, the 28x28 field goes to the server (for Why this prediction, labels and
// teaching), which reads it again itself. Mounted once per tab; later renders only pass new
// data (another model, the live model's newer weights).
//
// This file is appended to pipeline.js: the two make one module (read, readCheckpoint, FIELD).

const SIZE = 280;
const MAX_PHOTO_BYTES = 8 * 2 ** 20;
const PHOTO_SIDE = 560;  // a photo is read at most this large: a phone's 12 MP is no sharper a 28x28
const BLANK_TEXT = "Draw a digit on the black pad: the prediction appears as you draw.";
const pads = new WeakMap();  // the component's root -> its pad, across renders

export default function (component) {
  const root = component.parentElement;
  let pad = pads.get(root);
  if (!pad) {
    pad = createPad(root.querySelector(".mlp-pad"));
    pads.set(root, pad);
  }
  pad.update(component);
  return undefined;
}

/** White strokes with round pens on black, as the pad shows them: [{width, points: [[x, y]]}]. */
export function paintStrokes(ctx, strokes, backdrop = null) {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, SIZE, SIZE);
  if (backdrop) ctx.drawImage(backdrop, 0, 0, SIZE, SIZE);
  ctx.strokeStyle = "#fff";
  ctx.lineCap = ctx.lineJoin = "round";
  for (const s of strokes) {
    ctx.lineWidth = s.width;
    ctx.beginPath();
    ctx.moveTo(s.points[0][0], s.points[0][1]);
    for (const [x, y] of s.points.slice(1)) ctx.lineTo(x, y);
    if (s.points.length === 1) ctx.lineTo(s.points[0][0] + 0.01, s.points[0][1]);  // a dot
    ctx.stroke();
  }
}

export function createPad(element) {
  const $ = (selector) => element.querySelector(selector);
  const canvas = $("canvas.pad"), ctx = canvas.getContext("2d", { willReadFrequently: true });
  const seen = $("canvas.seen"), seenCtx = seen.getContext("2d");
  const brush = $("input.brush"), bars = $(".bars"), predictionText = $(".prediction");
  const confidence = $(".confidence"), live = $(".announce"), note = $(".note");
  const strokes = [];
  let backdrop = null, shownPick = null, photos = 0;  // a picked test image under the strokes
  let current = null, model = null, modelUrl = null, send = () => {}, frame = 0, lastDigit = null;
  const timings = [];  // ms per update, for bench.browser (window.__padTimings)

  for (let d = 0; d < 10; d++) {
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.innerHTML = `<span class="fill"></span><span class="digit">${d}</span>`;
    bars.appendChild(bar);
  }

  const paint = () => paintStrokes(ctx, strokes, backdrop);
  const hasInk = () => strokes.length > 0 || backdrop !== null;

  function at(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (SIZE / box.width), (event.clientY - box.top) * (SIZE / box.height)];
  }

  function reading() {
    const start = performance.now();
    const found = read(model, ctx.getImageData(0, 0, SIZE, SIZE).data, SIZE, SIZE);
    timings.push(performance.now() - start);
    if (timings.length > 2000) timings.splice(0, 1000);
    return found;
  }

  function show(found) {
    predictionText.classList.toggle("blank", !(found && found.probs));
    if (!found) {
      predictionText.textContent = hasInk() ? "The pad looks blank: draw a bigger digit." : BLANK_TEXT;
      confidence.textContent = "";
      bars.querySelectorAll(".fill").forEach((f) => { f.style.height = "0%"; });
      bars.setAttribute("aria-label", "No probabilities yet");
      seenCtx.clearRect(0, 0, FIELD, FIELD);
      return;
    }
    const pixels = seenCtx.createImageData(FIELD, FIELD);
    found.field.forEach((v, i) => {
      const g = Math.round(v * 255);
      pixels.data.set([g, g, g, 255], 4 * i);
    });
    seenCtx.putImageData(pixels, 0, 0);
    if (!found.probs) {  // no weights yet (the live run's first step, or still loading)
      predictionText.textContent = note.textContent || "Loading the model…";
      confidence.textContent = "";
      bars.querySelectorAll(".fill").forEach((f) => { f.style.height = "0%"; });
      bars.setAttribute("aria-label", "No probabilities yet");
      return;
    }
    const digit = found.probs.indexOf(Math.max(...found.probs));
    predictionText.textContent = `Prediction: ${digit}`;
    confidence.textContent = `confidence ${(100 * found.probs[digit]).toFixed(1)}%`;
    bars.querySelectorAll(".bar").forEach((bar, d) => {
      bar.querySelector(".fill").style.height = `${(100 * found.probs[d]).toFixed(1)}%`;
      bar.classList.toggle("top", d === digit);
    });
    bars.setAttribute("aria-label", "Probabilities: " + found.probs
      .map((p, d) => `${d}: ${(100 * p).toFixed(0)}%`).join(", "));
    lastDigit = digit;
  }

  function announce(found) {  // the polite live region speaks once per drawing, not per frame
    const top = found && found.probs ? Math.max(...found.probs) : null;
    live.textContent = top === null ? predictionText.textContent
      : `The network reads ${found.probs.indexOf(top)}, confidence ${(100 * top).toFixed(0)} percent.`;
  }

  function update() {
    frame = 0;
    show(reading());
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(update);
  }

  function penUp() {  // the stroke is done: read it now, tell the server, speak it
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    const found = reading();
    show(found);
    announce(found);
    send(found ? Array.from(found.field, (v) => Math.round(v * 1e4) / 1e4) : null);
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 && event.pointerType === "mouse") return;
    canvas.setPointerCapture(event.pointerId);
    current = { width: Number(brush.value), points: [at(event)] };
    strokes.push(current);
    paint();
    schedule();
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) current.points.push(at(e));
    paint();
    schedule();
  });
  const end = () => {
    if (!current) return;
    current = null;
    penUp();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("button.undo").addEventListener("click", () => {
    if (strokes.length) strokes.pop(); else backdrop = null;
    paint();
    penUp();
  });
  $("button.clear").addEventListener("click", () => { strokes.length = 0; backdrop = null; paint(); penUp(); });
  $("button.photo").setAttribute("aria-label", "Upload a photo of a digit (no drawing needed)");
  $("button.photo").addEventListener("click", () => {
    // A chooser made for each click and never put in the page: the page's own file inputs stay
    // the app's (uploads of models and examples), and the same file can be chosen again.
    const chooser = document.createElement("input");
    chooser.type = "file";
    chooser.accept = "image/png,image/jpeg,image/gif,image/webp,image/bmp";
    chooser.addEventListener("change", async () => {
      if (chooser.files[0]) note.textContent = await readPhoto(chooser.files[0]);
    });
    chooser.click();
  });

  /** A photo or scan of a digit, read in this browser (nothing is uploaded): preprocessed the
   * MNIST way as a drawing is, then put on the pad like a test digit. Returns what to say. */
  async function readPhoto(file) {
    if (file.size > MAX_PHOTO_BYTES) return `This photo is ${(file.size / 2 ** 20).toFixed(1)} MB; at most 8 MB.`;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (error) {
      return "This file is not a PNG, JPEG, GIF, WebP or BMP image the browser can read.";
    }
    const scale = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));  // enough to read
    const w = Math.max(1, Math.round(bitmap.width * scale)), h = Math.max(1, Math.round(bitmap.height * scale));
    const work = document.createElement("canvas");
    work.width = w;
    work.height = h;
    const workCtx = work.getContext("2d", { willReadFrequently: true });
    workCtx.fillStyle = "#fff";  // a transparent background reads as paper
    workCtx.fillRect(0, 0, w, h);
    workCtx.drawImage(bitmap, 0, 0, w, h);
    bitmap.close();
    const steps = preprocessSteps(toInk(workCtx.getImageData(0, 0, w, h).data, w, h));
    if (!steps) return "No digit was found in this photo: a dark digit on light paper (or the reverse), filling most of it, works best.";
    showPick({ field: Array.from(steps.centred.data), n: `photo ${++photos}` });
    return "The photo is on the pad, as the network sees it.";
  }

  function showPick(pick) {  // an MNIST test image, enlarged onto the pad, read like a drawing
    const small = document.createElement("canvas");
    small.width = small.height = FIELD;
    const pixels = small.getContext("2d").createImageData(FIELD, FIELD);
    pick.field.forEach((v, i) => { const g = Math.round(255 * v); pixels.data.set([g, g, g, 255], 4 * i); });
    small.getContext("2d").putImageData(pixels, 0, 0);
    strokes.length = 0;
    backdrop = small;
    paint();
    penUp();
  }
  brush.addEventListener("input", () => { $(".brush-value").textContent = brush.value; });
  paint();
  show(null);
  window.__padTimings = timings;

  async function load(url) {
    modelUrl = url;
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const loaded = readCheckpoint(await response.arrayBuffer());
      if (modelUrl !== url) return loaded;  // another model was chosen meanwhile
      model = loaded;
      note.textContent = "";
      if (hasInk()) { const found = reading(); show(found); announce(found); }
      return loaded;
    } catch (error) {
      // A live run's older weights may be withdrawn as newer ones come: keep the ones we have.
      if (modelUrl !== url || (model && url.includes("/run-"))) return null;
      model = null;
      note.textContent = `This model could not be loaded in the browser (${error.message}).`;
      if (hasInk()) show(reading());
      return null;
    }
  }

  return {
    update({ data, setStateValue }) {
      send = (field) => setStateValue("field", field);
      const pick = data && data.show;
      if (pick && pick.n !== shownPick && Array.isArray(pick.field) && pick.field.length === FIELD * FIELD) {
        shownPick = pick.n;
        queueMicrotask(() => showPick(pick));
      }
      const wanted = data && data.model;
      if (wanted && wanted !== modelUrl) load(wanted);
      if (!wanted) {
        model = null;
        modelUrl = null;
        note.textContent = (data && data.note) || "";
        if (hasInk()) show(reading());
      }
    },
    load,  // the static page opens a model file the same way
    set onField(f) { send = f; },
    get digit() { return lastDigit; },
  };
}
