// The console in a real browser (issue #12): playwright-core drives
// Debian's chromium against `strive demo --serve`, which tests/console.rs
// starts. It walks the issue's list, checks that Chinese text renders with
// real glyphs, runs axe-core on every page (0 serious or critical
// violations), and keeps screenshots in both languages.
//
// Environment: STRIVE_CONSOLE_URL (http://127.0.0.1:PORT), STRIVE_CONSOLE_TOKEN
// (a leading-group member's token), STRIVE_CHROMIUM (the browser),
// STRIVE_CONSOLE_SHOTS (where screenshots go). Exits non-zero on the first
// failed check, with what failed; prints one JSON line of figures at the end.

import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const base = process.env.STRIVE_CONSOLE_URL;
const token = process.env.STRIVE_CONSOLE_TOKEN;
const shots = process.env.STRIVE_CONSOLE_SHOTS;
const executablePath = process.env.STRIVE_CHROMIUM;
for (const [name, value] of Object.entries({ base, token, shots, executablePath })) {
  if (!value) throw new Error(`missing environment for ${name}`);
}
mkdirSync(shots, { recursive: true });

const ORG = "org-01";
const figures = { pages_checked: 0, violations: 0, screenshots: 0 };

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function api(path) {
  const answer = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  check(answer.ok, `GET ${path} answers ${answer.status}`);
  return answer.json();
}

