// The rnn-serve playground: plain browser JavaScript, no build step, nothing from outside.
// Requests go to this page's own origin (playground/proxy.py), which adds the server's key.
// Field defaults and limits come from GET /api/fields: the API's declarations, not retyped.
"use strict";

const $ = (id) => document.getElementById(id);
const NUMBER_FIELDS = ["temperature", "top_k", "top_p", "max_new_tokens", "seed"];
const STREAM_HEADER = "X-Playground-Stream";
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

// The conversation: `shown` is the whole text on the page, `kept` how much of it the server's
// session has read (a stopped turn is not kept), `running` the turn being streamed.
const chat = { session: null, shown: "", kept: 0, running: null };

// --- the API's field declarations ----------------------------------------------------------

function inner(schema) {
  // A nullable field is {"oneOf": [its schema, null]}; stop strings are [string, array].
  if (!schema.oneOf) return schema;
  return schema.oneOf.find((s) => s.type === "array") || schema.oneOf.find((s) => s.type !== "null");
}

function bounds(schema) {
  const s = inner(schema);
  const low = s.minimum ?? s.exclusiveMinimum;
  return { low, high: s.maximum, exclusive: s.exclusiveMinimum !== undefined, integer: s.type === "integer" };
}

function rangeText(schema) {
  const { low, high, exclusive } = bounds(schema);
  const parts = [];
  if (low !== undefined) parts.push(`${exclusive ? ">" : "≥"} ${low}`);
  if (high !== undefined) parts.push(`≤ ${high}`);
  const { maxLength } = inner(schema);
  if (maxLength !== undefined) parts.push(`at most ${maxLength} characters`);
  return parts.join(", ");
}

function defaultText(schema) {
  if (schema.default === undefined) return "required";
  if (schema.default === null) return "default: empty";
  return `default ${JSON.stringify(schema.default)}`;
}

function describe(id, schema, extra) {
  const limits = [rangeText(schema), defaultText(schema)].filter(Boolean).join("; ");
  $(`${id}-hint`).textContent = `${schema.description} (${limits})${extra ? ` ${extra}` : ""}`;
}

function setUpNumber(name, schema) {
  const input = $(name);
  const { low, high, exclusive, integer } = bounds(schema);
  const step = integer ? 1 : (high - low) / 100;
  if (low !== undefined) input.min = low;
  if (high !== undefined) input.max = high;
  input.step = Number.isFinite(step) ? String(step) : "any";
  if (schema.default !== null && schema.default !== undefined) input.value = schema.default;
  describe(name, schema);
  const slider = document.querySelector(`.slider[data-for="${name}"]`);
  if (!slider) return;
  slider.min = exclusive ? step : low;
  slider.max = high;
  slider.step = step;
  slider.value = input.value;
  slider.addEventListener("input", () => { input.value = slider.value; });
  input.addEventListener("input", () => { slider.value = input.value; });
}

function setUp(fields) {
  const lm = fields.lm;
  for (const name of NUMBER_FIELDS) setUpNumber(name, lm[name]);
  describe("prompt", lm.prompt,
    "Generate starts afresh; Continue sends it as the next turn of the session. " +
    "Ctrl+Enter generates.");
  const stop = inner(lm.stop);
  $("stop-hint").textContent =
    `${lm.stop.description} One per line, at most ${stop.maxItems}, each at most ` +
    `${stop.items.maxLength} characters; \\n and \\t stand for a line break and a tab.`;
  const texts = inner(fields.sentiment.texts);
  $("text-hint").textContent =
    `One text, or one per line (at most ${texts.maxItems}, each at most ` +
    `${texts.items.maxLength} characters), sent as one batched request with "explain": true. ` +
    "Ctrl+Enter classifies.";
  document.body.dataset.ready = "true";
}

// --- requests --------------------------------------------------------------------------------

class Raw {  // a number sent exactly as typed (a seed may exceed JavaScript's 2^53)
  constructor(text) { this.text = JSON_NUMBER.test(text) ? text : String(Number(text)); }
}

