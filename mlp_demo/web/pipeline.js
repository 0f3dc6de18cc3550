// The pad's pipeline in the browser: a drawing -> the 28x28 field MNIST would have made of it
// -> the MLP's forward pass -> the ten softmax probabilities. Plain JavaScript on typed arrays,
// no dependencies. It mirrors mlp_demo/drawing.py step for step (same constants, Python's
// rounding, Pillow's Lanczos weights), and tests/test_browser_pipeline.py holds the two to it.
// The app's pad and the static page (`python -m mlp_demo web OUT/`) run this one file.

export const FIELD = 28, BOX = 20, WORK_SIZE = 4 * BOX;
export const INK_THRESHOLD = 0.25, MIN_INK_FRACTION = 0.002;
export const STROKE_WIDTH_IN_FIELD = 2.4, MAX_RADIUS = WORK_SIZE / 8;
export const MNIST_MEAN = 0.1307, MNIST_STD = 0.3081;
const MAX_HEADER_BYTES = 64 * 1024;

// An image: {w, h, data: Float32Array(w * h)}, row by row, ink in [0, 1].
const image = (w, h, data) => ({ w, h, data: data || new Float32Array(w * h) });

/** Python's round(): halves go to the even neighbour (round(2.5) == 2). */
export function roundHalfEven(x) {
  const f = Math.floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Canvas RGBA -> ink on a 0 background, scaled to [0, 1] (drawing.to_ink). */
export function toInk(rgba, w, h) {
  const n = w * h, ink = new Float32Array(n);
  let aLow = 255, aHigh = 0;
  for (let i = 0; i < n; i++) { const a = rgba[4 * i + 3]; if (a < aLow) aLow = a; if (a > aHigh) aHigh = a; }
  if (aLow < aHigh) {
    for (let i = 0; i < n; i++) ink[i] = rgba[4 * i + 3];  // painted on transparency: alpha is ink
  } else {
    let sum = 0;
    for (let i = 0; i < n; i++) { ink[i] = (rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3; sum += ink[i]; }
    const border = [];
    for (let x = 0; x < w; x++) border.push(ink[x], ink[(h - 1) * w + x]);
    for (let y = 0; y < h; y++) border.push(ink[y * w], ink[y * w + w - 1]);
    border.sort((a, b) => a - b);
    const m = border.length >> 1, median = border.length % 2 ? border[m] : (border[m - 1] + border[m]) / 2;
    if (median > sum / n) {  // dark on light: invert
      let top = 0;
      for (let i = 0; i < n; i++) if (ink[i] > top) top = ink[i];
      for (let i = 0; i < n; i++) ink[i] = top - ink[i];
    }
  }
  let low = Infinity, high = -Infinity;
  for (let i = 0; i < n; i++) { if (ink[i] < low) low = ink[i]; if (ink[i] > high) high = ink[i]; }
  for (let i = 0; i < n; i++) ink[i] = high > low ? (ink[i] - low) / (high - low) : 0;
  return image(w, h, ink);
}

function peak(im) {
  let top = -Infinity;
  for (const v of im.data) if (v > top) top = v;
  return top;
}

function inkCount(im) {
  let count = 0;
  for (const v of im.data) if (v > INK_THRESHOLD) count++;
  return count;
}

export function cropToInk(im) {
  let top = im.h, bottom = -1, left = im.w, right = -1;
  for (let y = 0; y < im.h; y++) for (let x = 0; x < im.w; x++) {
    if (im.data[y * im.w + x] > INK_THRESHOLD) {
      if (y < top) top = y; if (y > bottom) bottom = y; if (x < left) left = x; if (x > right) right = x;
    }
  }
  const out = image(right - left + 1, bottom - top + 1);
  for (let y = 0; y < out.h; y++) out.data.set(im.data.subarray((top + y) * im.w + left, (top + y) * im.w + right + 1), y * out.w);
  return out;
}

const sinc = (x) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

/** Pillow's Lanczos weights for one axis (drawing.lanczos_weights): for each output pixel,
 * the first input pixel it reads and the weights from there. */
export function lanczosWeights(sizeIn, sizeOut) {
  const scale = sizeIn / sizeOut, stretch = Math.max(scale, 1), support = 3 * stretch, out = [];
  for (let i = 0; i < sizeOut; i++) {
    const centre = (i + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - support + 0.5), 0);
    const last = Math.min(Math.trunc(centre + support + 0.5), sizeIn);
    const k = new Float64Array(last - first);
    let total = 0;
    for (let x = first; x < last; x++) {
      const t = (x - centre + 0.5) / stretch;
      k[x - first] = t >= -3 && t < 3 ? sinc(t) * sinc(t / 3) : 0;
      total += k[x - first];
    }
    if (total) for (let j = 0; j < k.length; j++) k[j] /= total;
    out.push({ first, k });
  }
  return out;
}

/** Scale so the longer side is longerSide pixels (drawing._resize): rows, then columns. */
export function resize(im, longerSide, onlyShrink = false) {
  const scale = longerSide / Math.max(im.w, im.h);
  if (onlyShrink && scale >= 1) return im;
  const w = Math.max(1, roundHalfEven(im.w * scale)), h = Math.max(1, roundHalfEven(im.h * scale));
  const across = lanczosWeights(im.w, w), down = lanczosWeights(im.h, h);
  const rows = image(w, im.h), out = image(w, h);
  for (let y = 0; y < im.h; y++) {
    for (let x = 0; x < w; x++) {
      const { first, k } = across[x];
      let sum = 0;
      for (let j = 0; j < k.length; j++) sum += im.data[y * im.w + first + j] * k[j];
      rows.data[y * w + x] = sum;  // stored as float32, as Pillow stores its first pass
    }
  }
  for (let y = 0; y < h; y++) {
    const { first, k } = down[y];
    for (let x = 0; x < w; x++) {
      let sum = 0;
      for (let j = 0; j < k.length; j++) sum += rows.data[(first + j) * w + x] * k[j];
      out.data[y * w + x] = Math.min(Math.max(sum, 0), 1);
    }
  }
  return out;
}

/** Each pixel's max (grow) or min (shrink) over a square window, cut at the edges: PyTorch's
 * max_pool2d with stride 1 and same-size padding. Separable: rows, then columns. */
function squareFilter(im, radius, grow) {
  const sign = grow ? 1 : -1;  // a min is a max of the negated values
  const line = (src, dst, start, step, count) => {
    for (let i = 0; i < count; i++) {
      let best = -Infinity;
      const to = Math.min(count - 1, i + radius);
      for (let j = Math.max(0, i - radius); j <= to; j++) {
        const v = sign * src[start + j * step];
        if (v > best) best = v;
      }
      dst[start + i * step] = sign * best;
    }
  };
  const pass = image(im.w, im.h), out = image(im.w, im.h);
  for (let y = 0; y < im.h; y++) line(im.data, pass.data, y * im.w, 1, im.w);
  for (let x = 0; x < im.w; x++) line(pass.data, out.data, x, im.w, im.h);
  return out;
}

/** Mean width of the strokes: ink area over half the boundary length (drawing.stroke_width). */
export function strokeWidth(im) {
  const mask = image(im.w, im.h);
  let area = 0;
  for (let i = 0; i < mask.data.length; i++) { mask.data[i] = im.data[i] > INK_THRESHOLD ? 1 : 0; area += mask.data[i]; }
  let eroded = 0;
  for (const v of squareFilter(mask, 1, false).data) eroded += v;
  const boundary = area - eroded;
  return boundary ? (2 * area) / boundary : Math.max(im.w, im.h);
}

function normaliseStroke(crop, scale) {
  const width = strokeWidth(crop), target = STROKE_WIDTH_IN_FIELD / scale;
  const radius = Math.min(Math.max(roundHalfEven((target - width) / 2), -MAX_RADIUS), MAX_RADIUS);
  if (radius === 0) return crop;
  const pad = Math.abs(radius), padded = image(crop.w + 2 * pad, crop.h + 2 * pad);
  for (let y = 0; y < crop.h; y++) padded.data.set(crop.data.subarray(y * crop.w, (y + 1) * crop.w), (y + pad) * padded.w + pad);
  const out = squareFilter(padded, pad, radius > 0);
  if (radius < 0 && inkCount(out) < 0.3 * inkCount(crop)) return crop;  // never erode a stroke away
  return out;
}

function divided(im, by) {
  const out = image(im.w, im.h);
  for (let i = 0; i < out.data.length; i++) out.data[i] = im.data[i] / by;
  return out;
}

function centreByMass(small) {
  let mass = 0, my = 0, mx = 0;
  for (let y = 0; y < small.h; y++) for (let x = 0; x < small.w; x++) {
    const v = small.data[y * small.w + x];
    mass += v; my += y * v; mx += x * v;
  }
  const clip = (v, hi) => Math.min(Math.max(v, 0), hi);
  const snap = (v) => Math.round(v * 1000) / 1000;  // as drawing.py: float noise never decides a half
  const top = clip(roundHalfEven(snap(FIELD / 2 - 0.5 - my / mass)), FIELD - small.h);
  const left = clip(roundHalfEven(snap(FIELD / 2 - 0.5 - mx / mass)), FIELD - small.w);
  const out = image(FIELD, FIELD);
  for (let y = 0; y < small.h; y++) out.data.set(small.data.subarray(y * small.w, (y + 1) * small.w), (top + y) * FIELD + left);
  return out;
}

/** Each stage (drawing.preprocess_steps): the ink, cropped, fitted into 20x20 with strokes at
 * MNIST's width, centred by mass in 28x28; null when the pad is blank. */
export function preprocessSteps(ink) {
  if (inkCount(ink) < Math.max(4, MIN_INK_FRACTION * ink.w * ink.h)) return null;
  const cropped = cropToInk(ink);
  let crop = resize(cropped, WORK_SIZE, true);
  crop = divided(crop, peak(crop));
  crop = cropToInk(normaliseStroke(crop, BOX / Math.max(crop.w, crop.h)));
  let small = resize(crop, BOX);
  small = divided(small, Math.max(peak(small), 1e-6));
  return { pad: ink, cropped, fitted: small, centred: centreByMass(small) };
}

/** A safetensors checkpoint (8-byte header length, JSON header, raw little-endian data) ->
 * the MLP's layers. Only what mlp_demo writes: float32 Linear layers, 784 in, 10 out. */
export function readCheckpoint(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 8) throw new Error("not a safetensors file");
  const size = Number(view.getBigUint64(0, true));
  if (size > MAX_HEADER_BYTES || 8 + size > buffer.byteLength) throw new Error("not a checkpoint of this app");
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, size)));
  const meta = header.__metadata__ || {};
  const config = JSON.parse(meta.config || "{}");
  const indices = [...new Set(Object.keys(header).filter((k) => k !== "__metadata__").map((k) => parseInt(k, 10)))]
    .sort((a, b) => a - b);
  const tensor = (name) => {
    const t = header[name];
    if (!t || t.dtype !== "F32") throw new Error(`${name}: not a float32 tensor`);
    const [begin, end] = t.data_offsets;
    return new Float32Array(buffer.slice(8 + size + begin, 8 + size + end));
  };
  let width = FIELD * FIELD;
  const layers = indices.map((i) => {
    const shape = header[`${i}.weight`] && header[`${i}.weight`].shape;
    if (!shape || shape[1] !== width) throw new Error("the layers do not fit together");
    width = shape[0];
    return { rows: shape[0], cols: shape[1], weight: tensor(`${i}.weight`), bias: tensor(`${i}.bias`) };
  });
  if (!layers.length || width !== 10) throw new Error("not a 10-class MLP");
  if (!(config.activation in ACTIVATIONS)) throw new Error(`unknown activation ${config.activation}`);
  return { layers, activation: config.activation, hidden: config.hidden || [], name: meta.name || null };
}

