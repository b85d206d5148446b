// Drive a real Home Assistant dashboard holding both Smart ReID cards in headless Chromium and
// check what a person sees. Run by tests/components/smart_reid/test_cards_browser.py, which
// starts Home Assistant, the broker and the inference server and passes a JSON plan:
// {"ha": url, "view": "/lovelace/reid", "chromium": path, "shots": dir, "rename": "Alice",
//  "server": url, "token": str, "stranger": {"path", "width", "height", "camera"}}
// Prints one JSON line of findings; exits non-zero with the reason on the first failure.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const plan = JSON.parse(process.argv[2]);
const findings = {};
const step = (name) => {
  findings.step = name;
};

async function postFrame(frame) {
  const form = new FormData();
  form.append("image", new Blob([readFileSync(frame.path)], { type: "image/jpeg" }), "frame.jpg");
  form.append("camera", frame.camera);
  form.append("detections", JSON.stringify([{ box: [0, 0, frame.width, frame.height], score: 0.95 }]));
  const response = await fetch(`${plan.server}/api/frames`, {
    method: "POST",
    body: form,
    headers: { Authorization: `Bearer ${plan.token}` },
  });
  if (!response.ok) throw new Error(`frame upload failed: ${response.status} ${await response.text()}`);
  return response.json();
}

let page;

// A trail of what the page did, printed only when a step fails (the failure screenshot stays in
// a temporary folder that CI does not keep).
const started = Date.now();
const trailLines = [];
function trail(line) {
  trailLines.push(`${((Date.now() - started) / 1000).toFixed(1)} s ${line}`);
  if (trailLines.length > 400) trailLines.splice(0, trailLines.length - 400);
}

// The cards as the page holds them: whether their elements are defined, and their text (the
// walk goes through every shadow root, as Home Assistant nests the dashboard in many).
async function cardsNow() {
  return page.evaluate(async () => {
    const found = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll("*")) {
        const tag = el.tagName.toLowerCase();
        if (tag.startsWith("smart-reid-") || tag === "hui-error-card" || tag === "hui-warning") {
          const text = (el.shadowRoot ?? el).textContent ?? "";
          found.push(`${tag}: ${text.replace(/\s+/g, " ").trim().slice(0, 300)}`);
        }
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    const module = [...document.querySelectorAll("script")]
      .map((el) => el.textContent.match(/import\("([^"]*smart_reid[^"]*)"\)/)?.[1])
      .find(Boolean);
    const imported = module
      ? await import(module).then(
          () => `imported again: people card defined ${Boolean(customElements.get("smart-reid-people-card"))}`,
          (e) => `import failed: ${e}`,
        )
      : "no module in the page";
    return {
      imported,
      url: location.href,
      module_in_page: [...document.querySelectorAll("script")].some((el) => el.outerHTML.includes("smart_reid")),
      people_card_defined: Boolean(customElements.get("smart-reid-people-card")),
      visits_card_defined: Boolean(customElements.get("smart-reid-visits-card")),
      found,
    };
  });
}

