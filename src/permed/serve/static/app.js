// permed clinician page: sign in with an API key, fill a patient (or upload a FHIR bundle),
// read the answer. No framework, no network beyond this service; text is never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const state = { key: sessionStorage.getItem("permed-key") || "", models: [], schema: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text = "") {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.key}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw { status: response.status, body };
  return body;
}

function problemText(error) {
  if (!error || !error.body) return String(error);
  const body = error.body;
  const lines = [body.detail || `error ${error.status}`];
  for (const e of body.errors || []) lines.push(`• ${e.message} (expected ${e.expected})`);
  return lines.join("\n");
}

// ---- sign in ------------------------------------------------------------------------------
async function signIn(key) {
  state.key = key;
  try {
    state.models = await api("/v1/models");
  } catch (error) {
    state.key = "";
    sessionStorage.removeItem("permed-key");
    $("signin-error").textContent = error.status === 401 ? "This API key is not valid."
      : error.status === 403 ? "This key's role cannot use the clinician page."
      : problemText(error);
    return;
  }
  sessionStorage.setItem("permed-key", key);
  $("signin-error").textContent = "";
  $("signin").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  const select = $("model");
  clear(select);
  for (const m of state.models) {
    select.appendChild(el("option", { value: m.name }, `${m.name} (${m.task})`));
  }
  if (state.models.length) await loadModel(state.models[0].name);
}

function signOut() {
  sessionStorage.removeItem("permed-key");
  state.key = "";
  $("workspace").hidden = true;
  $("signin").hidden = false;
  $("sign-out").hidden = true;
  $("result").hidden = true;
}

