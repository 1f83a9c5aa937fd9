// End-to-end test of the demo page in Debian's headless Chromium, whose WebGPU runs on
// SwiftShader: the page loads and finds a GPU, a few training steps lower the loss, and a
// checkpoint written by the native CLI gives the same predictions in the page as in the CLI.
// Needs: web/dist built (web/build.sh), the native binary (HETCONV_BIN), chromium (CHROMIUM).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdirSync, readFileSync, existsSync, statSync } from "node:fs";
import { dirname, join, extname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const dist = join(root, "web/dist");
const artifacts = join(here, "artifacts");
const bin = process.env.HETCONV_BIN ?? join(root, "target/release/hetconv");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PREDICTED = 16;

let server, browser, page, base, native, nativeResnet;
const pageErrors = [];

function serve() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm" };
  return new Promise((done) => {
    const s = createServer((req, res) => {
      const url = decodeURIComponent(new URL(req.url, "http://x").pathname);
      const file = url.startsWith("/artifacts/") ? join(artifacts, url.slice(11)) : join(dist, url === "/" ? "index.html" : url);
      if (!file.startsWith(artifacts) && !file.startsWith(dist)) { res.writeHead(403).end(); return; }
      if (!existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
      res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
      res.end(readFileSync(file));
    });
    s.listen(0, "127.0.0.1", () => done(s));
  });
}

before(async () => {
  assert.ok(existsSync(join(dist, "pkg/hetconv_web_bg.wasm")), "build the page first: web/build.sh");
  mkdirSync(artifacts, { recursive: true });
  // A checkpoint and its predictions from the native command line.
  const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? "/tmp" };
  execFileSync(bin, ["train", "--width-mult", "0.0625", "--part", "2", "--epochs", "1", "--max-steps", "20", "--batch-size", "32",
    "--lr", "0.05", "--schedule", "constant", "--eval-limit", "100", "--out", join(artifacts, "run"), "--overwrite"], { env, stdio: "inherit" });
  execFileSync(bin, ["predict", "--weights", join(artifacts, "run/checkpoint.safetensors"), "--limit", String(PREDICTED),
    "--output", join(artifacts, "native.json")], { env, stdio: "inherit" });
  native = JSON.parse(readFileSync(join(artifacts, "native.json"), "utf8"));
  // And a small CIFAR ResNet (stride-2 HetConv, 1x1 stride-2 projections, residual sums).
  execFileSync(bin, ["train", "--model", "resnet8", "--part", "2", "--epochs", "1", "--max-steps", "10", "--batch-size", "16",
    "--lr", "0.05", "--schedule", "constant", "--eval-limit", "100", "--out", join(artifacts, "resnet"), "--overwrite"], { env, stdio: "inherit" });
  execFileSync(bin, ["predict", "--weights", join(artifacts, "resnet/checkpoint.safetensors"), "--limit", String(PREDICTED),
    "--output", join(artifacts, "native-resnet.json")], { env, stdio: "inherit" });
  nativeResnet = JSON.parse(readFileSync(join(artifacts, "native-resnet.json"), "utf8"));

  server = await serve();
  base = `http://127.0.0.1:${server.address().port}/`;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--enable-features=Vulkan", "--use-angle=vulkan", "--use-vulkan=swiftshader"],
  });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });
  page.setDefaultTimeout(300_000);
  await page.goto(base);
  await page.evaluate(() => window.app.ready);
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("the page finds WebGPU and says which adapter it uses", async () => {
  const text = await page.textContent("#gpu-status");
  assert.match(text, /^GPU: /);
  // SwiftShader offers no shader-f16: the page runs f32 and says so (mixed where it is offered).
  const precision = await page.evaluate(() => window.app.precision());
  assert.ok(["f32", "mixed"].includes(precision), precision);
  assert.match(text, precision === "mixed" ? /mixed precision/ : /f32 \(this browser offers no shader-f16\)/);
  assert.ok((await page.textContent("#stat-flops")).endsWith("M"), "the model's FLOPs are shown");
});

