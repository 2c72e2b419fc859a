// The drawing page: canvas -> PNG -> TF Serving REST `predict_image` -> bars.
"use strict";

const MODEL_URL = "v1/models/mnist_sum:predict";   // Same origin: serve.py or a proxy.
// An answer whose digit probability is below this is marked unsure: the same
// threshold as mnist_sum_keras.predict.UNSURE_BELOW (a test checks they agree).
const UNSURE_BELOW = 0.9;
// A photo is sent re-encoded at most this many pixels a side: the browser
// applies the camera's EXIF orientation as it draws it (the served front end
// would too), and the request stays small (the model reads 384 px at most).
const PHOTO_SIDE = 1024;
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const answer = document.getElementById("answer");
const errorBox = document.getElementById("error");
const unsureBox = document.getElementById("unsure");
const seenBox = document.getElementById("seen-box");
const seen = document.getElementById("seen");
let number = 0;
let drawn = false;        // Anything on the canvas to read?
let photo = null;         // A photo's JPEG (base64) to read instead of the canvas.
let drawing = false;
let pending = null;       // Debounce timer.
let requestId = 0;        // Only the newest answer is shown.

function blankCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawn = false;
  photo = null;
}

function clearCanvas() {
  blankCanvas();
  answer.textContent = "Draw a digit.";
  errorBox.hidden = true;
  clearBars();
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width,
          (event.clientY - box.top) * canvas.height / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  if (photo !== null) clearCanvas();   // Drawing starts afresh, not over a photo.
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...point(event));
  ctx.lineTo(...point(event));
  ctx.stroke();
  drawn = true;
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  ctx.lineTo(...point(event));
  ctx.stroke();
  schedule(300);
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    schedule(0);
  });
}

document.getElementById("clear").addEventListener("click", clearCanvas);

document.getElementById("photo").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";            // The same file chosen again is read again.
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {imageOrientation: "from-image"});
  } catch (e) {
    showError("This file is not a picture the browser can read (" + file.name + ").");
    return;
  }
  const scale = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  const copy = document.createElement("canvas");
  copy.width = Math.max(1, Math.round(bitmap.width * scale));
  copy.height = Math.max(1, Math.round(bitmap.height * scale));
  copy.getContext("2d").drawImage(bitmap, 0, 0, copy.width, copy.height);
  // Shown in the drawing area, whole, on black.
  blankCanvas();
  const fit = Math.min(canvas.width / copy.width, canvas.height / copy.height);
  const w = copy.width * fit, h = copy.height * fit;
  ctx.drawImage(copy, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  photo = copy.toDataURL("image/jpeg", 0.92).split(",")[1];
  drawn = true;
  schedule(0);
});

const numbers = document.getElementById("numbers");
for (let n = 0; n <= 9; n++) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = n;
  button.setAttribute("role", "radio");
  button.setAttribute("aria-checked", n === number ? "true" : "false");
  button.dataset.number = n;
  button.addEventListener("click", () => {
    number = n;
    for (const b of numbers.children) b.setAttribute("aria-checked", b === button ? "true" : "false");
    schedule(0);
  });
  numbers.appendChild(button);
}

function schedule(delay) {
  clearTimeout(pending);
  pending = setTimeout(predict, delay);
}

function clearBars() {
  for (const id of ["digit-bars", "sum-bars"]) document.getElementById(id).replaceChildren();
  unsureBox.hidden = true;
  seenBox.hidden = true;
}

// What a person is told when no digit is found, from the figures the refusal
// carries: the same words and bound as mnist_sum_keras.contract's NO_DIGIT_WORDS
// and SMALL_MARK (a test checks they agree).
const NO_DIGIT_WORDS = {
  blank: "No digit found: the picture looks blank.",
  small: "No digit found: what stands out is too small in the frame (move closer, or crop the picture to the digit).",
  unlike: "No digit found: nothing in the picture looks like a digit.",
};
const SMALL_MARK = 0.1;