function encode(body) {
  const entries = Object.entries(body).map(
    ([key, value]) => `${JSON.stringify(key)}:${value instanceof Raw ? value.text : JSON.stringify(value)}`);
  return `{${entries.join(",")}}`;
}

function unescapeStop(line) {
  return line.replace(/\\(n|t|\\)/g, (_, c) => ({ n: "\n", t: "\t", "\\": "\\" })[c]);
}

function generationBody(prompt, session) {
  const body = { prompt, stream: true, session };
  for (const name of NUMBER_FIELDS) {
    const text = $(name).value.trim();
    if (text !== "") body[name] = new Raw(text);
  }
  const stops = $("stop").value.split("\n").filter((line) => line !== "").map(unescapeStop);
  if (stops.length) body.stop = stops;
  return encode(body);
}

async function errorOf(reply) {
  // The API's own message: ours is {"error", "field", "code"}; TorchServe's {"message"}.
  const text = await reply.text();
  try {
    const body = JSON.parse(text);
    if (typeof body.error === "string") {
      return { message: body.error, field: body.field, status: reply.status };
    }
    if (body.message) return { message: `HTTP ${reply.status}: ${body.message}`, status: reply.status };
  } catch (_) { /* not JSON: show it as it is */ }
  return { message: `HTTP ${reply.status}: ${text}`, status: reply.status };
}

function showError(panel, error) {
  $(`${panel}-error`).textContent = error.message;
  const field = (error.field || "").replace(/\[\d+\]$/, "");
  const control = $(field === "texts" ? "text" : field);
  if (control && control.matches("input, textarea")) control.setAttribute("aria-invalid", "true");
}

function clearError(panel) {
  $(`${panel}-error`).textContent = "";
  for (const control of document.querySelectorAll(`#${panel}-panel [aria-invalid]`)) {
    control.removeAttribute("aria-invalid");
  }
}

// --- generation ------------------------------------------------------------------------------

function setButtons() {
  const running = chat.running !== null;
  $("stop-button").setAttribute("aria-disabled", String(!running));
  $("continue-button").setAttribute("aria-disabled", String(running || chat.shown === ""));
  $("session").textContent = chat.session || "none";
}

function showStats(turn) {
  const seconds = (turn.ended - turn.started) / 1000;
  $("ttfc").textContent = turn.first === null ? "–" : `${Math.round(turn.first - turn.started)} ms`;
  const tokens = turn.final ? turn.final.generated_tokens : null;
  $("tokens").textContent = tokens === null ? "not reported (stopped)" : String(tokens);
  $("rate").textContent = tokens === null ? "–" : (tokens / seconds).toFixed(1);
  $("finish").textContent = turn.stopped ? "stopped" : (turn.final ? turn.final.finish_reason : "–");
}

function addSpan(kind, text) {
  const span = document.createElement("span");
  span.className = kind;
  span.textContent = text;
  $("answer").append(span);
  return span;
}

async function stopRunning() {
  const turn = chat.running;
  if (!turn) return;
  turn.stopped = true;
  $("generate-status").textContent = "Stopping…";
  try {  // the page's process cuts the stream upstream and answers once the row is freed
    await fetch("/playground/stop", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ stream: turn.id }),
    });
  } finally {
    turn.controller.abort();
    await turn.finished;
  }
}

function readLine(turn, line) {
  const chunk = JSON.parse(line);
  if (typeof chunk.error === "string") {
    turn.failed = true;
    showError("generate", { message: chunk.error, field: chunk.field });
    return;
  }
  if (chunk.session) chat.session = chunk.session;
  if (chunk.text) {
    if (turn.first === null) turn.first = performance.now();
    turn.text += chunk.text;
    turn.span.textContent = turn.text;
  }
  if (chunk.finish_reason) turn.final = chunk;
  setButtons();
}

async function readStream(turn, reply) {
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.trim()) readLine(turn, line);
      }
    }
  } catch (error) {
    if (!turn.stopped) showError("generate", { message: `the stream broke off: ${error.message}` });
  }
}