// axe-core on the page as it is: no serious or critical violation.
async function accessible(page, name) {
  // Evaluated through the DevTools protocol, which the page's CSP (no
  // inline script) does not govern, rather than as a script tag.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  figures.pages_checked += 1;
  figures.violations += bad.length;
  check(bad.length === 0, `${name}: axe found ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`).join("; ")}`);
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });
  figures.screenshots += 1;
}

// Chinese renders with real glyphs: two different characters draw
// different pixels (missing glyphs draw the same box), each about one em
// wide, in the page's own font.
async function chineseRenders(page) {
  const result = await page.evaluate(() => {
    const font = `48px ${getComputedStyle(document.body).fontFamily}`;
    const draw = (text) => {
      const canvas = document.createElement("canvas");
      canvas.width = 64;
      canvas.height = 64;
      const ctx = canvas.getContext("2d");
      ctx.font = font;
      ctx.fillText(text, 4, 50);
      return { width: ctx.measureText(text).width, pixels: Array.from(ctx.getImageData(0, 0, 64, 64).data).join(",") };
    };
    const a = draw("党");
    const b = draw("组");
    return { widthA: a.width, widthB: b.width, differ: a.pixels !== b.pixels, inked: a.pixels.replace(/[0,]/g, "").length > 0 };
  });
  check(result.inked, "a Chinese character draws something");
  check(result.differ, "two Chinese characters draw different glyphs (a CJK font is installed)");
  check(Math.abs(result.widthA - 48) < 6, `a Chinese character is about one em wide (${result.widthA})`);
  figures.cjk_glyph_width = result.widthA;
}

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
try {
  // The console's own content security policy holds: the slider and the
  // verification's progress must work under it.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();

  // The public pledges need no sign-in; the dashboard does.
  let answer = await page.goto(`${base}/pledges`);
  check(answer.status() === 200, "the pledges are public");
  check((await page.locator("table.pledges tbody tr").count()) > 0, "the pledges list the demo's plans");
  await accessible(page, "pledges");
  answer = await page.goto(`${base}/`);
  check(answer.status() === 401, "the dashboard needs a sign-in");
  await accessible(page, "refusal");

  // Sign in with the token.
  await page.goto(`${base}/signin`);
  await accessible(page, "sign-in");
  await page.getByLabel("令牌").fill(token);
  await page.getByRole("button", { name: "登录" }).click();
  await page.waitForURL(`${base}/`);

  // The dashboard shows the demo's counts, the report's own.
  const report = await api("/v1/report?format=json");
  await chineseRenders(page);
  for (const wf of report.workflows) {
    const shown = await page.locator(`table[data-workflow="${wf.workflow}"] [data-testid=count]`).allTextContents();
    const expected = wf.stages.map((s) => String(s.count));
    check(JSON.stringify(shown) === JSON.stringify(expected), `${wf.workflow}'s stage counts ${shown} are the report's ${expected}`);
  }
  check((await page.getByRole("heading", { name: "评选表彰名单" }).count()) === 1, "the dashboard has the commended list");
  await accessible(page, "dashboard");
  // Keyboard: the first Tab reaches the skip link, which moves the focus
  // to the main content; the next Tabs walk the navigation.
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.classList.contains("skip")), "the first Tab focuses the skip link");
  await page.keyboard.press("Enter");
  check(await page.evaluate(() => document.activeElement.id === "main"), "the skip link moves the focus to main");
  await shot(page, "dashboard-zh");

  // The instances list filters by workflow.
  await page.goto(`${base}/instances?workflow=org-campaign`);
  check((await page.locator("table.list tbody tr").count()) >= 3, "the list shows the organisations");
  await accessible(page, "instances");

  // An organisation's history.
  const shown = await api(`/v1/instances/${ORG}`);
  await page.goto(`${base}/instances/${ORG}`);
  const items = await page.locator("ol.timeline > li").count();
  check(items === shown.seq, `the history shows every event (${items} of ${shown.seq})`);
  check((await page.locator("ol.timeline > li").first().locator(".event").textContent()) === "start", "the history begins with start");
  await accessible(page, "instance");
  await shot(page, "instance-zh");

  // The slider at sequence 3 shows the stage the replay gives.
  const replay = await api(`/v1/instances/${ORG}/replay?at_seq=3`);
  const slider = page.getByLabel("序号");
  await slider.fill("3");
  await page.locator('.travel-state [data-testid=travel-seq]', { hasText: /^3$/ }).waitFor();
  const travelled = await page.locator(".travel-state").getAttribute("data-stage");
  check(travelled === replay.instance.stage, `at sequence 3 the stage is ${travelled}, the replay's ${replay.instance.stage}`);
  const current = await page.locator("#diagram g[data-current]").getAttribute("data-stage");
  check(current === travelled, `the diagram highlights ${current}`);

  // A forbidden event is disabled, with its reason in words.
  const forbidden = page.locator('form[data-event="publish_plan"]');
  check((await forbidden.getAttribute("data-allowed")) === "false", "publish_plan is not allowed");
  check(await forbidden.getByRole("button").isDisabled(), "its button is disabled");
  const reason = await forbidden.locator("[data-testid=reason]").textContent();
  check(/阶段|角色|条件/.test(reason), `it says why: ${reason}`);

  // An allowed event fired through its form shows in the history.
  const allowed = page.locator('form[data-event="correct_name"]');
  check((await allowed.getAttribute("data-allowed")) === "true", "correct_name is allowed for the leading group");
  await allowed.locator("textarea").fill(JSON.stringify({ zh: "局办公室党支部", en: "Bureau office party branch" }));
  await allowed.getByRole("button").click();
  await page.waitForURL(new RegExp(`/instances/${ORG}#history$`));
  const after = await page.locator("ol.timeline > li").count();
  check(after === shown.seq + 1, "the history has one more event");
  check((await page.locator("ol.timeline > li").last().locator(".event").textContent()) === "correct_name", "the new event is correct_name");

  // The audit page verifies with progress.
  await page.goto(`${base}/audit`);
  await page.getByRole("button", { name: "开始核验" }).click();
  await page.locator("[data-testid=verify-result]").waitFor({ timeout: 60_000 });
  check((await page.locator("[data-testid=verify-result]").textContent()).startsWith("✓"), "the store verifies");
  await accessible(page, "audit");
  await shot(page, "audit-zh");

  await page.goto(`${base}/definitions/org-campaign`);
  await accessible(page, "definition");
  answer = await page.goto(`${base}/access`);
  check(answer.status() === 403, `access is for admins only (${answer.status()})`);
  await accessible(page, "access refused");

  // English.
  await page.goto(`${base}/`);
  await page.getByRole("link", { name: "English" }).click();
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  check((await page.locator("html").getAttribute("lang")) === "en", "the page says it is in English");
  await accessible(page, "dashboard (en)");
  await shot(page, "dashboard-en");
  await page.goto(`${base}/instances/${ORG}`);
  await accessible(page, "instance (en)");
  await shot(page, "instance-en");
  await page.goto(`${base}/audit`);
  await shot(page, "audit-en");
  await page.getByRole("link", { name: "中文" }).click();

  // Sign out: every page but the pledges is refused.
  await page.getByRole("button", { name: "退出登录" }).click();
  for (const path of ["/", "/instances", `/instances/${ORG}`, "/audit", "/definitions", "/access"]) {
    const refused = await page.goto(base + path);
    check(refused.status() === 401, `${path} is refused after sign-out (${refused.status()})`);
  }
  answer = await page.goto(`${base}/pledges`);
  check(answer.status() === 200, "the pledges stay public");
} finally {
  await browser.close();
}
console.log(JSON.stringify(figures));