function erf(x) {  // Abramowitz and Stegun 7.1.26: within 1.5e-7
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

export const ACTIVATIONS = {
  relu: (v) => (v > 0 ? v : 0),
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),  // nn.GELU's exact form
  tanh: Math.tanh,
  sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  leaky_relu: (v) => (v > 0 ? v : 0.01 * v),
};

/** The first layer, arranged for a mostly blank field: normalising (f - mean) / std turns
 * every blank pixel into a constant, so that part is folded into the biases once, and then only
 * the inked pixels' columns (stored one after another) are added up. */
function firstLayer(layer) {
  const { rows, cols, weight } = layer, columns = new Float32Array(rows * cols), bias = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < cols; c++) { columns[c * rows + r] = weight[r * cols + c]; sum += weight[r * cols + c]; }
    bias[r] = layer.bias[r] - (MNIST_MEAN / MNIST_STD) * sum;
  }
  return { columns, bias };
}

/** The ten softmax probabilities for a 28x28 field in [0, 1] (model.predict_proba). */
export function predict(model, field) {
  const act = ACTIVATIONS[model.activation], [first, ...rest] = model.layers;
  first.folded = first.folded || firstLayer(first);
  const sums = Float64Array.from(first.folded.bias);
  for (let c = 0; c < first.cols; c++) {
    const v = field[c] / MNIST_STD;
    if (v === 0) continue;
    const column = first.folded.columns.subarray(c * first.rows, (c + 1) * first.rows);
    for (let r = 0; r < first.rows; r++) sums[r] += column[r] * v;
  }
  let x = Float32Array.from(sums, (v) => (rest.length ? act(v) : v));
  rest.forEach((layer, n) => {
    const y = new Float32Array(layer.rows), last = n === rest.length - 1;
    for (let r = 0; r < layer.rows; r++) {
      let sum = layer.bias[r];
      const row = r * layer.cols;
      for (let c = 0; c < layer.cols; c++) sum += layer.weight[row + c] * x[c];
      y[r] = last ? sum : act(sum);
    }
    x = y;
  });
  let top = -Infinity, total = 0;
  for (const v of x) if (v > top) top = v;
  const probs = Array.from(x, (v) => Math.exp(v - top));
  for (const p of probs) total += p;
  return probs.map((p) => p / total);
}

/** Canvas RGBA -> {steps, field (784 numbers), probs} in one pass, or null for a blank pad. */
export function read(model, rgba, w, h) {
  const steps = preprocessSteps(toInk(rgba, w, h));
  if (!steps) return null;
  return { steps, field: steps.centred.data, probs: model ? predict(model, steps.centred.data) : null };
}