test("training in the page lowers the loss", async () => {
  await page.selectOption("#width", "0.0625");
  await page.selectOption("#batch", "16");
  await page.click("#new-model");
  // 40 steps, means of the first and last 8: natively, over 60 seeds of this model (width 1/16,
  // batch 16, lr 0.05, P=4) the drop was 0.32 at least; 16 steps with means of 4 failed 3 in 20
  // seeds (the page seeds each new model from the clock).
  const steps = 40, span = 8;
  const losses = await page.evaluate((n) => window.app.trainSteps(n), steps);
  assert.equal(losses.length, steps);
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, span)), last = mean(losses.slice(-span));
  assert.ok(last < first - 0.1, `loss should fall by 0.1 or more: first steps ${first.toFixed(3)}, last steps ${last.toFixed(3)} (${losses.map((l) => l.toFixed(2))})`);
});

test("a checkpoint from the native CLI predicts the same in the page", async () => {
  const predictions = await page.evaluate(async (n) => {
    const bytes = new Uint8Array(await (await fetch("/artifacts/run/checkpoint.safetensors")).arrayBuffer());
    await window.app.loadCheckpoint(bytes);
    return window.app.predictTest(n);
  }, PREDICTED);
  assert.equal(predictions.length, native.length);
  for (let i = 0; i < native.length; i++) {
    assert.equal(predictions[i].predicted, native[i].predicted, `image ${i}: page ${predictions[i].predicted}, CLI ${native[i].predicted}`);
    assert.equal(predictions[i].label, native[i].label);
    for (let c = 0; c < native[i].probabilities.length; c++) {
      assert.ok(Math.abs(predictions[i].probabilities[c] - native[i].probabilities[c]) < 1e-4, `image ${i} class ${c}`);
    }
  }
});

test("a CIFAR ResNet from the native CLI predicts the same in the page, and one trains there", async () => {
  const result = await page.evaluate(async (n) => {
    const bytes = new Uint8Array(await (await fetch("/artifacts/resnet/checkpoint.safetensors")).arrayBuffer());
    const info = await window.app.loadCheckpoint(bytes);
    return { info, predictions: await window.app.predictTest(n) };
  }, PREDICTED);
  assert.equal(result.info.name, "resnet8");
  assert.equal(await page.inputValue("#model"), "resnet8", "the model selector shows the loaded network");
  const predictions = result.predictions;
  assert.equal(predictions.length, nativeResnet.length);
  for (let i = 0; i < nativeResnet.length; i++) {
    assert.equal(predictions[i].predicted, nativeResnet[i].predicted, `image ${i}: page ${predictions[i].predicted}, CLI ${nativeResnet[i].predicted}`);
    for (let c = 0; c < nativeResnet[i].probabilities.length; c++) {
      assert.ok(Math.abs(predictions[i].probabilities[c] - nativeResnet[i].probabilities[c]) < 1e-4, `image ${i} class ${c}`);
    }
  }
  // A new ResNet-8 from the selector trains: finite losses, and its size is shown.
  await page.selectOption("#model", "resnet8");
  await page.click("#new-model");
  const info = await page.evaluate(() => window.app.modelInfo());
  assert.equal(info.model, "HetConv ResNet-8");
  const losses = await page.evaluate(() => window.app.trainSteps(4));
  assert.equal(losses.length, 4);
  assert.ok(losses.every(Number.isFinite), `${losses}`);
  await page.selectOption("#model", "vgg16");
  await page.click("#new-model");
});

