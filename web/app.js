// The demo page: WebGPU check, training loop with a live chart, test-image grid, drawing pad,
// checkpoints. `window.app` exposes the same actions to scripts (the browser test uses it).
import init, { Demo, webgpuAvailable } from "./pkg/hetconv_web.js";

const $ = (id) => document.getElementById(id);
const status = $("gpu-status");
const history = [];          // {step, loss, accuracy}
let demo = null;
let classNames = [];
let training = false;

function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
}

// Runs a user action; an error is shown in `el` (never lost in an unhandled rejection).
async function act(el, action) {
  try {
    return await action();
  } catch (e) {
    setStatus(el, String(e), "error");
  }
}

// What must not run beside a training step: it would find the model busy or change it.
const STEP_EXCLUSIVE = ["new-model", "predict", "classify", "save", "ckpt-file", "image-file"];
function setTraining(on) {
  training = on;
  $("train").disabled = on;
  $("pause").disabled = !on;
  for (const id of STEP_EXCLUSIVE) $(id).disabled = on;
}

// Clears what described the previous model: the curves, the counters, the grid, the ranking.
function forgetResults(step = 0) {
  history.length = 0;
  drawChart();
  $("stat-step").textContent = String(step);
  for (const id of ["stat-loss", "stat-acc", "stat-speed"]) $(id).textContent = "–";
  $("grid").innerHTML = "";
  setStatus($("test-acc"), "");
  $("top").innerHTML = "<li>Draw a piece of clothing (white on black), then press Classify.</li>";
}

function options() {
  return {
    model: $("model").value,
    part: Number($("part").value),
    width: Number($("width").value),
    batch: Number($("batch").value),
    // An empty field is no learning rate (Number("") would be 0): the model refuses NaN by name.
    lr: $("lr").value.trim() === "" ? NaN : Number($("lr").value),
  };
}

function showModelInfo(info) {
  classNames = info.class_names;
  $("stat-flops").textContent = info.paper_flops;
  $("stat-params").textContent = (info.params / 1e3).toFixed(1) + "k";
}

function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#dde2ec";
  ctx.fillStyle = "#5b6475";
  ctx.font = "12px system-ui";
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (h - pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 8, y); ctx.stroke();
  }
  if (history.length < 2) { ctx.fillText("the curves appear here while training", pad + 8, h / 2); return; }
  const maxLoss = Math.max(...history.map((p) => p.loss), 0.5);
  const last = history[history.length - 1].step, first = history[0].step;
  const x = (s) => pad + (w - pad - 8) * (s - first) / Math.max(1, last - first);
  const line = (color, value) => {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    history.forEach((p, i) => { const y = pad / 2 + (h - pad) * (1 - value(p)); i ? ctx.lineTo(x(p.step), y) : ctx.moveTo(x(p.step), y); });
    ctx.stroke(); ctx.lineWidth = 1;
  };
  line("#2357d9", (p) => p.loss / maxLoss);
  line("#e08a00", (p) => p.accuracy);
  ctx.fillStyle = "#5b6475";
  ctx.fillText(`loss ${maxLoss.toFixed(1)}`, 2, pad / 2 + 4);
  ctx.fillText("0", 12, h - pad / 2 + 4);
  ctx.fillText(`step ${last}`, w - 70, h - 2);
}