async function turn(shownPrompt, sentPrompt, session) {
  await stopRunning();
  clearError("generate");
  const current = {
    id: crypto.randomUUID(), controller: new AbortController(), text: "", first: null,
    final: null, stopped: false, failed: false, error: null, started: performance.now(),
  };
  let done;
  current.finished = new Promise((resolve) => { done = resolve; });
  chat.running = current;
  const promptSpan = addSpan("prompt", shownPrompt);
  current.span = addSpan("generated", "");
  setButtons();
  $("generate-status").textContent = "Generating…";
  $("prompt").value = "";
  try {
    const reply = await fetch("/predictions/lm", {
      method: "POST", signal: current.controller.signal,
      headers: { "Content-Type": "application/json", [STREAM_HEADER]: current.id },
      body: generationBody(sentPrompt, session),
    });
    if (!reply.ok) {
      current.failed = true;
      current.error = await errorOf(reply);
      showError("generate", current.error);
    } else {
      await readStream(current, reply);
    }
  } catch (error) {
    if (!current.stopped) {
      current.failed = true;
      showError("generate", { message: `no answer: ${error.message}` });
    }
  }
  current.ended = performance.now();
  finishTurn(current, shownPrompt, promptSpan, session);
  done();
  return current;
}

function finishTurn(current, shownPrompt, promptSpan, session) {
  chat.running = null;
  if (current.failed && current.text === "") {
    // Refused (a bad field, say): the page is as before, the prompt back in its box.
    promptSpan.remove();
    current.span.remove();
    $("prompt").value = shownPrompt;
    $("generate-status").textContent = "";
  } else {
    chat.shown += shownPrompt + current.text;
    if (!current.stopped && !current.failed) {
      chat.kept = chat.shown.length;  // the session has read all of it
    } else if (session === "new") {
      chat.session = null;  // the server ends a session whose first turn did not finish
    }
    $("generate-status").textContent = current.stopped ? "Stopped" : "Done";
    showStats(current);
  }
  setButtons();
}

function generate() {
  chat.session = null;
  chat.shown = "";
  chat.kept = 0;
  $("answer").textContent = "";
  const prompt = $("prompt").value;
  return turn(prompt, prompt, "new");
}

async function continueChat() {
  if (chat.running || chat.shown === "") return;
  const next = $("prompt").value;
  if (chat.session) {
    const { error } = await turn(next, chat.shown.slice(chat.kept) + next, chat.session);
    const lost = error && error.field === "session" && [404, 410].includes(error.status);
    if (!lost) return;
    // Expired or forgotten: the page knows the whole text, so it opens a new session with it.
    chat.session = null;
  }
  await turn(next, chat.shown + next, "new");
}

async function reset() {
  await stopRunning();
  chat.session = null;
  chat.shown = "";
  chat.kept = 0;
  $("answer").textContent = "";
  $("prompt").value = "";
  $("generate-status").textContent = "";
  for (const id of ["ttfc", "rate", "tokens", "finish"]) $(id).textContent = "–";
  clearError("generate");
  setButtons();
  $("prompt").focus();
}

// --- sentiment -------------------------------------------------------------------------------

// ColorBrewer's "Blues": 0 (closed) light to 1 (open) dark, as in the legend (playground.css).
const BLUES = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
  "#08519c", "#08306b"].map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));

function gateColour(value) {
  const position = Math.min(Math.max(value, 0), 1) * (BLUES.length - 1);
  const low = Math.min(Math.floor(position), BLUES.length - 2);
  const mix = BLUES[low].map((c, i) => Math.round(c + (BLUES[low + 1][i] - c) * (position - low)));
  return `rgb(${mix.join(",")})`;
}