test("the GEMM core's tile shapes predict the same in the page (the browser's WGSL compiler)", async () => {
  for (const kernels of ["gemm:64x64/4x4/k16", "gemm:8x64/2x4/k16"]) {
    let predictions = await page.evaluate(async ([n, k]) => {
      window.app.setKernels(k);
      const bytes = new Uint8Array(await (await fetch("/artifacts/run/checkpoint.safetensors")).arrayBuffer());
      await window.app.loadCheckpoint(bytes);
      const out = await window.app.predictTest(n);
      const ran = window.app.kernelChoices().filter((c) => c.source === "forced" && c.key.startsWith("conv_forward")).map((c) => c.variant);
      window.app.setKernels("auto");
      return { out, ran };
    }, [PREDICTED, kernels]);
    assert.ok(predictions.ran.length > 0 && predictions.ran.every((v) => v === kernels), `${kernels}: the convs ran ${predictions.ran}`);
    predictions = predictions.out;
    assert.equal(predictions.length, native.length);
    for (let i = 0; i < native.length; i++) {
      assert.equal(predictions[i].predicted, native[i].predicted, `${kernels} image ${i}`);
      for (let c = 0; c < native[i].probabilities.length; c++) {
        assert.ok(Math.abs(predictions[i].probabilities[c] - native[i].probabilities[c]) < 1e-4, `${kernels} image ${i} class ${c}`);
      }
    }
  }
});

test("calls during a step, bad numbers and a diverged model get messages, and the page goes on", async () => {
  const result = await page.evaluate(async () => {
    const tryIt = async (f) => { try { await f(); return null; } catch (e) { return String(e); } };
    // A call while a step waits for the GPU: "busy", not a trap that kills the module.
    const pending = window.app.trainSteps(3);
    await new Promise((r) => setTimeout(r, 0));
    const whileStepping = await tryIt(() => window.app.modelInfo());
    await pending;
    return {
      whileStepping,
      after: await tryIt(() => window.app.modelInfo()),
      pastTheEnd: await tryIt(() => window.app.testImage(1_000_000)),
      notANumber: await tryIt(() => window.app.classify(new Float32Array(784).fill(NaN))),
      none: await tryIt(() => window.app.predictTest(0)),
    };
  });
  assert.match(result.whileStepping ?? "", /busy/);
  assert.equal(result.after, null);
  assert.match(result.pastTheEnd ?? "", /index 1000000/);
  assert.match(result.notANumber ?? "", /NaN/);
  assert.match(result.none ?? "", /count 0/);

  // No learning rate: New model says so and keeps the model.
  const before = await page.evaluate(() => window.app.modelInfo());
  await page.fill("#lr", "");
  await page.click("#new-model");
  assert.match(await page.textContent("#train-status"), /learning rate/);
  assert.deepEqual(await page.evaluate(() => window.app.modelInfo()), before);

  // A learning rate that diverges: training stops with a message, and Save refuses the NaNs.
  await page.fill("#lr", "1000000");
  await page.click("#new-model");
  const stopped = await page.evaluate(async () => { try { await window.app.trainSteps(20); return null; } catch (e) { return String(e); } });
  assert.match(stopped ?? "", /diverged|not finite/i);
  await page.click("#save");
  await page.waitForFunction(() => /diverged/.test(document.getElementById("ckpt-status").textContent));
  await page.fill("#lr", "0.05");
  await page.click("#new-model");
  assert.equal(await page.textContent("#stat-step"), "0");
});

test("the page shows a grid, a classified drawing, and no errors (screenshot)", async () => {
  await page.evaluate(() => window.app.trainSteps(6));
  await page.click("#predict");
  await page.waitForSelector("#grid .cell:nth-child(24)");
  const pad = await page.$("#pad");
  await pad.scrollIntoViewIfNeeded();
  const box = await pad.boundingBox();
  await page.mouse.move(box.x + 60, box.y + 40);
  await page.mouse.down();
  for (const [x, y] of [[60, 190], [160, 190], [160, 40], [60, 40]]) await page.mouse.move(box.x + x, box.y + y, { steps: 8 });
  await page.mouse.up();
  await page.click("#classify");
  await page.waitForFunction(() => document.querySelectorAll("#top li .bar").length === 3);
  const inked = await page.evaluate(() => {
    const data = document.getElementById("pad").getContext("2d").getImageData(0, 0, 224, 224).data;
    let white = 0;
    for (let i = 0; i < data.length; i += 4) white += data[i] > 128;
    return white;
  });
  assert.ok(inked > 1000, `the drawn stroke is on the pad (${inked} white pixels)`);
  await page.screenshot({ path: join(artifacts, "screenshot.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