async function trainSteps(n) {
  const losses = [];
  const t0 = performance.now();
  let images = 0;
  for (let i = 0; i < n && (training || n !== Infinity); i++) {
    const r = await demo.step();
    images += r.images;
    if (r.loss !== null && r.loss !== undefined) {
      losses.push(r.loss);
      history.push({ step: r.step, loss: r.loss, accuracy: r.accuracy });
      $("stat-step").textContent = r.step;
      $("stat-loss").textContent = r.loss.toFixed(3);
      $("stat-acc").textContent = (100 * r.accuracy).toFixed(0) + "%";
      $("stat-speed").textContent = (images / ((performance.now() - t0) / 1000)).toFixed(0);
      drawChart();
    }
    if (n === Infinity) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return losses;
}

function drawDigit(canvas, pixels) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = pixels[i];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

async function predictTest(count) {
  const predictions = await demo.predictTest(count);
  const grid = $("grid");
  grid.innerHTML = "";
  let right = 0;
  for (const p of predictions) {
    const cell = document.createElement("div");
    const ok = p.predicted === p.label;
    right += ok;
    cell.className = "cell " + (ok ? "right" : "wrong");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    drawDigit(canvas, demo.testImage(p.index));
    cell.append(canvas);
    cell.insertAdjacentHTML("beforeend", `<div class="pred">${classNames[p.predicted]}</div><div class="truth">true: ${classNames[p.label]}</div>`);
    grid.append(cell);
  }
  setStatus($("test-acc"), `${right} of ${predictions.length} right`);
  return predictions;
}

// Drawing pad: 224x224 shown, 28x28 classified.
const pad = $("pad");
const padCtx = pad.getContext("2d");
function clearPad() { padCtx.fillStyle = "#000"; padCtx.fillRect(0, 0, pad.width, pad.height); }
function padPixels() {
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const ctx = small.getContext("2d");
  ctx.drawImage(pad, 0, 0, 28, 28);
  const data = ctx.getImageData(0, 0, 28, 28).data;
  const out = new Float32Array(784);
  for (let i = 0; i < 784; i++) out[i] = (data[4 * i] + data[4 * i + 1] + data[4 * i + 2]) / (3 * 255);
  return out;
}
let drawing = false;
pad.addEventListener("pointerdown", (e) => { drawing = true; stroke(e); });
pad.addEventListener("pointermove", (e) => drawing && stroke(e));
window.addEventListener("pointerup", () => { drawing = false; });
function stroke(e) {
  const r = pad.getBoundingClientRect();
  padCtx.fillStyle = "#fff";
  padCtx.beginPath();
  padCtx.arc((e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height, 11, 0, 2 * Math.PI);
  padCtx.fill();
}

async function classifyPad() {
  const probabilities = await demo.classify(padPixels());
  setStatus($("pad-status"), "");
  const ranked = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  $("top").innerHTML = ranked.map(([p, i]) => `<li>${classNames[i]} — ${(100 * p).toFixed(1)}%<span class="bar" style="width:${Math.round(120 * p)}px"></span></li>`).join("");
  return probabilities;
}

function imageToPad(file) {
  const img = new Image();
  const url = URL.createObjectURL(file);
  img.onload = () => {
    URL.revokeObjectURL(url);
    clearPad();
    const s = Math.min(pad.width / img.width, pad.height / img.height);
    padCtx.drawImage(img, (pad.width - img.width * s) / 2, (pad.height - img.height * s) / 2, img.width * s, img.height * s);
    act($("pad-status"), classifyPad);
  };
  img.onerror = () => {
    URL.revokeObjectURL(url);
    setStatus($("pad-status"), `${file.name}: not an image this browser can decode`, "error");
  };
  img.src = url;
}

async function loadCheckpoint(bytes) {
  const o = options();
  const info = await demo.loadCheckpoint(bytes, o.batch, o.lr);
  showModelInfo(info);
  forgetResults(info.step);
  // A checkpoint of a network the selector does not list (resnet56, resnet18, ...) adds it.
  if (![...$("model").options].some((o) => o.value === info.name)) {
    $("model").add(new Option(info.model.replace("HetConv ", ""), info.name));
  }
  $("model").value = info.name;
  $("width").disabled = info.name !== "vgg16";
  // The selector shows the loaded P (added where the list lacks it), so New model builds it.
  if (![...$("part").options].some((o) => Number(o.value) === info.parts)) {
    $("part").add(new Option(String(info.parts), String(info.parts)));
  }
  $("part").value = String(info.parts);
  const shape = info.widths.length ? `, widths ${info.widths.join(",")}` : "";
  setStatus($("ckpt-status"), `loaded: ${info.model}, P=${info.parts}${shape}`, "ok");
  return info;
}

async function saveCheckpoint() {
  const bytes = await demo.saveCheckpoint();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  a.download = "hetconv-browser.safetensors";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
  setStatus($("ckpt-status"), `saved ${(bytes.length / 1024).toFixed(0)} KiB`, "ok");
}

function wire() {
  // The width scales the VGG; a ResNet has its paper's widths.
  $("model").onchange = () => { $("width").disabled = $("model").value !== "vgg16"; };
  $("new-model").onclick = () => act($("train-status"), () => {
    const o = options();
    // An error (a learning rate that is not a number, ...) leaves the current model as it was.
    demo.reset(o.model, o.part, o.width, o.batch, o.lr, BigInt(Date.now() % 1000));
    showModelInfo(demo.modelInfo());
    forgetResults();
    setStatus($("train-status"), "");
  });
  $("train").onclick = async () => {
    setTraining(true);
    setStatus($("train-status"), "");
    try { await trainSteps(Infinity); } catch (e) { setStatus($("train-status"), "training stopped: " + e, "error"); }
    setTraining(false);
  };
  $("pause").onclick = () => { training = false; };
  $("predict").onclick = () => act($("test-acc"), () => predictTest(24));
  $("clear").onclick = clearPad;
  $("classify").onclick = () => act($("pad-status"), classifyPad);
  $("image-file").onchange = (e) => e.target.files[0] && imageToPad(e.target.files[0]);
  pad.addEventListener("dragover", (e) => e.preventDefault());
  pad.addEventListener("drop", (e) => { e.preventDefault(); e.dataTransfer.files[0] && imageToPad(e.dataTransfer.files[0]); });
  $("ckpt-file").onchange = async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    await act($("ckpt-status"), async () => loadCheckpoint(new Uint8Array(await file.arrayBuffer())));
  };
  $("save").onclick = () => act($("ckpt-status"), saveCheckpoint);
}

async function start() {
  await init();
  if (!webgpuAvailable()) {
    setStatus(status, "This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or Firefox Nightly, or enable WebGPU in the browser's settings.", "error");
    document.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    throw new Error("no WebGPU");
  }
  const o = options();
  try {
    demo = await Demo.create(o.model, o.part, o.width, o.batch, o.lr);
  } catch (e) {
    setStatus(status, "WebGPU is present but no GPU device could be opened: " + e, "error");
    throw e;
  }
  const precision = demo.precision() === "mixed"
    ? "mixed precision (shader-f16: f16 products and activations, f32 sums and weights)"
    : "f32 (this browser offers no shader-f16)";
  setStatus(status, "GPU: " + demo.adapter() + "; " + precision, "ok");
  showModelInfo(demo.modelInfo());
  clearPad();
  drawChart();
  wire();
}

window.app = {
  ready: start(),
  adapter: () => demo.adapter(),
  precision: () => demo.precision(),
  trainSteps,
  predictTest,
  loadCheckpoint,
  evaluate: (limit) => demo.evaluate(limit),
  classify: (pixels) => demo.classify(pixels),
  setKernels: (kernels) => demo.setKernels(kernels),
  modelInfo: () => demo.modelInfo(),
  testImage: (index) => demo.testImage(index),
  kernelChoices: () => JSON.parse(demo.kernelChoices()),
};
