// The Self-RAG trace page: ask a question, show the trace, and re-rank it in the page under other weights.
//
// The re-ranking below is a line-by-line port of the Python that /v1/selfrag/rerank runs, so the page's choice is
// the endpoint's (tests/integration/test_serve.py checks it in a real browser):
//   selfrag/decoding/critique.py  group renormalisation (math.fsum), IsRel / IsSup / IsUse, final score,
//                                 should_retrieve, normalise_option / option_key / aggregate_options
//   selfrag/decoding/grammar.py   candidate_problem (well-formed candidates compete first)
//   selfrag/tokens.py             find_tokens, strip_reflection
//   selfrag/decoding/pipeline.py  choose_short_form
//   selfrag/decoding/beam.py      beam_score, attach_citations (long form)
//   selfrag/decoding/records.py   rerank
// Change one side, change the other.
"use strict";

(function () {
  // ---- selfrag/tokens.py --------------------------------------------------------------------------------------
  const RETRIEVAL = "[Retrieval]";
  const NO_RETRIEVAL = "[No Retrieval]";
  const RELEVANT = "[Relevant]";
  const PARAGRAPH_OPEN = "<paragraph>";
  const PARAGRAPH_CLOSE = "</paragraph>";
  const UTILITY = [1, 2, 3, 4, 5].map((i) => `[Utility:${i}]`);
  const REFLECTION_TOKENS = [NO_RETRIEVAL, RETRIEVAL, "[Continue to Use Evidence]", "[Irrelevant]", RELEVANT,
    PARAGRAPH_OPEN, PARAGRAPH_CLOSE, ...UTILITY, "[Fully supported]", "[Partially supported]",
    "[No support / Contradictory]"];
  const ISREL_GROUP = [RELEVANT, "[Irrelevant]"];
  const ISSUP_GROUP = ["[Fully supported]", "[Partially supported]", "[No support / Contradictory]"];
  const ISUSE_GROUP = UTILITY;
  const UTILITY_WEIGHTS = [-1.0, -0.5, 0.0, 0.5, 1.0];
  const END_MARKERS = ["</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"];

  const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const byLength = REFLECTION_TOKENS.slice().sort((a, b) => b.length - a.length); // stable, as Python's sorted
  const ANY_TOKEN = new RegExp(byLength.map(escapeRe).join("|"), "g");
  const PARAGRAPH_SPAN = /<paragraph>[\s\S]*?<\/paragraph>/g;

  function stripReflection(text) {
    text = text.replace(PARAGRAPH_SPAN, " ");
    const open = text.indexOf(PARAGRAPH_OPEN);
    if (open >= 0) text = text.slice(0, open);
    text = text.replace(ANY_TOKEN, " ");
    for (const marker of END_MARKERS) text = text.split(marker).join(" ");
    return text.replace(/\s+/g, " ").trim();
  }

  function findTokens(text) {
    return text.replace(PARAGRAPH_SPAN, PARAGRAPH_OPEN + PARAGRAPH_CLOSE).match(ANY_TOKEN) || [];
  }

  // ---- selfrag/decoding/critique.py -------------------------------------------------------------------------
  // math.fsum: CPython's algorithm (exact partials, then a correctly rounded total), so renormalised values and
  // IsUse are bit-identical to the server's.
  function fsum(values) {
    const partials = [];
    for (let x of values) {
      let i = 0;
      for (let j = 0; j < partials.length; j++) {
        let y = partials[j];
        if (Math.abs(x) < Math.abs(y)) { const t = x; x = y; y = t; }
        const hi = x + y;
        const lo = y - (hi - x);
        if (lo) partials[i++] = lo;
        x = hi;
      }
      partials.length = i;
      partials.push(x);
    }
    let n = partials.length;
    let hi = 0.0;
    if (n > 0) {
      hi = partials[--n];
      let lo = 0.0;
      while (n > 0) {
        const x = hi;
        const y = partials[--n];
        hi = x + y;
        const yr = hi - x;
        lo = y - yr;
        if (lo !== 0.0) break;
      }
      if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
        const y = lo * 2;
        const x = hi + y;
        const yr = x - hi;
        if (y === yr) hi = x;
      }
    }
    return hi;
  }

  function renormalised(probs, group) {
    const missing = group.filter((t) => !(t in probs));
    if (missing.length) throw new Error(`group probabilities lack ${missing.join(", ")}`);
    const values = group.map((t) => Number(probs[t]));
    const total = fsum(values);
    if (total <= 0.0) return values.map(() => 1.0 / values.length);
    return values.map((v) => v / total);
  }

  const isrelScore = (probs) => renormalised(probs, ISREL_GROUP)[0];
  function issupScore(probs) {
    const [fully, partially] = renormalised(probs, ISSUP_GROUP);
    return fully + 0.5 * partially;
  }
  function isuseScore(probs) {
    const r = renormalised(probs, ISUSE_GROUP);
    return fsum(UTILITY_WEIGHTS.map((w, i) => w * r[i]));
  }

  function scoreCandidate(c, w) {
    const probs = c.probs || {};
    const rel = probs.rel != null ? isrelScore(probs.rel) : null;
    const sup = probs.sup != null ? issupScore(probs.sup) : null;
    const use = probs.use != null ? isuseScore(probs.use) : null;
    const seq = c.scores.seq;
    const final = (w.use_seqscore ? seq : 0.0) + w.w_rel * (rel || 0.0) + w.w_sup * (sup || 0.0) +
      w.w_use * (use || 0.0);
    return { rel, sup, use, seq, final };
  }

  function shouldRetrieve(p, mode, threshold) {
    if (mode === "always") return true;
    if (mode === "never") return false;
    if (mode !== "adaptive") throw new Error(`mode must be adaptive, always or never, got ${mode}`);
    if (p == null) throw new Error("adaptive retrieval needs p_retrieve; it is missing");
    return p > threshold;
  }

  const SYNONYMS = { supports: "true", supported: "true", refutes: "false", refuted: "false" };
  function normaliseOption(answer, options) {
    let text = answer.trim().toLowerCase();
    text = text.replace(/^(the\s+)?(answer|option)\s*(is)?\s*[:\-]?\s*/, "");
    text = text.replace(/^[(\[{"' ]+/, "");
    let first = text ? text.split(/[^a-z0-9]/)[0] : "";
    first = SYNONYMS[first] || first;
    for (const option of options) if (first === option.toLowerCase()) return option;
    return null;
  }
  const optionKey = (answer, options) => normaliseOption(answer, options) || answer.trim().toLowerCase();

  function aggregateOptions(answers, finals, options) {
    const totals = new Map();
    answers.forEach((a, i) => {
      const key = optionKey(a, options);
      totals.set(key, (totals.has(key) ? totals.get(key) : 0.0) + finals[i]);
    });
    let best = null;
    for (const [key, total] of totals) if (best === null || total > totals.get(best)) best = key;
    return best;
  }

  // ---- selfrag/decoding/grammar.py --------------------------------------------------------------------------
  function candidateProblem(text, withPassage, finished) {
    if (!finished) return "cut off by max_new_tokens";
    const found = findTokens(text);
    if (withPassage && (!found.length || !ISREL_GROUP.includes(found[0]))) return "no IsRel token first after the passage";
    if (found.some((t) => t === PARAGRAPH_OPEN || t === PARAGRAPH_CLOSE || t === RETRIEVAL)) {
      return "passage markup or [Retrieval] inside the continuation";
    }
    if (found.filter((t) => ISREL_GROUP.includes(t)).length !== (withPassage ? 1 : 0)) {
      return "more than one IsRel token (or one without a passage)";
    }
    if (!stripReflection(text)) return "empty answer";
    if (withPassage && found[0] === RELEVANT && !found.some((t) => ISSUP_GROUP.includes(t))) {
      return "no IsSup token after [Relevant]";
    }
    const utilities = found.filter((t) => ISUSE_GROUP.includes(t));
    if (utilities.length > 1) return "more than one utility token";
    const last = found[found.length - 1];
    if (!utilities.length || !ISUSE_GROUP.includes(last) || !text.trimEnd().endsWith(last)) {
      return "no utility token at the end";
    }
    return null;
  }

  // ---- selfrag/decoding/pipeline.py, beam.py, records.py ------------------------------------------------------
  const hasPassage = (c) => c.passage_id !== null && c.passage_id !== undefined;
  const firstMax = (items, value) => items.reduce((best, x) => (value(x) > value(best) ? x : best), items[0]);

  function chooseShortForm(candidates, retrieve, w, options) {
    let pool = candidates.map((c, i) => i).filter((i) => hasPassage(candidates[i]) === retrieve);
    if (!pool.length) {
      throw new Error(`no ${retrieve ? "passage" : "no-retrieval"} candidate was decoded for this question`);
    }
    const wellFormed = pool.filter((i) => candidateProblem(candidates[i].text, retrieve,
      candidates[i].finished !== false) === null);
    if (wellFormed.length) pool = wellFormed;
    const finals = {};
    for (const i of pool) finals[i] = scoreCandidate(candidates[i], w).final;
    if (options && options.length) {
      const best = aggregateOptions(pool.map((i) => candidates[i].answer), pool.map((i) => finals[i]), options);
      const naming = pool.filter((i) => optionKey(candidates[i].answer, options) === best);
      return [firstMax(naming, (i) => finals[i]), best];
    }
    const chosen = firstMax(pool, (i) => finals[i]);
    return [chosen, candidates[chosen].answer];
  }

  function passageBlock(c) {
    return `${RETRIEVAL}${PARAGRAPH_OPEN}${c.passage_title || ""}\n${c.passage_text || ""}${PARAGRAPH_CLOSE}`;
  }
  const responseText = (segments) => segments.map((c) => (hasPassage(c) ? passageBlock(c) : NO_RETRIEVAL) + c.text)
    .join("");

  function beamScore(segments, w) {
    if (!segments.length) return 0.0;
    let total = 0;
    for (const c of segments) total += scoreCandidate(c, w).final;
    return total / segments.length;
  }

  function cite(text, index) {
    const stripped = text.trimEnd();
    const match = /[.!?]+["')\]]*$/.exec(stripped);
    if (match) {
      return `${stripped.slice(0, match.index).trimEnd()} [${index}]${stripped.slice(match.index)}`;
    }
    return `${stripped} [${index}]`;
  }

  function attachCitations(segments) {
    const docs = [];
    const indexOf = new Map();
    const out = [];
    const parts = [];
    for (const c of segments) {
      let citation = null;
      if (hasPassage(c)) {
        if (!indexOf.has(c.passage_id)) {
          docs.push({ id: c.passage_id, title: c.passage_title || "", text: c.passage_text || "" });
          indexOf.set(c.passage_id, docs.length);
        }
        citation = indexOf.get(c.passage_id);
      }
      out.push({ candidate: c, citation });
      if (c.answer) parts.push(citation !== null ? cite(c.answer, citation) : c.answer);
    }
    return { segments: out, docs, answer: parts.join(" ") };
  }

  // records.rerank: the trace re-decided under settings {w_rel, w_sup, w_use, use_seqscore, mode, threshold}.
  function rerank(trace, s) {
    const w = { w_rel: s.w_rel, w_sup: s.w_sup, w_use: s.w_use, use_seqscore: s.use_seqscore };
    if ("beams" in trace) {
      const beams = trace.beams.map((b) => b.segments);
      const scores = beams.map((segs) => beamScore(segs, w));
      const best = firstMax(beams.map((b, i) => i), (i) => scores[i]);
      const cited = attachCitations(beams[best]);
      const order = beams.map((b, i) => i).sort((a, b) => -scores[a] - -scores[b] || a - b);
      return { longForm: true, bestBeam: best, beamScores: scores, order, candidates: beams[best],
        answer: cited.answer, docs: cited.docs, segments: cited.segments, output: responseText(beams[best]),
        retrieved: trace.retrieved, chosen: null };
    }
    const candidates = trace.candidates;
    let retrieved = trace.retrieved;
    let mode = s.mode || null;
    const threshold = s.threshold == null ? null : s.threshold;
    if (threshold !== null && mode === null) mode = "adaptive";
    if (mode !== null) {
      if (mode === "adaptive" && threshold === null) throw new Error("re-deciding adaptive retrieval needs a threshold");
      retrieved = shouldRetrieve(trace.p_retrieve, mode, threshold || 0.0);
      if (retrieved && !candidates.some(hasPassage)) retrieved = false;
    }
    const [chosen, answer] = chooseShortForm(candidates, retrieved, w, trace.options);
    return { longForm: false, chosen, answer, output: responseText([candidates[chosen]]), retrieved, candidates,
      docs: [], segments: [] };
  }

  // ---- the page ---------------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const SLIDERS = ["w_rel", "w_sup", "w_use", "threshold"];
  const state = { trace: null, decoded: null, defaults: null, result: null };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

  // A score as a bar: [lo, hi] -> 0..100% (IsUse lies in [-1, 1]).
  function bar(value, lo = 0, hi = 1) {
    if (value === null || value === undefined) return el("span", { class: "none" }, "–");
    const share = Math.max(0, Math.min(1, (value - lo) / (hi - lo)));
    const fill = el("span", { class: "fill" });
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    return el("span", { class: "barbox", title: String(value) }, el("span", { class: "bar" }, fill),
      el("span", { class: "num" }, fmt(value)));
  }

  function settings() {
    const mode = $("mode").value || null;
    return {
      w_rel: parseFloat($("w_rel").value),
      w_sup: parseFloat($("w_sup").value),
      w_use: parseFloat($("w_use").value),
      use_seqscore: $("use_seqscore").checked,
      mode,
      threshold: mode === "adaptive" ? parseFloat($("threshold").value) : null,
    };
  }

  function setControls(d) {
    for (const name of ["w_rel", "w_sup", "w_use", "threshold"]) {
      if (d[name] !== undefined && d[name] !== null) $(name).value = d[name];
    }
    if (d.use_seqscore !== undefined && d.use_seqscore !== null) $("use_seqscore").checked = !!d.use_seqscore;
    $("mode").value = "";
    showValues();
  }

  function showValues() {
    for (const name of SLIDERS) $(`${name}_value`).textContent = $(name).value;
  }

  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function renderAnswer(text, docs) {
    const answer = $("answer");
    answer.replaceChildren();
    // [i] citations become links to docs[i-1]
    const parts = text.split(/(\[\d+\])/);
    for (const part of parts) {
      const m = /^\[(\d+)\]$/.exec(part);
      if (m && docs.length >= Number(m[1])) answer.append(el("a", { href: `#doc-${m[1]}`, class: "cite" }, part));
      else answer.append(part);
    }
  }

  function render() {
    const trace = state.trace;
    if (!trace) return;
    let r;
    try {
      r = rerank(trace, settings());
    } catch (err) {
      showError(`cannot re-decide under these settings: ${err.message}` +
        (/no-retrieval candidate/.test(err.message) ? " (ask with \u201cdecode both paths\u201d)" : ""));
      $("chosen").setAttribute("data-error", err.message);
      return;
    }
    showError("");
    state.result = r;
    $("result").hidden = false;
    $("result").setAttribute("data-id", String(trace.id));
    const chosenBox = $("chosen");
    chosenBox.removeAttribute("data-error");
    chosenBox.setAttribute("data-output", r.output);
    chosenBox.setAttribute("data-answer", r.answer);
    chosenBox.setAttribute("data-retrieved", String(r.retrieved));
    const docs = r.longForm ? r.docs : [];
    renderAnswer(r.answer || "(empty)", docs);
    $("retrieved").textContent = r.retrieved ? "yes" : "no";
    $("p_retrieve").textContent = fmt(trace.p_retrieve);
    const docList = $("docs");
    docList.replaceChildren();
    if (r.longForm) {
      chosenBox.setAttribute("data-index", String(r.bestBeam));
      chosenBox.textContent = `beam ${r.bestBeam + 1} of ${trace.beams.length} (score ${fmt(r.beamScores[r.bestBeam])})`;
      docs.forEach((d, i) => docList.append(el("li", { id: `doc-${i + 1}` }, el("b", {}, d.title), " ", d.text)));
    } else {
      const c = trace.candidates[r.chosen];
      chosenBox.setAttribute("data-index", String(r.chosen));
      chosenBox.textContent = `candidate ${r.chosen + 1}` +
        (hasPassage(c) ? ` \u00b7 passage \u201c${c.passage_title || c.passage_id}\u201d` : " \u00b7 no retrieval");
      if (hasPassage(c)) {
        docList.append(el("li", { id: "doc-1" }, el("b", {}, c.passage_title || ""), " ", c.passage_text || ""));
      }
    }
    renderCandidates(r);
    renderLongForm(r);
  }

  function renderCandidates(r) {
    const w = settings();
    const body = $("candidates").querySelector("tbody");
    body.replaceChildren();
    $("candidates-title").textContent = r.longForm ? "Segments of the best beam (candidates)" : "Candidates";
    r.candidates.forEach((c, i) => {
      const s = scoreCandidate(c, w);
      const problem = candidateProblem(c.text, hasPassage(c), c.finished !== false);
      const passage = hasPassage(c)
        ? el("details", {}, el("summary", {}, c.passage_title || c.passage_id), el("p", {}, c.passage_text || ""))
        : el("span", { class: "muted" }, "(no retrieval)");
      const row = el("tr", { "data-index": String(i), "data-final": String(s.final) },
        el("td", {}, String(i + 1)), el("td", {}, passage),
        el("td", { class: "answer" }, c.answer || "(empty)", el("div", { class: "raw" }, c.text)),
        el("td", {}, bar(s.rel)), el("td", {}, bar(s.sup)), el("td", {}, bar(s.use, -1, 1)), el("td", {}, bar(s.seq)),
        el("td", { class: "final" }, fmt(s.final)),
        el("td", { class: problem ? "bad" : "good", title: problem || "well-formed" }, problem ? "\u2717 " + problem
          : "\u2713"));
      if (!r.longForm && i === r.chosen) row.classList.add("chosen");
      body.append(row);
    });
  }

  function renderLongForm(r) {
    $("longform").hidden = !r.longForm;
    if (!r.longForm) return;
    const list = $("segments");
    list.replaceChildren();
    for (const s of r.segments) {
      list.append(el("li", {}, s.candidate.answer || "(empty)",
        s.citation !== null ? el("a", { href: `#doc-${s.citation}`, class: "cite" }, ` [${s.citation}]`) : ""));
    }
    const body = $("beams").querySelector("tbody");
    body.replaceChildren();
    for (const i of r.order) {
      const segs = state.trace.beams[i].segments.map((c) => c.answer || "(empty)").join(" | ");
      const row = el("tr", { "data-index": String(i) }, el("td", {}, String(i + 1)),
        el("td", {}, bar(r.beamScores[i], 0, Math.max(1, ...r.beamScores))), el("td", {}, segs));
      if (i === r.bestBeam) row.classList.add("chosen");
      body.append(row);
    }
  }

  function load(trace, decodedSettings) {
    state.trace = trace;
    state.decoded = decodedSettings || state.defaults;
    if (state.decoded) setControls(state.decoded);
    render();
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = $("api_key").value.trim();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  async function api(path, body) {
    const response = await fetch(path, body === undefined ? { headers: headers() }
      : { method: "POST", headers: headers(), body: JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const e = data.error || {};
      throw new Error(`${response.status}: ${e.message || response.statusText}` + (e.param ? ` (${e.param})` : ""));
    }
    return data;
  }

  function passagesFromBox() {
    return $("passages").value.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
      const sep = line.indexOf("|");
      return sep >= 0 ? { title: line.slice(0, sep).trim(), text: line.slice(sep + 1).trim() } : { title: "", text: line };
    });
  }

  async function ask() {
    const question = $("question").value.trim();
    if (!question) { showError("type a question first"); return; }
    const s = settings();
    const selfrag = { w_rel: s.w_rel, w_sup: s.w_sup, w_use: s.w_use, use_seqscore: s.use_seqscore,
      long_form: $("long_form").checked, score_all_paths: $("score_all_paths").checked };
    const passages = passagesFromBox();
    if (passages.length) {
      selfrag.passages = passages;
      $("passages-box").open = true;
    }
    $("status").textContent = "decoding\u2026";
    $("ask").disabled = true;
    showError("");
    try {
      const started = performance.now();
      const data = await api("/v1/chat/completions", { model: (state.defaults && state.model) || "selfrag",
        messages: [{ role: "user", content: question }], selfrag });
      $("status").textContent = `answered in ${((performance.now() - started) / 1000).toFixed(2)} s`;
      load(data.selfrag, data.selfrag_settings);
    } catch (err) {
      $("status").textContent = "";
      showError(err.message);
    } finally {
      $("ask").disabled = false;
    }
  }

  async function init() {
    showValues();
    for (const name of SLIDERS) {
      $(name).addEventListener("input", () => {
        if (name === "threshold" && !$("mode").value) $("mode").value = "adaptive"; // a threshold implies adaptive
        showValues();
        render();
      });
    }
    $("use_seqscore").addEventListener("change", render);
    $("mode").addEventListener("change", render);
    $("reset").addEventListener("click", () => { if (state.decoded) setControls(state.decoded); render(); });
    $("ask").addEventListener("click", ask);
    $("question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); ask(); } });
    $("load").addEventListener("click", () => {
      try {
        const parsed = JSON.parse($("trace_input").value);
        load(parsed.selfrag || parsed, parsed.selfrag_settings);
      } catch (err) {
        showError(`not a trace: ${err.message}`);
      }
    });
    try {
      const config = await api("/v1/selfrag/config");
      state.defaults = config.decoding;
      state.model = config.model;
      $("model").textContent = `${config.model} \u00b7 task ${config.task}`;
      $("long_form").checked = !!config.decoding.long_form;
      setControls(config.decoding);
    } catch (err) {
      $("model").textContent = /^401/.test(err.message) ? "enter the API key, then ask" : "";
    }
    document.body.setAttribute("data-ready", "1");
  }

  window.SelfRAGPage = { rerank, scoreCandidate, candidateProblem, fsum, load, settings, render, state };
  document.addEventListener("DOMContentLoaded", init);
})();