function gateTable(explanation) {
  const table = document.createElement("table");
  table.className = "gates";
  const caption = table.createCaption();
  caption.textContent =
    `Gates of ${explanation.cell.toUpperCase()} layer ${explanation.layer}, per token as the ` +
    `model read it (${explanation.values}); hover a cell for its value.`;
  const head = table.createTHead().insertRow();
  head.append(Object.assign(document.createElement("th"), { textContent: "gate" }));
  for (const token of explanation.tokens) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = token.piece;
    head.append(th);
  }
  const body = table.createTBody();
  for (const direction of explanation.directions) {
    for (const gate of explanation.gates) {
      const row = body.insertRow();
      row.dataset.direction = direction;
      row.dataset.gate = gate;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = `${direction} ${gate}`;
      row.append(th);
      for (const token of explanation.tokens) {
        const value = token[direction][gate];
        const cell = row.insertCell();
        cell.className = "gate";
        cell.dataset.value = String(value);
        cell.title = `${direction} ${gate} gate at "${token.piece}": ${value}`;
        cell.style.backgroundColor = gateColour(value);
        const text = document.createElement("span");
        text.className = "visually-hidden";
        text.textContent = String(value);
        cell.append(text);
      }
    }
  }
  return table;
}

function legend() {
  const box = document.createElement("div");
  box.className = "legend";
  box.innerHTML =
    '<span>0 closed</span><span class="legend-bar" aria-hidden="true"></span><span>1 open</span>';
  return box;
}

function result(text, answer) {
  const article = document.createElement("article");
  article.className = "result";
  const quote = document.createElement("h3");
  quote.textContent = text;
  const label = document.createElement("p");
  label.className = `label ${answer.label}`;
  label.textContent = `${answer.label} (${answer.score.toFixed(3)})`;
  const bars = document.createElement("div");
  bars.className = "probabilities";
  for (const [name, probability] of Object.entries(answer.probabilities)) {
    const row = document.createElement("div");
    row.className = "probability";
    const track = document.createElement("span");
    track.className = "track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(probability * 100).toFixed(1)}%`;
    track.append(bar);
    const caption = document.createElement("span");
    caption.textContent = `${name} ${probability.toFixed(3)}`;
    row.append(caption, track);
    bars.append(row);
  }
  article.append(quote, label, bars);
  if (answer.explanation) {
    const scroll = document.createElement("div");
    scroll.className = "scroll";
    scroll.append(gateTable(answer.explanation));
    article.append(scroll, legend());
  }
  return article;
}

async function classify() {
  clearError("sentiment");
  const value = $("text").value;
  const lines = value.split("\n").filter((line) => line.trim() !== "");
  const many = lines.length > 1;
  const body = many ? { texts: lines, explain: true } : { text: lines[0] ?? value, explain: true };
  $("sentiment-status").textContent = "Classifying…";
  try {
    const reply = await fetch("/predictions/sentiment", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!reply.ok) {
      showError("sentiment", await errorOf(reply));
      $("sentiment-status").textContent = "";
      return;
    }
    const answers = many ? await reply.json() : [await reply.json()];
    const texts = many ? lines : [body.text];
    $("results").replaceChildren(...answers.map((answer, i) => result(texts[i], answer)));
    $("sentiment-status").textContent = "Done";
  } catch (error) {
    showError("sentiment", { message: `no answer: ${error.message}` });
    $("sentiment-status").textContent = "";
  }
}

// --- wiring ----------------------------------------------------------------------------------

function onActivate(id, action) {
  // aria-disabled (not disabled) keeps a pressed button focusable for keyboard users.
  $(id).addEventListener("click", () => {
    if ($(id).getAttribute("aria-disabled") !== "true") action();
  });
}

function onCtrlEnter(id, action) {
  $(id).addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      action();
    }
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  onActivate("generate-button", generate);
  onActivate("stop-button", stopRunning);
  onActivate("continue-button", continueChat);
  onActivate("reset-button", reset);
  onActivate("classify-button", classify);
  onCtrlEnter("prompt", generate);
  onCtrlEnter("text", classify);
  setButtons();
  const reply = await fetch("/api/fields");
  if (!reply.ok) {
    showError("generate", await errorOf(reply));
    return;
  }
  // A limit beyond 2^53 (the seed's 2^63 - 1) is kept as its exact digits, not rounded.
  setUp(JSON.parse(await reply.text(), (key, value, context) =>
    Number.isInteger(value) && !Number.isSafeInteger(value) && context ? context.source : value));
});