// ---- the patient form, from the model's schema -----------------------------------------------
async function loadModel(name) {
  const ticket = (state.loading = (state.loading || 0) + 1);
  const schema = await api(`/v1/models/${encodeURIComponent(name)}/schema`);
  if (ticket !== state.loading) return;  // another model was chosen meanwhile
  state.schema = schema;
  const m = state.schema.model;
  $("model-info").textContent = `${m.task} model · ${m.selected_model || ""} · version ${m.version}`
    + ` · scored with ${m.engine === "onnx" ? "ONNX Runtime" : "the native model"}`;
  const fields = $("fields");
  clear(fields);
  for (const f of state.schema.features) {
    const box = el("div", { class: "field", "data-field": f.name });
    const id = `f-${f.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    box.appendChild(el("label", { for: id }, f.unit ? `${f.name} (${f.unit})` : f.name));
    let input;
    if (f.kind === "numeric") {
      input = el("input", { id, name: f.name, type: "number", step: "any", inputmode: "decimal" });
      if (f.valid_range) { input.min = f.valid_range[0]; input.max = f.valid_range[1]; }
    } else if (f.kind === "image") {
      input = el("input", { id, name: f.name, type: "file", accept: IMAGE_ACCEPT });
      input.addEventListener("change", () => readImage(input));
    } else if (!(f.categories || []).length) {  // a note, or any free text
      input = el("textarea", { id, name: f.name, rows: "4" });
    } else {
      input = el("select", { id, name: f.name });
      input.appendChild(el("option", { value: "" }, "unknown"));
      for (const c of f.categories || []) input.appendChild(el("option", { value: c }, c));
    }
    box.appendChild(input);
    box.appendChild(el("small", {}, hint(f)));
    fields.appendChild(box);
  }
  $("tab-fhir").disabled = !state.schema.features.some((f) => f.fhir);
}

// Images travel inside the request as data URLs (the service never opens a path).
const IMAGE_ACCEPT = "image/png,image/jpeg,image/tiff,image/bmp,.dcm,.dicom,.npy";
const MEDIA_BY_SUFFIX = { dcm: "application/dicom", dicom: "application/dicom",
  npy: "application/x-npy" };

function readImage(input) {
  delete input.dataset.url;
  const file = input.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const suffix = file.name.split(".").pop().toLowerCase();
    const media = MEDIA_BY_SUFFIX[suffix];
    const url = String(reader.result);
    input.dataset.url = media ? `data:${media};base64,${url.split(",")[1]}` : url;
  };
  reader.readAsDataURL(file);
}

function hint(f) {
  if (f.kind === "image") return "PNG, JPEG, TIFF, DICOM or .npy; sent inside the request";
  if (f.kind !== "numeric" && !(f.categories || []).length) return "free text; empty if none";
  if (f.kind !== "numeric") return "leave 'unknown' if not measured";
  const unit = f.unit ? ` ${f.unit}` : "";
  const parts = [];
  if (f.min !== undefined) parts.push(`seen ${fmt(f.min)}–${fmt(f.max)}${unit}`);
  if (f.valid_range) parts.push(`valid ${fmt(f.valid_range[0])}–${fmt(f.valid_range[1])}`);
  return parts.join("; ") || "empty if not measured";
}

function fmt(x) { return Number.isInteger(x) ? String(x) : Number(x).toPrecision(4); }

function patientFromForm() {
  const patient = {};
  for (const f of state.schema.features) {
    const box = `[data-field="${CSS.escape(f.name)}"]`;
    const input = document.querySelector(`${box} input, ${box} select, ${box} textarea`);
    const raw = f.kind === "image" ? input.dataset.url || "" : input.value.trim();
    patient[f.name] = raw === "" ? null : f.kind === "numeric" ? Number(raw) : raw;
  }
  return patient;
}

function markBad(errors) {
  document.querySelectorAll(".field.bad").forEach((n) => n.classList.remove("bad"));
  for (const e of errors || []) {
    const name = String(e.field || "").replace(/^patient\./, "");
    const box = document.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (box) box.classList.add("bad");
  }
}

async function predict(event) {
  event.preventDefault();
  $("errors").textContent = "";
  const name = $("model").value;
  try {
    const body = await api(`/v1/models/${encodeURIComponent(name)}/predict`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ patient: patientFromForm(), explain: true }),
    });
    markBad([]);
    render(body.model, body.results[0]);
  } catch (error) {
    markBad(error.body && error.body.errors);
    $("errors").textContent = problemText(error);
  }
}

// ---- results ----------------------------------------------------------------------------------
function render(model, result) {
  $("result").hidden = false;
  $("fhir-result").hidden = true;
  $("result-summary").textContent = result.summary;
  $("result-model").textContent = `${model.name} · ${model.selected_model || ""} · version `
    + `${model.version} · ${model.engine === "onnx" ? "ONNX Runtime" : "native"}`;
  const refer = $("refer");
  refer.hidden = !result.flags.refer_to_clinician;
  refer.textContent = result.flags.refer_to_clinician
    ? `Refer to clinician: ${result.flags.refer_reason}` : "";
  renderGauge(model, result);
  renderCurve(result.survival_curve);
  renderArms(result.uncertainty.intervals);
  const u = result.uncertainty;
  $("uncertainty").textContent = u.prediction_set
    ? `Prediction set (${Math.round(100 * (u.coverage || 0))}% coverage): ${u.prediction_set.join(", ")}`
    : u.note;
  const flags = [];
  if (result.flags.out_of_range) flags.push(`outside the training range: ${result.flags.out_of_range_features.join(", ")}`);
  if (result.flags.out_of_distribution) flags.push("unusual combination of values");
  if (result.flags.low_overlap) flags.push("few similar patients received every option");
  if (result.flags.missing_features.length) flags.push(`not given (imputed): ${result.flags.missing_features.join(", ")}`);
  $("flags").textContent = flags.join(" · ");
  renderFactors(result.explanation, result.explanation_note);
}

function renderGauge(model, result) {
  const box = $("gauge-box");
  const probs = Object.entries(result.answer).filter(([k]) => k.startsWith("prob_"));
  const risks = Object.entries(result.answer).filter(([k]) => k.startsWith("risk_at_"));
  let label, p;
  if (probs.length) {
    const classes = state.schema.classes || [];
    const positive = classes.length === 2 ? `prob_${classes[1]}` : `prob_${result.answer.predicted}`;
    p = result.answer[positive];
    label = `probability of ${state.schema.target} = ${positive.slice(5)}`;
  } else if (risks.length) {
    [label, p] = [`risk by time ${risks[risks.length - 1][0].slice(8)}`, risks[risks.length - 1][1]];
  } else { box.hidden = true; return; }
  box.hidden = false;
  const svg = $("gauge");
  clear(svg);
  const arc = "M 20 100 A 80 80 0 0 1 180 100";
  svg.appendChild(el("svg:path", { d: arc, class: "gauge-track" }));
  const length = Math.PI * 80;
  svg.appendChild(el("svg:path", { d: arc, class: "gauge-fill",
    "stroke-dasharray": `${length * p} ${length}` }));
  svg.appendChild(el("svg:text", { x: 100, y: 95, "text-anchor": "middle", class: "gauge-value",
    id: "gauge-value" }, `${(100 * p).toFixed(1)}%`));
  $("gauge-label").textContent = label;
}

function renderCurve(curve) {
  const box = $("curve-box");
  if (!curve) { box.hidden = true; return; }
  box.hidden = false;
  const svg = $("curve");
  clear(svg);
  const [w, h, pad] = [320, 200, 30];
  const tmax = Math.max(...curve.times) || 1;
  const points = curve.times.map((t, i) =>
    `${pad + (w - 2 * pad) * t / tmax},${h - pad - (h - 2 * pad) * curve.survival[i]}`);
  svg.appendChild(el("svg:line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }));
  svg.appendChild(el("svg:line", { x1: pad, y1: pad, x2: pad, y2: h - pad, class: "axis" }));
  svg.appendChild(el("svg:polyline", { points: points.join(" "), class: "curve-line" }));
  svg.appendChild(el("svg:text", { x: pad - 4, y: pad + 4, "text-anchor": "end" }, "1"));
  svg.appendChild(el("svg:text", { x: pad - 4, y: h - pad, "text-anchor": "end" }, "0"));
  svg.appendChild(el("svg:text", { x: w - pad, y: h - pad + 14, "text-anchor": "end" }, fmt(tmax)));
}

function renderArms(intervals) {
  const box = $("arms-box");
  const arms = Object.entries(intervals || {}).filter(([k]) => k.startsWith("outcome_"));
  if (!arms.length) { box.hidden = true; return; }
  box.hidden = false;
  const svg = $("arms");
  clear(svg);
  const values = arms.flatMap(([, v]) => [v.low, v.high]).filter((x) => x !== null);
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const x = (v) => 120 + 180 * (v - lo) / ((hi - lo) || 1);
  arms.forEach(([name, v], i) => {
    const y = 25 + i * 30;
    svg.appendChild(el("svg:text", { x: 115, y: y + 4, "text-anchor": "end" }, name.slice(8)));
    svg.appendChild(el("svg:line", { x1: x(v.low), y1: y, x2: x(v.high), y2: y, class: "ci" }));
    svg.appendChild(el("svg:circle", { cx: x(v.value), cy: y, r: 4, class: "bar-up" }));
    svg.appendChild(el("svg:text", { x: 305, y: y + 4, "text-anchor": "end" }, fmt(v.value)));
  });
}

function renderFactors(explanation, note) {
  const svg = $("waterfall");
  const list = $("factor-list");
  clear(svg);
  clear(list);
  $("factors-note").textContent = explanation ? explanation.description : (note || "");
  svg.hidden = !explanation;
  if (!explanation) return;
  const steps = explanation.factors.map((f) => [f.feature, f.contribution]);
  if (Math.abs(explanation.other) > 0) steps.push(["other features", explanation.other]);
  let running = explanation.base_value;
  const levels = [running];
  for (const [, c] of steps) { running += c; levels.push(running); }
  const [lo, hi] = [Math.min(...levels), Math.max(...levels)];
  const x = (v) => 200 + 400 * (v - lo) / ((hi - lo) || 1);
  let level = explanation.base_value;
  svg.appendChild(el("svg:text", { x: 195, y: 14, "text-anchor": "end" },
    `average patient: ${fmt(explanation.base_value)}`));
  steps.forEach(([name, c], i) => {
    const y = 24 + i * 24;
    const [a, b] = [x(level), x(level + c)];
    svg.appendChild(el("svg:rect", { x: Math.min(a, b), y, width: Math.max(1, Math.abs(b - a)),
      height: 16, class: c >= 0 ? "bar-up" : "bar-down" }));
    svg.appendChild(el("svg:text", { x: 195, y: y + 12, "text-anchor": "end" }, name));
    level += c;
  });
  svg.setAttribute("viewBox", `0 0 640 ${40 + steps.length * 24}`);
  svg.appendChild(el("svg:text", { x: 195, y: 36 + steps.length * 24, "text-anchor": "end" },
    `this patient: ${fmt(explanation.value)}`));
  for (const f of explanation.factors) list.appendChild(el("li", {}, f.text));
}

// ---- FHIR upload --------------------------------------------------------------------------
async function evaluateBundle(event) {
  event.preventDefault();
  $("errors").textContent = "";
  const file = $("fhir-file").files[0];
  if (!file) { $("errors").textContent = "Choose a FHIR bundle file first."; return; }
  try {
    const assessment = await api(`/fhir/RiskAssessment/$evaluate?model=${encodeURIComponent($("model").value)}`, {
      method: "POST", headers: { "Content-Type": "application/fhir+json" }, body: await file.text(),
    });
    renderAssessment(assessment);
  } catch (error) {
    $("errors").textContent = problemText(error);
  }
}

function renderAssessment(assessment) {
  $("result").hidden = false;
  ["gauge-box", "curve-box", "arms-box"].forEach((id) => { $(id).hidden = true; });
  $("waterfall").hidden = true;
  clear($("factor-list"));
  $("factors-note").textContent = "";
  $("flags").textContent = "";
  $("uncertainty").textContent = "";
  $("refer").hidden = !assessment.mitigation;
  $("refer").textContent = assessment.mitigation || "";
  $("result-summary").textContent = (assessment.note || [])[0] ? assessment.note[0].text : "";
  $("result-model").textContent = assessment.method.text;
  const box = $("fhir-result");
  clear(box);
  box.hidden = false;
  const list = el("ul");
  for (const p of assessment.prediction || []) {
    const value = p.probabilityDecimal !== undefined ? `${p.probabilityDecimal.toFixed(1)}%` : p.rationale;
    list.appendChild(el("li", {}, `${p.outcome.text}: ${value}`));
  }
  for (const n of (assessment.note || []).slice(1)) list.appendChild(el("li", {}, n.text));
  box.appendChild(el("h3", {}, "FHIR RiskAssessment"));
  box.appendChild(list);
}

// ---- tabs, report, wiring -----------------------------------------------------------------
function showTab(fhir) {
  $("patient-form").hidden = fhir;
  $("fhir-form").hidden = !fhir;
  $("tab-form").classList.toggle("active", !fhir);
  $("tab-fhir").classList.toggle("active", fhir);
  $("tab-form").setAttribute("aria-selected", String(!fhir));
  $("tab-fhir").setAttribute("aria-selected", String(fhir));
}

async function openReport() {
  try {
    const ticket = await api(`/v1/models/${encodeURIComponent($("model").value)}/report-ticket`,
      { method: "POST" });
    window.open(ticket.url, "_blank", "noopener");
  } catch (error) {
    $("errors").textContent = problemText(error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value.trim()); });
  $("sign-out").addEventListener("click", signOut);
  $("model").addEventListener("change", () => loadModel($("model").value));
  $("patient-form").addEventListener("submit", predict);
  $("fhir-form").addEventListener("submit", evaluateBundle);
  $("tab-form").addEventListener("click", () => showTab(false));
  $("tab-fhir").addEventListener("click", () => showTab(true));
  $("report-link").addEventListener("click", openReport);
  if (state.key) signIn(state.key);
});