function noDigitWords(message) {
  const figures = /looks like a digit with probability\]? \[?([-+0-9.e]+)\]? \[?and spans\]? \[?([-+0-9.e]+)\]?/.exec(message);
  if (!message.includes("the image is blank") || !figures) return null;
  const likelihood = Number(figures[1]), extent = Number(figures[2]);
  if (likelihood === 0) return NO_DIGIT_WORDS.blank;
  return extent < SMALL_MARK ? NO_DIGIT_WORDS.small : NO_DIGIT_WORDS.unlike;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  answer.textContent = "No answer.";
  clearBars();   // No stale bars of an earlier answer beside the error.
}

async function predict() {
  if (!drawn) return;
  const id = ++requestId;
  const what = photo === null ? "drawing" : "photo";
  const bytes = photo === null ? canvas.toDataURL("image/png").split(",")[1] : photo;
  const body = {signature_name: "predict_image",
                instances: [{image_bytes: {b64: bytes}, number: number}]};
  let response, reply;
  try {
    response = await fetch(MODEL_URL, {method: "POST", body: JSON.stringify(body),
                                       headers: {"Content-Type": "application/json"}});
    reply = await response.json();
  } catch (e) {
    if (id === requestId) {
      showError("Cannot reach the model server (" + e.message + "). Is \"python scripts/serve.py\" running?");
    }
    return;
  }
  if (id !== requestId) return;
  if (!response.ok || reply.error) {
    showError(noDigitWords(reply.error || "") ||
              `The server refused the ${what}: ` + (reply.error || response.status));
    return;
  }
  const p = reply.predictions[0];
  if (p.found === false) {   // Read, but no digit in it: the reason is in words.
    showError(p.reason);
    unsureBox.hidden = true;
    return;
  }
  errorBox.hidden = true;
  answer.textContent = `digit ${p.digit} + ${number} = sum ${p.sum}`;
  answer.dataset.digit = p.digit;
  answer.dataset.sum = p.sum;
  bars("digit-bars", p.digit_probabilities);
  bars("sum-bars", p.sum_probabilities);
  const sure = p.digit_probabilities[p.digit];
  unsureBox.textContent = `Unsure: the model gives this digit only ${(100 * sure).toFixed(0)}%. ` +
      "Check the picture it read below; a closer, sharper, evenly lit photo helps.";
  unsureBox.hidden = sure >= UNSURE_BELOW;
  if (p.image) showSeen(p.image);
}

function showSeen(rows) {
  // The 28x28 picture the model read (predict_image's "image" output).
  const data = seen.getContext("2d").createImageData(28, 28);
  rows.flat().forEach((v, i) => {
    data.data.set([v, v, v, 255], 4 * i);
  });
  seen.getContext("2d").putImageData(data, 0, 0);
  seenBox.hidden = false;
}

function bars(id, probabilities) {
  const top = probabilities.map((p, k) => [p, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  const list = document.getElementById(id);
  list.replaceChildren(...top.map(([p, k]) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = k;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (100 * p).toFixed(1) + "%";
    const value = document.createElement("span");
    value.textContent = (100 * p).toFixed(1) + "%";
    item.append(label, bar, value);
    return item;
  }));
}

async function loadSamples() {
  let samples;
  try {
    const response = await fetch("samples.json");
    if (!response.ok) return;        // The server was started without --data.
    samples = await response.json();
  } catch (e) {
    return;
  }
  const box = document.getElementById("samples");
  for (const sample of samples) {
    const img = document.createElement("img");
    img.src = "data:image/png;base64," + sample.png;
    img.alt = "MNIST test image " + sample.index + " (a " + sample.label + ")";
    img.title = img.alt;
    img.addEventListener("click", () => {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      photo = null;
      drawn = true;
      schedule(0);
    });
    box.appendChild(img);
  }
  document.getElementById("samples-section").hidden = false;
}

clearCanvas();
loadSamples();
