// The strive console's one script (issue #12): conveniences only. Every
// page and form works without it.
"use strict";

// The time-travel slider: replays the instance at the chosen sequence as
// the slider moves, and highlights that stage in the diagram.
function travel(form) {
  const slider = form.querySelector("input[type=range]");
  const out = form.querySelector("output");
  const target = document.getElementById("travel");
  let pending = 0;
  const show = async () => {
    const seq = slider.value;
    out.textContent = seq + " / " + slider.max;
    slider.setAttribute("aria-valuetext", out.textContent);
    const mine = ++pending;
    const answer = await fetch(form.dataset.travel + "?seq=" + encodeURIComponent(seq), { credentials: "same-origin" });
    if (mine !== pending) return;
    target.innerHTML = await answer.text();
    const state = target.querySelector("[data-stage]");
    if (!state) return;
    document.querySelectorAll("#diagram g[data-stage]").forEach((g) => {
      if (g.dataset.stage === state.dataset.stage) g.setAttribute("data-current", "true");
      else g.removeAttribute("data-current");
    });
    history.replaceState(null, "", "?seq=" + encodeURIComponent(seq));
  };
  slider.addEventListener("input", show);
  form.addEventListener("submit", (e) => { e.preventDefault(); show(); });
}

// A running verification: polls its job until it is done, then reloads
// the page to show the report.
function poll(job) {
  const bar = job.querySelector("progress");
  const count = document.getElementById("job-count");
  const tick = async () => {
    const answer = await fetch("/audit/verify/" + encodeURIComponent(job.dataset.job), { credentials: "same-origin" });
    if (!answer.ok) return;
    const body = await answer.json();
    bar.max = Math.max(body.total, 1);
    bar.value = body.read;
    count.textContent = body.read + " / " + body.total;
    if (body.state === "done") location.reload();
    else setTimeout(tick, 300);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-travel]").forEach(travel);
  const job = document.querySelector(".job[data-done=false]");
  if (job) poll(job);
});