// Screenshots go into docs/: people's pictures are blurred in them (the test data are dataset
// crops of real people, which the repository must not redistribute), and restored afterwards.
async function shoot(name, options = {}) {
  const blur = (value) =>
    page.evaluate((filter) => {
      const walk = (root) => {
        for (const el of root.querySelectorAll("*")) {
          if (el.tagName === "IMG") el.style.filter = filter;
          if (el.shadowRoot) walk(el.shadowRoot);
        }
      };
      walk(document);
    }, value);
  await blur("blur(7px)");
  await page.screenshot({ path: join(plan.shots, name), ...options });
  await blur("");
}
const browser = await chromium.launch({
  executablePath: plan.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
    if (msg.text().includes("Smart ReID cards: defined again")) findings.redefined = true;
    trail(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (error) => trail(`page error: ${error.stack || error}`));
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) trail(`navigated: ${frame.url().slice(0, 120)}`);
  });
  page.on("requestfailed", (request) => trail(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on("request", (request) => {
    if (request.url().includes("smart_reid")) trail(`request: ${request.url()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400 || response.url().includes("smart_reid")) {
      trail(`HTTP ${response.status()}: ${response.url()}`);
    }
  });
  // What the cards asked Home Assistant and what came back (the first part of each message).
  page.on("websocket", (socket) => {
    trail(`websocket opened: ${socket.url()}`);
    socket.on("framesent", (frame) => {
      if (String(frame.payload).includes("smart_reid")) trail(`ws sent: ${String(frame.payload).slice(0, 300)}`);
    });
    socket.on("framereceived", (frame) => {
      const text = String(frame.payload);
      if (/smart_reid|people|"success":false|auth_/.test(text)) trail(`ws received: ${text.slice(0, 300)}`);
    });
    socket.on("close", () => trail("websocket closed"));
  });

  step("open the dashboard");
  // Home Assistant's app bundle arrives late on this first load, so the cards' module runs
  // before the app swaps in its scoped element registry: the order that left every card as
  // "Custom element doesn't exist" about one load in six (home-assistant/frontend#52960).
  // The reload at the end checks the other order.
  let delayed = 0;
  await page.route(/\/frontend_latest\/app\.[0-9a-f]+\.js$/, async (route) => {
    if (delayed++ < 2) await new Promise((resolve) => setTimeout(resolve, 1500));
    await route.continue();
  });
  await page.goto(`${plan.ha}${plan.view}`, { waitUntil: "load" });
  const people = page.locator("smart-reid-people-card");
  const visits = page.locator("smart-reid-visits-card");
  // Generous: the first load of Home Assistant's front end is slow on a busy 2-core machine.
  await people.locator(".tile").first().waitFor({ timeout: 150000 });

  step("people with pictures");
  const tiles = people.locator(".tile");
  findings.people = await tiles.count();
  const pictures = await people.locator(".tile img").evaluateAll((imgs) =>
    Promise.all(imgs.map((img) => (img.complete ? img : new Promise((r) => (img.onload = img.onerror = () => r(img))))))
      .then((loaded) => loaded.map((img) => ({ src: img.getAttribute("src"), width: img.naturalWidth }))),
  );
  findings.pictures = pictures;
  if (!pictures.length || pictures.some((p) => p.width === 0)) throw new Error(`a person's picture did not load: ${JSON.stringify(pictures)}`);
  if (pictures.some((p) => p.src.includes(plan.server) || !p.src.includes("authSig="))) {
    throw new Error("pictures must come through Home Assistant's signed links");
  }
  findings.first_label = (await tiles.first().locator(".name").textContent()).trim();

  step("a visit in the timeline");
  await visits.locator(".visit").first().waitFor({ timeout: 30000 });
  findings.visits = await visits.locator(".visit").count();
  findings.first_visit = (await visits.locator(".visit").first().innerText()).replace(/\s+/g, " ");

  step("the visit's detail");
  await visits.locator(".visit button").first().click();
  await visits.locator(".dialog img.big").waitFor({ timeout: 10000 });
  findings.visit_snapshot_width = await visits.locator(".dialog img.big").evaluate((img) =>
    img.complete ? img.naturalWidth : new Promise((r) => (img.onload = () => r(img.naturalWidth))),
  );
  await shoot("cards-visit-detail.png");
  await visits.locator(".dialog button.close").click();

  step("rename through the detail view");
  await tiles.first().click();
  await people.locator(".dialog button.rename").click();
  await people.locator(".dialog input.rename").fill(plan.rename);
  await people.locator(".dialog button[type=submit]").click();
  await people.locator(".dialog h2", { hasText: plan.rename }).waitFor({ timeout: 20000 });
  await shoot("cards-person-detail.png");
  await people.locator(".dialog button.close").click();
  await people.locator(".tile .name", { hasText: plan.rename }).waitFor({ timeout: 10000 });
  findings.renamed = true;

  step("a new visit appears live");
  const before = await visits.locator(".visit").count();
  const answer = await postFrame(plan.stranger);
  findings.stranger_visit = answer.decisions?.[0]?.visit_id ?? null;
  await visits.locator(`.visit[data-visit="${findings.stranger_visit}"]`).waitFor({ timeout: 30000 });
  findings.visits_after = await visits.locator(".visit").count();
  if (findings.visits_after <= before) throw new Error(`no new visit appeared (${before} -> ${findings.visits_after})`);
  await visits.locator(".visit .who", { hasText: plan.rename }).first().waitFor({ timeout: 10000 });
  await people.locator(".tile").nth(1).waitFor({ timeout: 10000 });
  await page.waitForTimeout(500);
  await shoot("cards-light.png");

  step("dark theme");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.waitForTimeout(1500);
  findings.dark_background = await page.evaluate(() =>
    getComputedStyle(document.querySelector("home-assistant")).getPropertyValue("--primary-background-color").trim(),
  );
  await shoot("cards-dark.png");

  step("phone width");
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(1500);
  findings.phone_overflow = await page.evaluate(() => {
    const card = document.querySelector("home-assistant");
    return document.documentElement.scrollWidth > window.innerWidth || !card;
  });
  await shoot("cards-phone.png", { fullPage: false });
  step("after a reload");
  await page.unrouteAll();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.reload({ waitUntil: "load" });
  await people.locator(".tile").first().waitFor({ timeout: 60000 });
  findings.after_reload = await people.locator(".tile").count();
  findings.console_errors = consoleErrors.filter((e) => /smart.reid|smart_reid/i.test(e));
  findings.step = "done";
  console.log(JSON.stringify(findings));
} catch (err) {
  console.log(JSON.stringify(findings));
  const cards = await cardsNow().catch((e) => `could not read the page: ${e}`);
  console.error(`the cards now: ${JSON.stringify(cards, null, 1)}`);
  console.error(`what the page did:\n${trailLines.join("\n")}`);
  await page?.screenshot({ path: join(plan.shots, "failure.png") }).catch(() => undefined);
  console.error(`failed at "${findings.step}": ${err.stack || err}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
